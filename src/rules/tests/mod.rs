//! In-process tests of the decision core: rule files written as YAML, compiled by the real
//! compiler, evaluated for visitors built by the real identity code. No files, no sockets.

mod campaigns;
mod claims;
mod click_through;
mod conditions;
mod errors;
mod evaluate;
mod parse_errors;
mod sources;
mod splits;
mod state;
mod templates;

use std::net::IpAddr;
use std::sync::OnceLock;

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::compile::from_texts;
use super::{RequestFacts, Rules};
use crate::identity::{Anonymous, CidrSet, ClientHints, Intel, IpList, Visitor};

pub const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                          (KHTML, like Gecko) Chrome/124.0 Safari/537.36";
pub const CURL: &str = "curl/8.5.0";

/// No databases; one IP list, `datacenter`, of 198.51.100.0/24.
pub fn intel() -> &'static Intel {
    static INTEL: OnceLock<Intel> = OnceLock::new();
    INTEL.get_or_init(|| {
        let mut intel = Intel::default();
        intel.lists.push(IpList {
            name: "datacenter".into(),
            set: CidrSet::new(["198.51.100.0/24".parse().expect("a CIDR")]),
            anonymous: Anonymous::default(),
            skipped: 0,
            modified: None,
        });
        intel
    })
}

/// Rules from one file, `rules/main.yaml`; panics with every problem if they do not compile.
pub fn rules(yaml: &str) -> Rules {
    from_texts(&[("rules/main.yaml", yaml)], intel()).unwrap_or_else(|p| panic!("{p}"))
}

/// Every problem the files have, one line each (`file:line:column: field: message`).
pub fn problems(files: &[(&str, &str)]) -> Vec<String> {
    match from_texts(files, intel()) {
        Ok(_) => panic!("expected problems, the rules compiled"),
        Err(p) => p.iter().map(|p| p.to_string()).collect(),
    }
}

/// The problems of one file, `rules/main.yaml`.
pub fn problems_of(yaml: &str) -> Vec<String> {
    problems(&[("rules/main.yaml", yaml)])
}

/// Asserts one problem starts with `rules/main.yaml:{line}:` and holds `field: ` then `text`.
#[track_caller]
pub fn assert_problem(problems: &[String], line: usize, field: &str, text: &str) {
    let head = format!("rules/main.yaml:{line}:");
    let found = problems.iter().any(|p| {
        p.starts_with(&head)
            && p.split_once(&format!(" {field}: "))
                .is_some_and(|(_, msg)| msg.contains(text))
    });
    assert!(
        found,
        "no {head} ... {field}: ...{text}... in {problems:#?}"
    );
}

pub fn visitor(ip: &str, ua: Option<&str>) -> Visitor {
    let ip: IpAddr = ip.parse().expect("an address");
    intel().visitor(ip, ua, ClientHints::default())
}

/// A request as the proxy gives it to the rules (canonical host and path).
pub struct Req {
    pub method: Method,
    pub host: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub at: Option<u64>,
}

impl Req {
    pub fn get(host: &str, path_and_query: &str) -> Req {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string())),
            None => (path_and_query, None),
        };
        Req {
            method: Method::GET,
            host: host.to_string(),
            path: path.to_string(),
            query,
            headers: HeaderMap::new(),
            at: None,
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Req {
        let value = HeaderValue::from_str(value).expect("a header value");
        self.headers.insert(HeaderName::from_static(name), value);
        self
    }

    pub fn ua(self, ua: &str) -> Req {
        self.header("user-agent", ua)
    }

    pub fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            method: &self.method,
            host: &self.host,
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
            at: self.at,
            rate_limited: Default::default(),
            state: Default::default(),
            ja4: None,
        }
    }
}

/// `(campaign, flow, route)` by name, for the visitor at `ip` making `req`.
pub fn decide<'r>(
    rules: &'r Rules,
    ip: &str,
    req: &Req,
) -> (Option<&'r str>, Option<&'r str>, &'r str) {
    let facts = req.facts();
    let v = visitor(ip, facts.user_agent());
    let d = rules.evaluate(&v, &facts);
    (
        rules.campaign_id(&d),
        rules.flow_name(&d),
        rules.route(d.route).name.as_str(),
    )
}

/// The route name only.
pub fn route_of<'r>(rules: &'r Rules, ip: &str, req: &Req) -> &'r str {
    decide(rules, ip, req).2
}
