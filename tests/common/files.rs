//! A static file server for what `flowgate intel update` downloads.

use super::request::read_request;

/// A static HTTP server: path -> bytes, 404 for anything else.
pub fn serve_files(files: Vec<(&'static str, Vec<u8>)>) -> std::net::SocketAddr {
    use std::io::{BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let files = std::sync::Arc::new(files);
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let files = files.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut w = conn;
                let Some(request) = read_request(&mut r) else {
                    return;
                };
                let path = request.target.split('?').next().unwrap_or("");
                match files.iter().find(|(p, _)| *p == path) {
                    Some((_, body)) => {
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = w
                            .write_all(head.as_bytes())
                            .and_then(|()| w.write_all(body));
                    }
                    None => {
                        let _ = w.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                    }
                }
            });
        }
    });
    addr
}
