//! A request described in words rather than received on a socket: what `flowgate explain`,
//! the admin `/explain` endpoint and rule tests evaluate.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::{Deserialize, Serialize};

use super::Snapshot;
use crate::rules::{RequestFacts, Step};
use crate::state::{TestState, View};

/// The click id a sample request's redirect is rendered with.
const SAMPLE_CLICK_ID: &str = "00000000-0000-7000-8000-000000000000";

/// `{"url", "ip", "ua", "headers": {..}, "method", "ja4"}`, as in `--batch` input and rule
/// tests.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleRequest {
    /// `https://host/path?query`, or `/path?query` with the host from `headers`.
    pub url: String,
    /// The visitor's address, as if already resolved from trusted proxies.
    #[serde(default)]
    pub ip: Option<IpAddr>,
    #[serde(default)]
    pub ua: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub method: Option<String>,
    /// The moment to judge `schedule` conditions at (RFC 3339); default: now.
    #[serde(default)]
    pub at: Option<String>,
    /// The TLS client's JA4 fingerprint, as a TLS listener would have computed it.
    #[serde(default)]
    pub ja4: Option<String>,
}

/// The answer `flowgate explain` prints.
#[derive(Debug, Serialize)]
pub struct Explanation {
    pub decision: DecisionView,
    pub visitor: VisitorView,
    pub trace: Vec<Step>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct DecisionView {
    pub campaign: Option<String>,
    pub flow: Option<String>,
    pub route: String,
    pub action: &'static str,
}

#[derive(Debug, Serialize)]
pub struct VisitorView {
    pub ip: String,
    pub country: Option<String>,
    pub region: Option<String>,
    pub city: Option<String>,
    pub asn: Option<u32>,
    pub as_org: Option<String>,
    pub ip_lists: Vec<String>,
    pub anonymous: Vec<&'static str>,
    pub bot: bool,
    pub device: &'static str,
    pub os: &'static str,
    pub browser: &'static str,
    pub ja4: Option<String>,
    /// `verified googlebot`, `claimed googlebot` or `none`.
    pub crawler: String,
}

/// Why a sample request cannot be judged, in the words `explain` and rule tests print.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SampleError {
    #[error("bad header name {0:?}")]
    HeaderName(String),
    #[error("bad value for header {0}")]
    HeaderValue(String),
    #[error("bad user agent")]
    UserAgent,
    #[error("url {0:?} must be http(s)://host/path or /path")]
    Url(String),
    #[error("url {url:?}: {reason} (flowgate answers 400)")]
    Path {
        url: String,
        reason: crate::path::PathError,
    },
    #[error("url {0:?}: bad host (flowgate answers 400)")]
    Host(String),
    #[error("bad method {0:?}")]
    Method(String),
    #[error("at {0:?} is not an RFC 3339 time")]
    At(String),
}

/// The parts of a sample request the rules read, owned.
struct Parsed {
    method: Method,
    host: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
}

impl SampleRequest {
    fn parse(&self) -> Result<Parsed, SampleError> {
        let mut headers = HeaderMap::new();
        for (k, v) in &self.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| SampleError::HeaderName(k.clone()))?;
            let value =
                HeaderValue::from_str(v).map_err(|_| SampleError::HeaderValue(k.clone()))?;
            headers.append(name, value);
        }
        if let Some(ua) = &self.ua {
            let value = HeaderValue::from_str(ua).map_err(|_| SampleError::UserAgent)?;
            headers.insert(http::header::USER_AGENT, value);
        }
        let rest = self
            .url
            .strip_prefix("https://")
            .or_else(|| self.url.strip_prefix("http://"));
        let (host, target) = match rest {
            Some(r) => match r.find('/') {
                Some(i) => (r[..i].to_string(), &r[i..]),
                None => (r.to_string(), "/"),
            },
            None if self.url.starts_with('/') => {
                let host = headers
                    .get("host")
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("");
                (host.to_string(), self.url.as_str())
            }
            None => return Err(SampleError::Url(self.url.clone())),
        };
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string())),
            None => (target, None),
        };
        // The same canonical forms the proxy gives the rules.
        let path = crate::path::normalize(path)
            .map_err(|reason| SampleError::Path {
                url: self.url.clone(),
                reason,
            })?
            .into_owned();
        let host = if host.is_empty() {
            host
        } else {
            crate::rules::request::canonical_host(&host)
                .ok_or_else(|| SampleError::Host(self.url.clone()))?
                .to_string()
        };
        let method = match &self.method {
            Some(m) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| SampleError::Method(m.clone()))?,
            None => Method::GET,
        };
        Ok(Parsed {
            method,
            host,
            path,
            query,
            headers,
        })
    }
}

impl Snapshot {
    /// The answer for a sample request, taking the state to answer as a new visitor with
    /// nothing counted: explain never reads the live state.
    pub fn explain(&self, req: &SampleRequest) -> Result<Explanation, SampleError> {
        self.explain_assuming(req, &TestState::default())
    }

    /// The same, with the state answering what `assumed` says (a rule test's `state:`).
    pub fn explain_assuming(
        &self,
        req: &SampleRequest,
        assumed: &TestState,
    ) -> Result<Explanation, SampleError> {
        let p = req.parse()?;
        let at = match &req.at {
            Some(t) => {
                Some(crate::time::parse_rfc3339(t).ok_or_else(|| SampleError::At(t.clone()))?)
            }
            None => None,
        };
        let facts = RequestFacts {
            method: &p.method,
            host: &p.host,
            path: &p.path,
            query: p.query.as_deref(),
            headers: &p.headers,
            at,
            rate_limited: Default::default(),
            state: std::cell::Cell::new(View::Assumed(assumed.assumed())),
            ja4: req.ja4.as_deref(),
        };
        let ip = req.ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let click = assumed.click.as_ref();
        let (answer, trace) = self.answer_traced(ip, &facts, SAMPLE_CLICK_ID, click);
        let v = answer.visitor;
        Ok(Explanation {
            decision: DecisionView {
                campaign: (!answer.campaign.is_empty()).then(|| answer.campaign.to_string()),
                flow: (!answer.flow.is_empty()).then(|| answer.flow.to_string()),
                route: answer.route.name.clone(),
                action: answer.route.action.kind(),
            },
            visitor: VisitorView {
                ip: v.ip.to_string(),
                country: v.country.map(|c| c.as_str().to_string()),
                region: v.region.as_deref().map(String::from),
                city: v.city.as_deref().map(String::from),
                asn: v.asn,
                as_org: v.as_org.as_deref().map(String::from),
                ip_lists: self
                    .intel
                    .list_names(v.ip_lists)
                    .map(String::from)
                    .collect(),
                anonymous: v.anonymous.names().collect(),
                bot: v.bot,
                device: v.device.as_str(),
                os: v.os.as_str(),
                browser: v.browser.as_str(),
                ja4: req.ja4.clone(),
                crawler: v.crawler.to_string(),
            },
            trace,
        })
    }
}
