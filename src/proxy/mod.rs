//! The pingora adapter. Each request pins one snapshot, resolves the visitor, asks the rules,
//! and acts: answer locally, redirect, or proxy to the route's upstream. `logging` records it.

mod respond;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use http::Uri;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::ErrorType;

use crate::events::{self, ClickRecord, ConversionEvent, EventQueue, Outcome, Record};
use crate::identity::{client_ip, CidrSet, ClientHints, ClientIpHeader, Visitor};
use crate::lifecycle::{InFlight, InFlightCounter};
use crate::metrics::Metrics;
use crate::rules::request::{percent_decode, query_pairs};
use crate::rules::{Action, Decision, RequestFacts, Vars};
use crate::snapshot::{Live, Snapshot};

/// The error that turns a request away after the process drained.
const DRAINED: ErrorType = ErrorType::Custom("drained");

pub struct Gateway {
    pub live: Arc<Live>,
    pub trusted_proxies: CidrSet,
    pub client_ip_header: ClientIpHeader,
    pub events: EventQueue,
    pub metrics: Arc<Metrics>,
    pub in_flight: InFlightCounter,
    pub postback: Option<Postback>,
}

/// `postback:` from the config, with the token resolved.
pub struct Postback {
    pub path: String,
    pub token: Option<String>,
}

/// Per-request state, carried between pingora's phases.
pub struct RequestCtx {
    start: Instant,
    click_id: uuid::Uuid,
    peer_ip: IpAddr,
    snapshot: Option<Arc<Snapshot>>,
    visitor: Option<Visitor>,
    decision: Option<Decision>,
    upstream: Option<SocketAddr>,
    connect_attempts: usize,
    /// Status of a response flowgate wrote itself (respond, redirect, error page).
    status: Option<u16>,
    /// Held until the request's event is sent, so shutdown knows when all are done.
    _in_flight: InFlight,
}

impl RequestCtx {
    fn click_id_str<'b>(&self, buf: &'b mut [u8; 36]) -> &'b str {
        self.click_id.hyphenated().encode_lower(buf)
    }
}

fn facts(req: &RequestHeader) -> RequestFacts<'_> {
    let host = req
        .uri
        .host()
        .or_else(|| req.headers.get("host").and_then(|h| h.to_str().ok()))
        .unwrap_or("");
    RequestFacts {
        method: &req.method,
        host,
        path: req.uri.path(),
        query: req.uri.query(),
        headers: &req.headers,
        at: None,
    }
}

/// A conversion from `?click_id=...&payout=...&currency=...&status=...&token=...`.
fn conversion(
    pb: &Postback,
    query: Option<&str>,
) -> std::result::Result<ConversionEvent, (u16, &'static str)> {
    let mut click_id = None;
    let (mut payout, mut currency, mut status, mut token) = (None, None, None, None);
    for (k, v) in query_pairs(query.unwrap_or("")) {
        let v = percent_decode(v);
        match k {
            "click_id" | "cid" | "subid" => click_id = Some(v.into_owned()),
            "payout" | "amount" | "sum" => payout = Some(v.into_owned()),
            "currency" => currency = Some(v.into_owned()),
            "status" => status = Some(v.into_owned()),
            "token" => token = Some(v.into_owned()),
            _ => {}
        }
    }
    if let Some(want) = &pb.token {
        let given = token.unwrap_or_default();
        if !constant_time_eq(given.as_bytes(), want.as_bytes()) {
            return Err((403, "bad token\n"));
        }
    }
    let click_id = click_id
        .filter(|c| !c.is_empty() && c.len() <= 64)
        .ok_or((400, "click_id is required\n"))?;
    let payout = match payout.filter(|p| !p.is_empty()) {
        Some(p) => Some(
            p.parse::<f64>()
                .ok()
                .filter(|p| p.is_finite())
                .ok_or((400, "payout must be a number\n"))?,
        ),
        None => None,
    };
    let short = |s: Option<String>| {
        s.filter(|s| !s.is_empty())
            .map(|s| s.chars().take(32).collect())
    };
    Ok(ConversionEvent {
        ts: crate::time::rfc3339(crate::time::now_ms()),
        click_id,
        payout,
        currency: short(currency),
        conversion_status: short(status),
    })
}

