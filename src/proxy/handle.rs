//! One request: pin the snapshot, work out the visitor, ask the rules, carry the decision out
//! (answer, redirect or proxy), and leave its click event for when the answer is over.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use super::body::{Body, Progress, Tracked};
use super::conn::ConnState;
use super::forward::{self, Leg};
use super::headers::Forwarding;
use super::upstream::Pooled;
use super::{click_through, postback, respond, Gateway};
use crate::events::{self, ClickRecord, Outcome, Record};
use crate::identity::client_ip;
use crate::lifecycle::InFlight;
use crate::rules::request::canonical_host;
use crate::rules::Decision;
use crate::rules::RequestFacts;
use crate::snapshot::{Snapshot, Todo};
use crate::state::{Click, View};

/// The process drained: the connection closes without an answer, and the client retries.
#[derive(Debug)]
pub struct Drained;

impl std::fmt::Display for Drained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("process drained")
    }
}

impl std::error::Error for Drained {}

/// What happens once the visitor has the whole answer (or went away).
pub struct Finish {
    gw: Arc<Gateway>,
    conn: Arc<ConnState>,
    record: Option<Box<ClickRecord>>,
    pooled: Option<Pooled>,
    /// The upload that went with the proxied request; its connection is reusable only once
    /// the upload has been sent to the end.
    upload: Option<Arc<Progress>>,
    /// When the request began, for the event of a request whose visitor went away.
    start: Instant,
    ran: bool,
    _in_flight: InFlight,
}

impl Finish {
    /// `sent`: the response body's bytes handed to the visitor's connection.
    pub fn run(mut self, complete: bool, sent: u64) {
        if sent > 0 {
            self.gw.metrics.bytes_out.inc_by(sent);
        }
        self.count_upload();
        let upload_done = self.upload.as_ref().is_none_or(|u| u.ended());
        if let Some(p) = self.pooled.take() {
            if complete && upload_done {
                p.release();
            }
        }
        if let Some(r) = self.record.take() {
            self.gw.events.send(Record::Click(r));
        }
        self.ran = true;
        self.conn.request_finished();
    }

    fn count_upload(&self) {
        if let Some(u) = &self.upload {
            self.gw.metrics.bytes_in.inc_by(u.sent());
        }
    }
}

/// The visitor went away before the answer was ready: the request still gets its event, with
/// nginx's 499 ("client closed request").
impl Drop for Finish {
    fn drop(&mut self) {
        if self.ran {
            return;
        }
        self.count_upload();
        if let Some(mut r) = self.record.take() {
            r.set_outcome(Outcome {
                ts_ms: crate::time::now_ms(),
                click_id: r.click_id(),
                status: 499,
                upstream: None,
                duration: self.start.elapsed(),
            });
            self.gw.events.send(Record::Click(r));
        }
        self.conn.request_finished();
    }
}

/// What the rules see of the request: its host and path in canonical form (RFC 9112 §3.2:
/// HTTP/1.1 needs a host; `path::normalize` for the path), or why it is refused.
fn facts<'a>(
    parts: &'a Parts,
    path: &'a str,
    ja4: Option<&'a str>,
) -> Result<RequestFacts<'a>, &'static str> {
    // RFC 9112 §3.2: more than one Host is refused; two could decide two different things.
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    if hosts.next().is_some() && hosts.next().is_some() {
        return Err("more than one host");
    }
    let raw_host = match parts.uri.authority() {
        Some(a) => Some(a.as_str()),
        None => match parts.headers.get(header::HOST) {
            Some(h) => Some(h.to_str().map_err(|_| "host is not text")?),
            None => None,
        },
    };
    let host = match raw_host {
        Some(h) => canonical_host(h).ok_or("bad host")?,
        None if parts.version == Version::HTTP_11 => return Err("no host"),
        None => "",
    };
    Ok(RequestFacts {
        method: &parts.method,
        host,
        path,
        query: parts.uri.query(),
        headers: &parts.headers,
        at: None,
        rate_limited: Default::default(),
        state: Default::default(),
        ja4,
    })
}

