//! What crosses flowgate between a visitor and a real upstream: bodies both ways, keep-alive,
//! HEAD, hop-by-hop headers, 1xx. Each upstream is a hyper 1.x server started by its test on
//! 127.0.0.1:0 and stopped with it; the visitor writes and reads raw bytes. Protocol switches
//! and connections an upstream closes are in `proxying_upgrade.rs`.

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response};

use common::*;

fn payload(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        (x >> 11) as u8
    };
    (0..n).map(|_| next()).collect()
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
    })
}

type UpBody = BoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> UpBody {
    Full::new(b.into()).boxed()
}

/// A hyper 1.x upstream on its own thread and runtime; stopped (with its connections) on drop.
struct HyperUp {
    addr: SocketAddr,
    conns: Arc<AtomicUsize>,
    /// Dropped with the upstream, which ends its accept loop and runtime.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl HyperUp {
    fn start<F, Fut>(handler: F) -> HyperUp
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<UpBody>> + Send + 'static,
    {
        let std = TcpListener::bind("127.0.0.1:0").unwrap();
        std.set_nonblocking(true).unwrap();
        let addr = std.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (handler, counted) = (Arc::new(handler), conns.clone());
        thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std).unwrap();
                loop {
                    let tcp = tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => match accepted {
                            Ok((tcp, _)) => tcp,
                            Err(_) => continue,
                        },
                    };
                    counted.fetch_add(1, SeqCst);
                    let h = handler.clone();
                    let svc = hyper::service::service_fn(move |req| {
                        let fut = (*h)(req);
                        async move { Ok::<_, Infallible>(fut.await) }
                    });
                    let io = hyper_util::rt::TokioIo::new(tcp);
                    tokio::spawn(
                        hyper::server::conn::http1::Builder::new().serve_connection(io, svc),
                    );
                }
            });
        });
        HyperUp {
            addr,
            conns,
            _stop: stop,
        }
    }
}

/// Reads the whole request body and answers with what arrived: length, checksum, framing.
async fn echo(req: Request<Incoming>) -> Response<UpBody> {
    let h = |n: &str| {
        req.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let (cl, te) = (h("content-length"), h("transfer-encoding"));
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    let body = body.unwrap_or_default(); // an upload cut short: nobody reads the answer
    let seen = serde_json::json!({
        "len": body.len(), "sum": fnv(&body), "cl": cl, "te": te,
        "text": String::from_utf8_lossy(&body[..body.len().min(64)]),
    });
    Response::new(full(seen.to_string()))
}

/// A visitor that has sent the head of `POST /upload` with a body of `len` bytes.
fn uploading(fg: &Flowgate, len: usize) -> Visitor {
    let mut v = Visitor::connect(fg.addr);
    let len = len.to_string();
    v.send(&request_bytes(
        "POST",
        "/upload",
        &[("Content-Length", &len)],
    ));
    v
}

/// What the echo upstream saw of an upload, once its answer shows it got all of `data`.
fn echoed(v: &mut Visitor, data: &[u8]) -> serde_json::Value {
    let (h, body) = v.response();
    assert_eq!(h.status(), 200, "{h:?}");
    let seen = json(std::str::from_utf8(&body).unwrap());
    assert_eq!(
        (seen["len"].as_u64(), seen["sum"].as_u64()),
        (Some(data.len() as u64), Some(fnv(data))),
        "{seen}"
    );
    seen
}

#[test]
fn an_upload_streams_through_with_its_framing() {
    let up = HyperUp::start(echo);
    let fg = Flowgate::start(
        "limits: { max_body_bytes: 16MiB }\n",
        &proxy_rules(up.addr, "10s"),
    );
    let data = payload(5 << 20);

    let mut v = uploading(&fg, data.len());
    // Its head has arrived: the request is being answered until its answer is over.
    wait_for("the upload in flight", Duration::from_secs(5), || {
        fg.metric("flowgate_requests_in_flight") == 1.0
    });
    v.send(&data);
    let seen = echoed(&mut v, &data);
    assert_eq!(fg.metric("flowgate_requests_in_flight"), 0.0);
    assert_eq!(seen["cl"], data.len().to_string(), "{seen}");
    assert_eq!(seen["te"], serde_json::Value::Null, "{seen}");

    v.send(&request_bytes(
        "POST",
        "/upload",
        &[("Transfer-Encoding", "chunked")],
    ));
    for chunk in data.chunks(64 * 1024 + 7) {
        v.send(format!("{:x}\r\n", chunk.len()).as_bytes());
        v.send(chunk);
        v.send(b"\r\n");
    }
    v.send(b"0\r\n\r\n");
    let seen = echoed(&mut v, &data);
    assert_eq!(seen["te"], "chunked", "{seen}");
    assert_eq!(seen["cl"], serde_json::Value::Null, "{seen}");
    // Body bytes, whatever the framing: chunk sizes are not counted.
    let bytes_in = fg.metric(r#"flowgate_bytes_total{direction="in"}"#);
    assert_eq!(bytes_in, 2.0 * data.len() as f64);
}

/// A response body of unknown length, sent in 64 KiB frames (so hyper chunks it).
struct Frames(Bytes);

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.0.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.0.len().min(64 * 1024);
        Poll::Ready(Some(Ok(Frame::data(self.0.split_to(n)))))
    }
}