/// Compares secrets without leaking, through timing, how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Gateway {
    fn upstream_of<'s>(
        &self,
        snap: &'s Snapshot,
        d: &Decision,
    ) -> Option<&'s crate::rules::Upstream> {
        match &snap.rules.route(d.route).action {
            Action::Proxy { upstream, .. } => snap.rules.upstreams.get(*upstream),
            _ => None,
        }
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            start: Instant::now(),
            click_id: events::new_click_id(),
            peer_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            snapshot: None,
            visitor: None,
            decision: None,
            upstream: None,
            connect_attempts: 0,
            status: None,
            _in_flight: self.in_flight.enter(),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        if self.in_flight.is_closed() {
            return Error::e_explain(DRAINED, "process drained; closing the connection");
        }
        if let Some(pb) = self
            .postback
            .as_ref()
            .filter(|pb| session.req_header().uri.path() == pb.path)
        {
            let answer = conversion(pb, session.req_header().uri.query());
            let (status, body) = match answer {
                Ok(event) => {
                    self.events.send(Record::Conversion(event));
                    (200, "ok\n")
                }
                Err((status, msg)) => (status, msg),
            };
            ctx.status = Some(status);
            respond::Local::page(
                status,
                "text/plain; charset=utf-8",
                Bytes::from_static(body.as_bytes()),
            )
            .write(session)
            .await?;
            return Ok(true);
        }
        let snap = self.live.current();
        ctx.peer_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map_or(ctx.peer_ip, |a| a.ip().to_canonical());
        let req = session.req_header();
        let ip = client_ip(
            ctx.peer_ip,
            &req.headers,
            &self.trusted_proxies,
            &self.client_ip_header,
        );
        let facts = facts(req);
        let visitor = snap.intel.visitor(
            ip,
            facts.user_agent(),
            ClientHints::from_headers(&req.headers),
        );
        let decision = snap.rules.evaluate(&visitor, &facts);
        if let Some(shadow) = &snap.shadow {
            let d = shadow.evaluate(&visitor, &facts);
            self.metrics
                .shadow_decisions
                .with_label_values(&[
                    snap.rules.campaign_id(&decision).unwrap_or(""),
                    snap.rules.route(decision.route).name.as_str(),
                    shadow.route(d.route).name.as_str(),
                ])
                .inc();
        }

        let local = match &snap.rules.route(decision.route).action {
            Action::Proxy { .. } => None,
            Action::Respond {
                status,
                body,
                content_type,
            } => Some(respond::Local::page(*status, content_type, body.clone())),
            Action::Redirect {
                to,
                status,
                keep_query,
            } => {
                let mut buf = [0u8; 36];
                let vars = Vars {
                    click_id: ctx.click_id_str(&mut buf),
                    country: visitor.country.as_ref().map(|c| c.as_str()),
                    asn: visitor.asn,
                    campaign: snap.rules.campaign_id(&decision).unwrap_or(""),
                    flow: snap.rules.flow_name(&decision).unwrap_or(""),
                    route: &snap.rules.route(decision.route).name,
                };
                let location = to.render(&vars, &facts, *keep_query);
                Some(respond::Local::redirect(*status, location))
            }
        };
        ctx.visitor = Some(visitor);
        ctx.decision = Some(decision);
        ctx.snapshot = Some(snap);
        match local {
            None => Ok(false),
            Some(local) => {
                ctx.status = Some(local.status);
                local.write(session).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let (Some(snap), Some(decision)) = (&ctx.snapshot, &ctx.decision) else {
            return Error::e_explain(ErrorType::InternalError, "no decision before upstream_peer");
        };
        let Some(up) = self.upstream_of(snap, decision) else {
            return Error::e_explain(ErrorType::InternalError, "route has no upstream");
        };
        let addr = up.next_peer();
        ctx.upstream = Some(addr);
        let mut peer = HttpPeer::new(addr, up.tls, up.sni.clone());
        peer.options.connection_timeout = Some(up.connect_timeout);
        peer.options.total_connection_timeout = Some(up.connect_timeout);
        peer.options.read_timeout = Some(up.read_timeout);
        peer.options.write_timeout = Some(up.read_timeout);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let (Some(snap), Some(decision), Some(visitor)) =
            (&ctx.snapshot, &ctx.decision, &ctx.visitor)
        else {
            return Error::e_explain(
                ErrorType::InternalError,
                "no decision before upstream request",
            );
        };
        if let Action::Proxy { upstream, path } = &snap.rules.route(decision.route).action {
            if !path.is_empty() {
                let original = upstream_request
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str());
                let rewritten = format!("{path}{original}");
                let uri: Uri = rewritten.parse().or_err(
                    ErrorType::InternalError,
                    "rewritten upstream path is not a URI",
                )?;
                upstream_request.set_uri(uri);
            }
            if let Some(host) = &snap.rules.upstreams[*upstream].host {
                upstream_request.insert_header("host", host.as_str())?;
            }
        }
        // Each proxy appends the address it heard from; from an untrusted peer the incoming
        // chain is the visitor's own words and is replaced.
        let peer = ctx.peer_ip.to_string();
        let forwarded = match upstream_request.headers.get("x-forwarded-for") {
            Some(prev) if self.trusted_proxies.contains(ctx.peer_ip) => {
                format!("{}, {peer}", String::from_utf8_lossy(prev.as_bytes()))
            }
            _ => peer,
        };
        upstream_request.insert_header("x-forwarded-for", forwarded)?;
        upstream_request.insert_header("x-real-ip", visitor.ip.to_string())?;
        let mut buf = [0u8; 36];
        upstream_request.insert_header("x-click-id", ctx.click_id_str(&mut buf).to_string())?;
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        ctx.connect_attempts += 1;
        // Try each peer of the pool at most once; a single dead peer is not hammered.
        let peers = match (&ctx.snapshot, &ctx.decision) {
            (Some(s), Some(d)) => self.upstream_of(s, d).map_or(1, |u| u.peers.len()),
            _ => 1,
        };
        e.set_retry(ctx.connect_attempts < peers);
        e
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let (code, kind) = match e.etype() {
            // Drained: close the connection without an answer, so the client retries elsewhere.
            t if *t == DRAINED => (0, ""),
            ErrorType::ConnectTimedout | ErrorType::TLSHandshakeTimedout => {
                (504, "connect_timeout")
            }
            ErrorType::ReadTimedout | ErrorType::WriteTimedout => (504, "timeout"),
            ErrorType::ConnectRefused | ErrorType::ConnectNoRoute | ErrorType::ConnectError => {
                (502, "connect")
            }
            ErrorType::TLSHandshakeFailure | ErrorType::InvalidCert | ErrorType::HandshakeError => {
                (502, "tls")
            }
            ErrorType::HTTPStatus(c) => (*c, ""),
            _ => match e.esource() {
                ErrorSource::Upstream => (502, "protocol"),
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed => {
                        (0, "")
                    }
                    _ => (400, ""),
                },
                _ => (500, ""),
            },
        };
        if !kind.is_empty() {
            let name = match (&ctx.snapshot, &ctx.decision) {
                (Some(s), Some(d)) => self.upstream_of(s, d).map_or("", |u| u.name.as_str()),
                _ => "",
            };
            self.metrics
                .upstream_errors
                .with_label_values(&[name, kind])
                .inc();
        }
        if code > 0 && session.response_written().is_none() {
            ctx.status = Some(code);
            if let Err(err) = respond::Local::error_page(code).write(session).await {
                log::debug!("cannot send error page: {err}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// What pingora's own error lines say about a request: rule names, never visitor data.
    fn request_summary(&self, _session: &Session, ctx: &RequestCtx) -> String {
        match (&ctx.snapshot, &ctx.decision) {
            (Some(s), Some(d)) => format!(
                "campaign {}, flow {}, route {}",
                s.rules.campaign_id(d).unwrap_or("-"),
                s.rules.flow_name(d).unwrap_or("-"),
                s.rules.route(d.route).name
            ),
            _ => "before a decision".to_string(),
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        let (Some(snap), Some(decision)) = (&ctx.snapshot, ctx.decision) else {
            return;
        };
        let duration = ctx.start.elapsed();
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .or(ctx.status)
            .unwrap_or(0);
        let route = &snap.rules.route(decision.route).name;
        self.metrics
            .requests
            .with_label_values(&[
                snap.rules.campaign_id(&decision).unwrap_or(""),
                snap.rules.flow_name(&decision).unwrap_or(""),
                route.as_str(),
            ])
            .inc();
        self.metrics
            .request_duration
            .observe(duration.as_secs_f64());
        if !self.events.is_enabled() {
            return;
        }
        let Some(visitor) = ctx.visitor.take() else {
            return;
        };
        let outcome = Outcome {
            ts_ms: crate::time::now_ms(),
            click_id: ctx.click_id,
            status,
            upstream: ctx.upstream,
            duration,
        };
        let facts = facts(session.req_header());
        let record = ClickRecord::capture(snap.clone(), visitor, decision, &facts, outcome);
        self.events.send(Record::Click(record));
    }
}
