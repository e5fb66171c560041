//! The proxy action of one request: the upstream target and forwarding headers, the leg to
//! the upstream and back (413 for an upload over the limit), and a WebSocket tunnel.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::{Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use super::body::{Body, Progress};
use super::conn::ConnState;
use super::headers::{self, Forwarding};
use super::upstream::{self, Pooled};
use super::{respond, Gateway};
use crate::snapshot::Target;

/// The upstream's request target: the visitor's own when the rules left it as sent (no prefix,
/// the path already canonical, origin form), else the one the core rewrote.
pub(super) fn target(uri: &Uri, t: &Target<'_, '_>) -> Option<Uri> {
    if uri.scheme().is_none() && t.is_as_sent(uri.path()) {
        return Some(uri.clone());
    }
    Uri::try_from(t.to_path_and_query()).ok()
}

/// A switch of protocols both sides asked for: once hyper hands over both connections, the
/// connection's task carries bytes each way (`tunnel::run`).
fn tunnel(gw: &Gateway, conn: &ConnState, down: Option<OnUpgrade>, resp: &mut Response<Incoming>) {
    let up = resp.extensions_mut().remove::<OnUpgrade>();
    let (Some(down), Some(up)) = (down, up) else {
        return;
    };
    conn.becomes_tunnel(super::tunnel::Pending {
        down,
        up,
        in_flight: gw.in_flight.clone(),
        idle: conn.settings.limits.tunnel_idle_timeout.0,
        bytes: (gw.metrics.bytes_in.clone(), gw.metrics.bytes_out.clone()),
    });
}

/// 413, and the connection closes: the rest of the body is not worth reading.
fn too_large() -> Response<Body> {
    let mut r = respond::error_page(413);
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// The proxy action of one request.
pub(super) struct Leg<'a> {
    pub(super) gw: &'a Gateway,
    pub(super) conn: &'a ConnState,
    pub(super) up: &'a crate::rules::Upstream,
    pub(super) target: &'a Uri,
    pub(super) fwd: Forwarding,
}

/// What the proxy action came back with.
pub(super) struct Proxied {
    /// The upstream's answer, or an error page.
    pub(super) response: Response<Body>,
    /// The peer asked.
    pub(super) peer: Option<SocketAddr>,
    /// The connection to give back to the pool once the answer has been read to the end.
    pub(super) pooled: Option<Pooled>,
    pub(super) upload: Option<Arc<Progress>>,
    /// When the request went to the upstream that answered it: its latency ends with the
    /// request's own clock reading, which saves one per request.
    pub(super) sent: Option<Instant>,
}

impl Proxied {
    fn error(response: Response<Body>, peer: Option<SocketAddr>) -> Proxied {
        Proxied {
            response,
            peer,
            pooled: None,
            upload: None,
            sent: None,
        }
    }
}

impl Leg<'_> {
    pub(super) async fn proxy(
        self,
        method: &http::Method,
        headers: http::HeaderMap,
        body: Incoming,
        on_upgrade: Option<OnUpgrade>,
    ) -> Proxied {
        let upgrade = headers::wants_upgrade(&headers);
        // RFC 9110 §9.2.2: only an idempotent request may be sent again unasked.
        let replay = hyper::body::Body::is_end_stream(&body) && method.is_idempotent();
        let allowed = self.conn.settings.limits.max_body_bytes.0;
        if hyper::body::Body::size_hint(&body).lower() > allowed {
            return Proxied::error(too_large(), None);
        }
        let progress =
            (!hyper::body::Body::is_end_stream(&body)).then(|| Arc::new(Progress::new(allowed)));
        let body = match &progress {
            None => Body::Stream(body),
            Some(p) => {
                // An upload that stops moving ends the connection (the upstream's own silence
                // is its read_timeout's business, which comes first).
                let limit = self
                    .conn
                    .settings
                    .limits
                    .body_timeout
                    .0
                    .max(self.up.read_timeout);
                self.conn.stall_limit(limit);
                Body::Upload(body, p.clone())
            }
        };
        let req = headers::upstream_request(method, headers, self.target, self.fwd, upgrade, body);
        let sent = Instant::now();
        let answer = match upstream::send(self.up, req, replay).await {
            Ok(a) => a,
            Err((_, peer))
                if progress
                    .as_ref()
                    .is_some_and(|p| p.too_large.load(std::sync::atomic::Ordering::Relaxed)) =>
            {
                return Proxied::error(too_large(), Some(peer));
            }
            Err((e, peer)) => {
                self.gw.count_upstream_error(&self.up.name, e.kind());
                return Proxied::error(respond::error_page(e.status()), Some(peer));
            }
        };
        let mut resp = answer.response;
        let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        let pooled = if !switching {
            Some(answer.conn)
        } else if upgrade {
            tunnel(self.gw, self.conn, on_upgrade, &mut resp);
            None
        } else {
            // An upgrade nobody asked for: its bytes would not be HTTP any more.
            self.gw.count_upstream_error(&self.up.name, "protocol");
            return Proxied::error(respond::error_page(502), Some(answer.peer));
        };
        let (mut rp, rb) = resp.into_parts();
        headers::clean_response(&mut rp.headers, switching);
        Proxied {
            response: Response::from_parts(rp, Body::Stream(rb)),
            peer: Some(answer.peer),
            pooled,
            upload: progress,
            sent: Some(sent),
        }
    }
}
