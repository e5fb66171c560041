//! The first TLS record of a connection, read before the handshake so that its ClientHello
//! can be fingerprinted (JA4), then handed back to the handshake as if unread. Reading stops
//! at one whole record, at the first byte that is not a handshake record, at the size limit
//! or at the end of the stream: whatever was read goes to the handshake, which decides.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::identity::Ja4;

/// The largest first record read for a fingerprint: TLS's largest plaintext record (2^14)
/// and its header. A ClientHello spread over several records gets no fingerprint.
pub const MAX_RECORD: usize = (1 << 14) + 5;

/// TLS record type of a handshake message.
const HANDSHAKE: u8 = 22;

/// The bytes read from `io`, and the JA4 of the ClientHello they hold when they hold one.
/// The caller's handshake deadline bounds how long a slow client may take.
pub async fn read<S: AsyncRead + Unpin>(io: &mut S) -> io::Result<(Vec<u8>, Option<Ja4>)> {
    // Most ClientHellos fit: browsers' are 0.5-2 KiB.
    let mut buf = Vec::with_capacity(2048);
    loop {
        match wanted(&buf) {
            Want::More(n) => {
                buf.reserve(n);
                if io.read_buf(&mut buf).await? == 0 {
                    return Ok((buf, None));
                }
            }
            Want::Done(len) => {
                let ja4 = Ja4::of_client_hello(&buf[..len]);
                return Ok((buf, ja4));
            }
            Want::Nothing => return Ok((buf, None)),
        }
    }
}

enum Want {
    /// At least this many more bytes.
    More(usize),
    /// The first record is the first `len` bytes.
    Done(usize),
    /// Not a handshake record, or too large: the handshake has it as it is.
    Nothing,
}

fn wanted(buf: &[u8]) -> Want {
    if buf.first().is_some_and(|&b| b != HANDSHAKE) {
        return Want::Nothing;
    }
    let Some(header) = buf.get(..5) else {
        return Want::More(5 - buf.len());
    };
    let len = 5 + usize::from(u16::from_be_bytes([header[3], header[4]]));
    if len > MAX_RECORD {
        Want::Nothing
    } else if buf.len() >= len {
        Want::Done(len)
    } else {
        Want::More(len - buf.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn the_record_is_read_whole_and_given_back_before_the_rest() {
        let record = [22, 3, 1, 0, 3, 1, 2, 3];
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(&record[..4]).await.unwrap();
        let reader = tokio::spawn(async move {
            let mut server = server;
            let (buf, ja4) = read(&mut server).await.unwrap();
            (buf, ja4, server)
        });
        client.write_all(&record[4..]).await.unwrap();
        client.write_all(b"after").await.unwrap();
        drop(client);
        let (buf, ja4, server) = reader.await.unwrap();
        // Not a ClientHello inside, so no fingerprint; the bytes read are kept whole.
        assert_eq!(ja4, None);
        let mut replay = crate::proxy::replay::Replay::new(buf.into(), server);
        let mut all = Vec::new();
        replay.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, [&record[..], b"after"].concat());
    }

    #[tokio::test]
    async fn plain_http_and_oversized_records_are_not_waited_on() {
        for first in [&b"GET / HTTP/1.1\r\n"[..], &[22, 3, 1, 0xff, 0xff]] {
            let (mut client, mut server) = tokio::io::duplex(64);
            client.write_all(first).await.unwrap();
            // The client stays open: a reader that waited for more would hang here.
            let (buf, ja4) = read(&mut server).await.unwrap();
            assert!(!buf.is_empty() && first.starts_with(&buf[..buf.len().min(first.len())]));
            assert_eq!(ja4, None);
        }
    }
}
