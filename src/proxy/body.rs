//! The bodies flowgate sends: its own bytes, or a peer's body streamed through. A response
//! body also carries what must happen once it is over (the click event, the upstream
//! connection going back to its pool), so that happens exactly when the visitor has it all.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};

use super::handle::Finish;

/// A request or response body: nothing, bytes flowgate holds, or a peer's body. `Upload`
/// is a visitor's body on its way upstream, telling `Progress` how it goes, so that the
/// upstream's read timeout does not count the time spent waiting for the visitor.
pub enum Body {
    Full(Option<Bytes>),
    Stream(Incoming),
    Upload(Incoming, Arc<Progress>),
}

/// Frames of an upload sent so far, whether it now waits for the visitor's next bytes, and
/// what is left of `limits.max_body_bytes`.
pub struct Progress {
    pub frames: AtomicU64,
    pub on_visitor: AtomicBool,
    pub allowed: AtomicU64,
    /// The visitor sent more than allowed: the upload was cut off, the answer is 413.
    pub too_large: AtomicBool,
    ended: AtomicBool,
    limit: u64,
}

impl Progress {
    pub fn new(allowed: u64) -> Progress {
        Progress {
            frames: AtomicU64::new(0),
            on_visitor: AtomicBool::new(false),
            allowed: AtomicU64::new(allowed),
            too_large: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            limit: allowed,
        }
    }

    /// The whole upload was handed on.
    pub fn ended(&self) -> bool {
        self.ended.load(Relaxed)
    }

    /// Bytes of the upload handed on so far.
    pub fn sent(&self) -> u64 {
        self.limit.saturating_sub(self.allowed.load(Relaxed))
    }
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What `poll_frame` gives hyper.
type Polled = Poll<Option<Result<Frame<Bytes>, BoxError>>>;

#[derive(Debug)]
struct TooLarge;

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body larger than limits.max_body_bytes")
    }
}

impl std::error::Error for TooLarge {}

impl Body {
    pub fn empty() -> Body {
        Body::Full(None)
    }

    pub fn bytes(b: Bytes) -> Body {
        Body::Full((!b.is_empty()).then_some(b))
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Polled {
        let polled = match self.get_mut() {
            Body::Full(b) => return Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(s) => Pin::new(s).poll_frame(cx),
            Body::Upload(s, progress) => {
                let polled = Pin::new(&mut *s).poll_frame(cx);
                progress.on_visitor.store(polled.is_pending(), Relaxed);
                if matches!(polled, Poll::Ready(None)) || s.is_end_stream() {
                    progress.ended.store(true, Relaxed);
                }
                if let Poll::Ready(Some(Ok(frame))) = &polled {
                    progress.frames.fetch_add(1, Relaxed);
                    let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                    let left = progress.allowed.load(Relaxed);
                    if n > left {
                        progress.too_large.store(true, Relaxed);
                        return Poll::Ready(Some(Err(Box::new(TooLarge))));
                    }
                    progress.allowed.store(left - n, Relaxed);
                }
                polled
            }
        };
        polled.map(|f| f.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(b) => b.is_none(),
            Body::Stream(s) | Body::Upload(s, _) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Stream(s) | Body::Upload(s, _) => s.size_hint(),
        }
    }
}

/// A response body with its `Finish`, run at the end of the body or when hyper drops it
/// (the visitor went away).
pub struct Tracked {
    body: Body,
    finish: Option<Finish>,
    /// Body bytes handed to hyper, counted once at the end.
    sent: u64,
}

impl Tracked {
    pub fn new(body: Body, finish: Option<Finish>) -> Tracked {
        Tracked {
            body,
            finish,
            sent: 0,
        }
    }

    fn done(&mut self, complete: bool) {
        if let Some(f) = self.finish.take() {
            f.run(complete, self.sent);
        }
    }
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Polled {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.done(true),
            Poll::Ready(Some(Err(_))) => this.done(false),
            Poll::Ready(Some(Ok(frame))) => {
                this.sent += frame.data_ref().map_or(0, |d| d.len() as u64);
                if this.body.is_end_stream() {
                    this.done(true);
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let complete = self.body.is_end_stream();
        self.done(complete);
    }
}