#[test]
fn a_large_page_streams_back_to_the_last_byte() {
    let page = Bytes::from(payload(8 << 20));
    let served = page.clone();
    let up = HyperUp::start(move |req| {
        let page = served.clone();
        async move {
            match req.uri().path() {
                "/big-chunked" => Response::new(Frames(page).boxed()),
                _ => Response::new(full(page)),
            }
        }
    });
    let fg = Flowgate::start("", &proxy_rules(up.addr, "10s"));
    let mut v = Visitor::connect(fg.addr);
    v.send(&request_bytes("GET", "/big-cl", &[]));
    let (h, body) = v.response();
    assert_eq!(h.status(), 200, "{h:?}");
    assert_eq!(h.get("content-length"), Some("8388608"));
    assert_eq!((body.len(), fnv(&body)), (page.len(), fnv(&page)));

    v.send(&request_bytes("GET", "/big-chunked", &[]));
    let (h, body) = v.response();
    assert_eq!(h.status(), 200, "{h:?}");
    assert_eq!(h.get("transfer-encoding"), Some("chunked"), "{h:?}");
    assert_eq!((body.len(), fnv(&body)), (page.len(), fnv(&page)));

    let bytes_out = fg.metric(r#"flowgate_bytes_total{direction="out"}"#);
    assert_eq!(bytes_out, 2.0 * page.len() as f64);

    let events = fg.events(2);
    for path in ["/big-cl", "/big-chunked"] {
        let e = events.iter().find(|e| e["path"] == path);
        let e = e.unwrap_or_else(|| panic!("no event for {path}: {events:?}"));
        assert_eq!(e["status"], 200, "{e}");
        assert_eq!(e["upstream"], up.addr.to_string());
    }
}

#[test]
fn keep_alive_holds_on_both_sides_for_fifty_requests() {
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    let up = HyperUp::start(move |_| {
        counted.fetch_add(1, SeqCst);
        async { Response::new(full("ok")) }
    });
    let fg = Flowgate::start("", &proxy_rules(up.addr, "5s"));
    let mut v = Visitor::connect(fg.addr);
    for i in 0..50 {
        v.send(&request_bytes("GET", &format!("/page/{i}"), &[]));
        let (h, body) = v.response();
        assert_eq!((h.status(), body.as_slice()), (200, &b"ok"[..]), "#{i}");
        assert_eq!(h.get("connection"), None, "#{i}: {h:?}");
    }
    assert_eq!(requests.load(SeqCst), 50);
    let conns = up.conns.load(SeqCst);
    assert!(conns <= 2, "50 requests took {conns} upstream connections");
}

#[test]
fn head_gets_the_length_and_no_body_and_the_connection_goes_on() {
    let up = HyperUp::start(|req| async move {
        if req.method() == hyper::Method::HEAD {
            let mut r = Response::new(full(Bytes::new()));
            r.headers_mut().insert("content-length", 1234.into());
            r
        } else {
            Response::new(full(vec![b'x'; 1234]))
        }
    });
    let fg = Flowgate::start("", &proxy_rules(up.addr, "5s"));
    let mut v = Visitor::connect(fg.addr);
    v.send(&request_bytes("HEAD", "/lp", &[]));
    let h = v.response_to_head();
    assert_eq!(h.status(), 200, "{h:?}");
    assert_eq!(h.get("content-length"), Some("1234"), "{h:?}");
    // Had a body followed the HEAD answer, it would be read here as the next status line.
    v.send(&request_bytes("GET", "/lp", &[]));
    let (h, body) = v.response();
    assert_eq!(h.status(), 200, "{h:?}");
    assert_eq!(body, vec![b'x'; 1234]);
}

#[test]
fn hop_by_hop_headers_stop_at_flowgate_both_ways() {
    let seen = Arc::new(Mutex::new(None));
    let record = seen.clone();
    let up = HyperUp::start(move |req| {
        *record.lock().unwrap() = Some(req.headers().clone());
        async {
            let mut r = Response::new(full("ok"));
            let h = r.headers_mut();
            h.insert("connection", "X-Up-Secret".parse().unwrap());
            h.insert("x-up-secret", "1".parse().unwrap());
            h.insert("keep-alive", "timeout=9".parse().unwrap());
            h.insert("x-up-public", "yes".parse().unwrap());
            r
        }
    });
    let mut direct = Visitor::connect(up.addr);
    direct.send(&request_bytes("GET", "/", &[]));
    let (h, _) = direct.response();
    // The upstream does send them.
    assert_eq!(h.get("x-up-secret"), Some("1"), "{h:?}");
    assert_eq!(h.get("connection"), Some("X-Up-Secret"), "{h:?}");

    let fg = Flowgate::start("", &proxy_rules(up.addr, "5s"));
    let mut v = Visitor::connect(fg.addr);
    v.send(&request_bytes(
        "GET",
        "/lp",
        &[
            ("Connection", "keep-alive, X-Secret"),
            ("X-Secret", "1"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Proxy-Connection", "x"),
            ("X-Custom", "y"),
        ],
    ));
    let (h, body) = v.response();
    assert_eq!((h.status(), body.as_slice()), (200, &b"ok"[..]), "{h:?}");
    let up_head = seen.lock().unwrap().take().expect("the upstream was asked");
    for name in ["x-secret", "keep-alive", "te", "proxy-connection"] {
        assert!(
            !up_head.contains_key(name),
            "{name} went upstream: {up_head:?}"
        );
    }
    let conn = up_head.get("connection").map(|v| v.to_str().unwrap());
    let conn = conn.unwrap_or("").to_ascii_lowercase();
    assert!(!conn.contains("x-secret"), "{up_head:?}");
    assert_eq!(up_head["x-custom"], "y", "{up_head:?}");

    for name in ["x-up-secret", "keep-alive"] {
        assert_eq!(h.get(name), None, "{name} reached the visitor: {h:?}");
    }
    let conn = h.get("connection").unwrap_or("").to_ascii_lowercase();
    assert!(!conn.contains("x-up-secret"), "{h:?}");
    assert_eq!(h.get("x-up-public"), Some("yes"), "{h:?}");
}

#[test]
fn expect_100_continue_gets_the_go_ahead_and_the_body_arrives() {
    let up = HyperUp::start(echo);
    let fg = Flowgate::start("", &proxy_rules(up.addr, "5s"));
    let mut v = Visitor::connect(fg.addr);
    v.send(&request_bytes(
        "POST",
        "/form",
        &[("Content-Length", "11"), ("Expect", "100-continue")],
    ));
    let interim = v.head();
    assert_eq!(interim.status(), 100, "{interim:?}");
    v.send(b"hello world");
    let seen = echoed(&mut v, b"hello world");
    assert_eq!(seen["text"], "hello world", "{seen}");
}

#[test]
fn a_slow_upload_is_not_counted_against_the_upstreams_read_timeout() {
    let up = HyperUp::start(echo);
    let fg = Flowgate::start("", &proxy_rules(up.addr, "500ms"));
    let data = payload(256 * 1024);
    let mut v = uploading(&fg, data.len());
    v.send(&data[..128 * 1024]);
    // A visitor on a slow link: nothing more for three times the upstream's read_timeout.
    // The upstream has not been asked to answer yet, so flowgate must not answer either.
    v.0.get_ref()
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    if let Some(h) = read_head(&mut v.0) {
        panic!("answered while the visitor was still uploading: {h:?}");
    }
    v.0.get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    v.send(&data[128 * 1024..]);
    echoed(&mut v, &data);
    let series = r#"flowgate_upstream_errors_total{kind="timeout",upstream="landing"}"#;
    assert_eq!(fg.metric(series), 0.0);
}