pub async fn handle(
    gw: Arc<Gateway>,
    conn: Arc<ConnState>,
    peer: IpAddr,
    req: Request<Incoming>,
) -> Result<Response<Tracked>, Drained> {
    if gw.in_flight.is_closed() {
        return Err(Drained);
    }
    let start = Instant::now();
    // The answer to the last request a connection may carry closes it.
    let last = conn.request_started() >= conn.settings.limits.requests_per_connection;
    let in_flight = gw.in_flight.enter();
    let (mut parts, body) = req.into_parts();
    let mut finish = Finish {
        gw: gw.clone(),
        conn: conn.clone(),
        record: None,
        pooled: None,
        upload: None,
        start,
        ran: false,
        _in_flight: in_flight,
    };
    if let Some(pb) = (conn.settings.postback)
        .as_ref()
        .filter(|pb| parts.uri.path() == pb.path)
    {
        let answer = match postback::conversion(pb, parts.uri.query()) {
            Ok(event) => {
                postback::record(&gw, event, parts.uri.query()).await;
                respond::text(200, "ok\n")
            }
            Err((status, msg)) => respond::text(status, msg),
        };
        return Ok(finished(answer, finish, last || conn.draining()));
    }

    let on_upgrade = parts.extensions.remove::<OnUpgrade>();
    let path = match crate::path::normalize(parts.uri.path()) {
        Ok(p) => p,
        Err(e) => {
            log::debug!("request refused: {e}");
            return Ok(finished(respond::error_page(400), finish, true));
        }
    };
    let ja4 = conn.ja4.as_ref().map(crate::identity::Ja4::as_str);
    let facts = match facts(&parts, &path, ja4) {
        Ok(f) => f,
        Err(e) => {
            log::debug!("request refused: {e}");
            return Ok(finished(respond::error_page(400), finish, true));
        }
    };
    let snap = gw.live.current();
    let peer_trusted = conn.peer_trusted;
    let ip = if peer_trusted {
        client_ip(
            peer,
            &parts.headers,
            &conn.settings.trusted_proxies,
            &conn.settings.client_ip_header,
        )
    } else {
        peer
    };
    let click_id = events::new_click_id();
    let mut id_buf = [0u8; 36];
    let click_id_str = click_id.hyphenated().encode_lower(&mut id_buf);
    // A lander's click-through continues its click: no new click, no pass through the flows.
    let through = snap.rules.click_through(&facts);
    let lander = match through {
        Some(ci) => {
            let campaign = &snap.rules.campaigns[ci].id;
            click_through::find(&gw.state, &parts.headers, facts.query, campaign).await
        }
        None => None,
    };
    let first_params = lander.as_ref().map(click_through::params);
    // What the visitor's cookie says, and its pseudonym when `unique` asks: never a read of
    // the store. Rules that ask for no state pay nothing for it: no cookie is read or set,
    // no click is stored (SQLite and the keyed hashes measured 100k instructions a click).
    let remembers = through.is_none()
        && (snap.rules.remembers || snap.shadow.as_ref().is_some_and(|s| s.remembers));
    let mut visit = remembers.then(|| gw.state.visit(ip, facts.user_agent(), &parts.headers));
    let asks_unique = snap.rules.asks_unique || snap.shadow.as_ref().is_some_and(|s| s.asks_unique);
    if let Some(visit) = visit.as_mut().filter(|_| asks_unique) {
        gw.state.recall(visit).await;
    }
    let answer = match (through, &visit) {
        (Some(ci), _) => {
            let lander = lander.as_ref();
            let params = first_params.as_ref();
            snap.answer_click_through(ip, &facts, ci, lander, params, click_id_str)
        }
        (None, Some(visit)) => {
            facts.state.set(View::Live(visit));
            // A cap a shared store refused is full: the rules decide again.
            loop {
                let answer = snap.answer(ip, &facts, click_id_str);
                if gw.state.confirm(visit).await {
                    break answer;
                }
                facts.rate_limited.set(false);
            }
        }
        (None, None) => snap.answer(ip, &facts, click_id_str),
    };
    let source = super::click::source(&snap, &answer.visitor, &facts);
    let clicked = visit.as_ref().map(|visit| {
        let mut click = stored_click(&snap, &answer.decision, &facts, ip, click_id, visit.now_ms);
        if let Some(s) = &source {
            click.source = Some(s.name.clone());
            click.source_params = Some(super::click::params_json(s));
        }
        gw.state.clicked(visit, click)
    });
    let (unique, set_cookie) = clicked.map_or((None, None), |c| (c.unique, c.set_cookie));
    // The lander's click, for its click-through to find.
    let click_cookie = (visit.is_some() && snap.rules.leads_to_click_through(&answer.decision))
        .then(|| gw.state.click_cookie(click_id))
        .flatten();
    let served_id = lander
        .as_ref()
        .map_or(&*click_id_str, |c| c.click_id.as_str());
    let (campaign, route) = (answer.campaign, answer.route);
    let (meters, decision) = (&snap.meters, answer.decision);
    let visitor_kind = crate::snapshot::visitor_kind(&answer.visitor);
    if facts.rate_limited.get() {
        meters.rate_limited(&decision);
    }
    if let Some(shadow) = answer.shadow {
        gw.metrics
            .shadow_decisions
            .with_label_values(&[campaign, &route.name, shadow])
            .inc();
    }
    let plan = match &answer.todo {
        Todo::Page {
            status,
            content_type,
            body,
        } => Plan::Answer(respond::page(*status, content_type, (*body).clone())),
        Todo::Redirect { status, location } => Plan::Answer(respond::redirect(*status, location)),
        Todo::Proxy { upstream, target } => match forward::target(&parts.uri, target) {
            None => Plan::Answer(respond::error_page(400)),
            Some(target) => {
                let up = *upstream;
                let latency = match &route.action {
                    crate::rules::Action::Proxy { upstream, .. } => meters.upstream(*upstream),
                    _ => None,
                };
                let fwd = Forwarding {
                    // RFC 9112 §3.2.2: an absolute-form target's authority replaces Host.
                    host: up.host.clone().or_else(|| {
                        parts
                            .uri
                            .authority()
                            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
                    }),
                    client_ip_header: match &conn.settings.client_ip_header {
                        crate::identity::ClientIpHeader::Single(name) => Some(name.clone()),
                        crate::identity::ClientIpHeader::XForwardedFor => None,
                    },
                    ..Forwarding::new(&parts.headers, peer, peer_trusted, ip, served_id)
                };
                Plan::Proxy {
                    up,
                    target,
                    fwd,
                    latency,
                }
            }
        },
    };
    // Captured now, while the request's headers are still the visitor's: a proxied request
    // hands its header map on to the upstream.
    let record = (through.is_none() && gw.events.is_enabled()).then(|| {
        let pending = Outcome {
            ts_ms: 0,
            click_id,
            status: 0,
            upstream: None,
            duration: std::time::Duration::ZERO,
        };
        let mut record = Box::new(super::click::record(
            &snap,
            answer.visitor,
            &answer.decision,
            &facts,
            unique,
            pending,
        ));
        record.set_source(source);
        record
    });

    finish.record = record;
    // When the request went upstream, and where its latency is counted.
    let mut upstream_sent = None;
    // The visitor reached flowgate over TLS, or a trusted proxy says it reached that proxy so.
    let mut secure = conn.tls;
    let (response, upstream_peer) = match plan {
        Plan::Answer(r) => (r, None),
        Plan::Proxy {
            up,
            target,
            fwd,
            latency,
        } => {
            if set_cookie.is_some() || click_cookie.is_some() {
                secure = secure || forwarded_https(&conn, &parts.headers);
            }
            let headers = std::mem::take(&mut parts.headers);
            let leg = Leg {
                gw: &gw,
                conn: &conn,
                up,
                target: &target,
                fwd,
            };
            let p = leg.proxy(&parts.method, headers, body, on_upgrade).await;
            finish.upload = p.upload;
            if p.pooled.is_some() {
                // From here the upstream's body streams; it may not stall longer than this.
                conn.stall_limit(up.read_timeout);
            }
            finish.pooled = p.pooled;
            upstream_sent = p.sent.zip(latency);
            (p.response, p.peer)
        }
    };

    let mut response = response;
    if !secure && (set_cookie.is_some() || click_cookie.is_some()) {
        secure = forwarded_https(&conn, &parts.headers);
    }
    for cookie in [set_cookie, click_cookie].into_iter().flatten() {
        let cookie = if secure { secured(cookie) } else { cookie };
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    let status = response.status().as_u16();
    if through.is_some() && gw.events.is_enabled() {
        let event = click_through::event(&snap, &decision, lander.as_ref(), status);
        gw.events.send(Record::LpClick(event));
    }
    let now = Instant::now();
    let duration = now.duration_since(start);
    if let Some((sent, latency)) = upstream_sent {
        latency.observe(now.duration_since(sent).as_secs_f64());
    }
    meters.answered(&decision, visitor_kind, status, duration.as_secs_f64());
    if let Some(r) = &mut finish.record {
        r.set_outcome(Outcome {
            ts_ms: crate::time::now_ms(),
            click_id,
            status,
            upstream: upstream_peer,
            duration,
        });
    }
    Ok(finished(response, finish, last || conn.draining()))
}

/// The click as the state store keeps it: the decision's names and scopes.
fn stored_click(
    snap: &Snapshot,
    d: &Decision,
    facts: &RequestFacts,
    ip: IpAddr,
    click_id: uuid::Uuid,
    ts_ms: u64,
) -> Click {
    let campaign = d.campaign.map(|c| &snap.rules.campaigns[c]);
    let flow = campaign.zip(d.flow).map(|(c, f)| &c.flows[f]);
    Click {
        click_id,
        ts_ms,
        campaign: snap.names.campaign(d).cloned(),
        flow: snap.names.flow(d).cloned(),
        route: snap.names.route(d).0.clone(),
        query: facts.query.map(|q| Box::from(clip_query(q))),
        visitor: None,
        ip,
        ua: None,
        unique: None,
        scopes: [campaign.map_or(0, |c| c.scope), flow.map_or(0, |f| f.scope)],
        source: None,
        source_params: None,
    }
}

/// The store keeps a few named parameters: a query past 2 KiB is cut at its last whole
/// parameter before that.
fn clip_query(q: &str) -> &str {
    const MAX: usize = 2048;
    if q.len() <= MAX {
        return q;
    }
    let mut end = MAX;
    while !q.is_char_boundary(end) {
        end -= 1;
    }
    q[..end].rfind('&').map_or("", |i| &q[..i])
}

/// What the decision asks for: an answer flowgate has, or a request for an upstream.
enum Plan<'s> {
    Answer(Response<Body>),
    Proxy {
        up: &'s crate::rules::Upstream,
        target: Uri,
        fwd: Forwarding,
        latency: Option<&'s prometheus::Histogram>,
    },
}

/// The response with its `Finish`; `close` makes it the connection's last.
fn finished(resp: Response<Body>, finish: Finish, close: bool) -> Response<Tracked> {
    let (mut parts, body) = resp.into_parts();
    if close && parts.status != StatusCode::SWITCHING_PROTOCOLS {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Response::from_parts(parts, Tracked::new(body, Some(finish)))
}

/// A trusted proxy in front says the visitor came over HTTPS.
fn forwarded_https(conn: &ConnState, headers: &http::HeaderMap) -> bool {
    conn.peer_trusted
        && headers
            .get("x-forwarded-proto")
            .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// The cookie with `Secure`: a browser then never sends it over plain HTTP, where anyone on
/// the path could read or replay it.
fn secured(cookie: HeaderValue) -> HeaderValue {
    let mut v = Vec::with_capacity(cookie.len() + 8);
    v.extend_from_slice(cookie.as_bytes());
    v.extend_from_slice(b"; Secure");
    HeaderValue::from_bytes(&v).unwrap_or(cookie)
}
