//! The admin listener: `/metrics`, `/healthz`, `/readyz`, `/explain`. Loopback by default.

use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::lifecycle::InFlightCounter;
use crate::metrics::Metrics;
use crate::snapshot::{Live, SampleRequest};
use crate::url::{percent_decode, query_pairs};

pub struct AdminService {
    pub metrics: Arc<Metrics>,
    /// The drain's count of requests being answered, read at each scrape.
    pub in_flight: InFlightCounter,
    pub live: Arc<Live>,
    pub ready: crate::lifecycle::Readiness,
}

impl AdminService {
    /// `GET /explain?url=...&ip=...&ua=...&ja4=...`: the decision the serving snapshot makes.
    fn explain(&self, query: Option<&str>) -> (StatusCode, Vec<u8>) {
        let mut req = SampleRequest::default();
        let mut bad = None;
        for (k, v) in query_pairs(query.unwrap_or("")) {
            let v = percent_decode(v).into_owned();
            match k {
                "url" => req.url = v,
                "ua" => req.ua = Some(v),
                "ja4" => req.ja4 = Some(v),
                "ip" => match v.parse() {
                    Ok(ip) => req.ip = Some(ip),
                    Err(_) => bad = Some(format!("ip {v:?} is not an address")),
                },
                _ => bad = Some(format!("unknown parameter {k:?}; use url, ip, ua, ja4")),
            }
        }
        if req.url.is_empty() && bad.is_none() {
            bad = Some("url is required".into());
        }
        let answer = match bad {
            Some(e) => Err(e),
            None => self.live.current().explain(&req).map_err(|e| e.to_string()),
        };
        match answer {
            Ok(x) => (
                StatusCode::OK,
                serde_json::to_vec_pretty(&x).unwrap_or_default(),
            ),
            Err(e) => (
                StatusCode::BAD_REQUEST,
                serde_json::to_vec(&serde_json::json!({ "error": e })).unwrap_or_default(),
            ),
        }
    }
}

#[async_trait]
impl ServeHttp for AdminService {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let uri = &session.req_header().uri;
        let (status, content_type, body) = match uri.path() {
            "/explain" => {
                let (status, body) = self.explain(uri.query());
                (status, "application/json", body)
            }
            "/metrics" => {
                let in_flight = i64::try_from(self.in_flight.count()).unwrap_or(i64::MAX);
                self.metrics.requests_in_flight.set(in_flight);
                (
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    self.metrics.render(),
                )
            }
            "/healthz" => (StatusCode::OK, "text/plain", b"ok\n".to_vec()),
            // A snapshot exists before any listener does; ready means the proxy's own sockets
            // are served, and not yet draining.
            "/readyz" => match self.ready.not_ready() {
                None => (StatusCode::OK, "text/plain", b"ready\n".to_vec()),
                Some(why) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("{why}\n").into_bytes(),
                ),
            },
            _ => (StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
        };
        let len = body.len();
        Response::builder()
            .status(status)
            .header("content-type", content_type)
            .header("content-length", len)
            .body(body)
            .unwrap_or_else(|_| Response::new(Vec::new()))
    }
}
