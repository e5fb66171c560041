//! The admin listener: `/metrics`, `/healthz`, `/readyz`. Loopback by default.

use std::sync::Arc;

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use super::Metrics;

pub struct AdminService {
    pub metrics: Arc<Metrics>,
}

#[async_trait]
impl ServeHttp for AdminService {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path();
        let (status, content_type, body) = match path {
            "/metrics" => (
                StatusCode::OK,
                "text/plain; version=0.0.4",
                self.metrics.render(),
            ),
            "/healthz" => (StatusCode::OK, "text/plain", b"ok\n".to_vec()),
            // A snapshot is serving from the moment the listeners exist.
            "/readyz" => (StatusCode::OK, "text/plain", b"ready\n".to_vec()),
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
