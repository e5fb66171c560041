//! Responses flowgate writes itself: `respond` pages, redirects and error pages.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::body::Body;

/// Decisions differ per visitor: no shared cache may keep one.
const PRIVATE: HeaderValue = HeaderValue::from_static("private, no-store");
const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn local(code: u16, content_type: HeaderValue, body: Bytes) -> Response<Body> {
    let mut r = Response::new(Body::bytes(body));
    *r.status_mut() = status(code);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type);
    h.insert(header::CACHE_CONTROL, PRIVATE);
    r
}

pub fn page(code: u16, content_type: &HeaderValue, body: Bytes) -> Response<Body> {
    local(code, content_type.clone(), body)
}

pub fn text(code: u16, body: &'static str) -> Response<Body> {
    local(code, TEXT, Bytes::from_static(body.as_bytes()))
}

/// `location` was rendered by the route's template, which escapes what it inserts; a value
/// that still cannot be a header becomes an error page rather than a broken redirect.
pub fn redirect(code: u16, location: &str) -> Response<Body> {
    match HeaderValue::from_str(location) {
        Ok(loc) => {
            let mut r = local(code, TEXT, Bytes::new());
            r.headers_mut().insert(header::LOCATION, loc);
            r
        }
        Err(_) => error_page(500),
    }
}

pub fn error_page(code: u16) -> Response<Body> {
    let body: &'static [u8] = match code {
        400 => b"<!doctype html><title>400 Bad Request</title><h1>400 Bad Request</h1>\n",
        413 => b"<!doctype html><title>413 Content Too Large</title><h1>413 Content Too Large</h1>\n",
        502 => b"<!doctype html><title>502 Bad Gateway</title><h1>502 Bad Gateway</h1><p>The page is unavailable right now. Please try again shortly.</p>\n",
        504 => b"<!doctype html><title>504 Gateway Timeout</title><h1>504 Gateway Timeout</h1><p>The page took too long to answer. Please try again shortly.</p>\n",
        _ => b"<!doctype html><title>Error</title><h1>Something went wrong</h1>\n",
    };
    local(code, HTML, Bytes::from_static(body))
}
