//! The rule files as operators write them (`rules/*.yaml`). Compiled by `compile/`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::Timeout;
use crate::yaml::{At, OneOrMany};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    #[serde(default)]
    pub upstreams: BTreeMap<String, At<UpstreamSpec>>,
    #[serde(default)]
    pub routes: BTreeMap<String, At<RouteSpec>>,
    #[serde(default)]
    pub campaigns: Vec<At<CampaignSpec>>,
    /// The route for requests no campaign matches; default: a plain 404.
    #[serde(default)]
    pub fallback: Option<At<String>>,
    /// Where traffic comes from, and where its conversions go back.
    #[serde(default)]
    pub sources: super::sources::model::SourceSpecs,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSpec {
    pub peers: Vec<At<String>>,
    /// Host header sent upstream; default: the visitor's.
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub tls: bool,
    /// TLS server name; default: `host`, else the peer's host name.
    #[serde(default)]
    pub sni: Option<String>,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Timeout,
    #[serde(default = "default_read_timeout")]
    pub read_timeout: Timeout,
}

fn default_connect_timeout() -> Timeout {
    Timeout::from_secs(2)
}
fn default_read_timeout() -> Timeout {
    Timeout::from_secs(30)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteSpec {
    Proxy(ProxySpec),
    Redirect(RedirectSpec),
    Respond(RespondSpec),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxySpec {
    pub upstream: At<String>,
    /// Prefix the visitor's path is appended to.
    #[serde(default)]
    pub path: Option<At<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectSpec {
    pub to: At<String>,
    #[serde(default = "default_redirect_status")]
    pub status: At<u16>,
    #[serde(default)]
    pub keep_query: bool,
}

fn default_redirect_status() -> At<u16> {
    At::new(302)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RespondSpec {
    #[serde(default = "default_respond_status")]
    pub status: At<u16>,
    #[serde(default)]
    pub body: Option<String>,
    /// A file whose contents are the body, relative to the rule file's folder.
    #[serde(default)]
    pub file: Option<At<PathBuf>>,
    #[serde(default)]
    pub content_type: Option<At<String>>,
}

fn default_respond_status() -> At<u16> {
    At::new(200)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignSpec {
    pub id: At<String>,
    #[serde(rename = "match", default)]
    pub matcher: MatchSpec,
    /// Where the landing page's call to action points (an absolute path on the campaign's
    /// host): the visitor's click continues, and the `then` of its flow decides.
    #[serde(default)]
    pub click_path: Option<At<String>>,
    pub flows: Vec<FlowSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    /// `promo.example.com`, `*.example.com` or `*`.
    #[serde(default = "default_host")]
    pub host: At<OneOrMany<String>>,
    #[serde(default = "default_path_prefix")]
    pub path_prefix: At<String>,
}

impl Default for MatchSpec {
    fn default() -> Self {
        MatchSpec {
            host: default_host(),
            path_prefix: default_path_prefix(),
        }
    }
}

fn default_host() -> At<OneOrMany<String>> {
    At::new(OneOrMany(vec!["*".to_string()]))
}
fn default_path_prefix() -> At<String> {
    At::new("/".to_string())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSpec {
    pub name: At<String>,
    #[serde(rename = "if", default)]
    pub condition: Option<At<ConditionSpec>>,
    /// Reached: the flow is skipped and the next one decides.
    #[serde(default)]
    pub cap: Option<At<CapSpec>>,
    pub to: At<TargetSpec>,
    /// On the lander's click-through (the campaign's `click_path`): same syntax as `to`.
    #[serde(default)]
    pub then: Option<At<TargetSpec>>,
}

/// `{ clicks: 1000, per: day, tz: "+03:00" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapSpec {
    pub clicks: Option<u32>,
    pub conversions: Option<u32>,
    /// `hour`, `day` (the default) or `total`.
    pub per: Option<String>,
    /// Where a day (or hour) starts: UTC or a fixed offset like `+03:00`.
    pub tz: Option<String>,
}

/// `{ window: 24h }`, or `{ window: 24h, scope: flow }`: no click of the visitor in the
/// campaign (or this flow) within the window.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UniqueSpec {
    pub window: Timeout,
    /// `campaign` (the default) or `flow`.
    pub scope: Option<String>,
}

/// `to: safe` or a weighted split `to: { offer: 80, shop: 20 }` (order kept).
#[derive(Debug)]
pub enum TargetSpec {
    Route(String),
    Split(Vec<(String, u32)>),
}

impl<'de> Deserialize<'de> for TargetSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = TargetSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a route name or a map of route names to weights")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TargetSpec, E> {
                Ok(TargetSpec::Route(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<TargetSpec, A::Error> {
                let mut branches = Vec::new();
                while let Some((route, weight)) = m.next_entry::<String, u32>()? {
                    branches.push((route, weight));
                }
                Ok(TargetSpec::Split(branches))
            }
        }
        d.deserialize_any(V)
    }
}

/// One condition. Several keys in one map must all hold; `all`, `any` and `not` combine.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionSpec {
    pub all: Option<Vec<At<ConditionSpec>>>,
    pub any: Option<Vec<At<ConditionSpec>>>,
    pub not: Option<Box<At<ConditionSpec>>>,
    pub country: Option<OneOrMany<String>>,
    pub region: Option<OneOrMany<String>>,
    pub city: Option<OneOrMany<String>>,
    pub asn: Option<OneOrMany<u32>>,
    pub as_org: Option<String>,
    pub anonymous: Option<OneOrMany<String>>,
    pub ip: Option<OneOrMany<String>>,
    pub ip_list: Option<OneOrMany<String>>,
    pub bot: Option<bool>,
    pub device: Option<OneOrMany<String>>,
    pub os: Option<OneOrMany<String>>,
    pub browser: Option<OneOrMany<String>>,
    /// `verified`, `claimed` or `none`: a search-engine crawler's claim checked against its
    /// published ranges.
    pub crawler: Option<OneOrMany<String>>,
    /// Consistency signals (`rules::signals::NAMES`): true when any named one fires.
    pub signal: Option<OneOrMany<String>>,
    pub ua: Option<String>,
    pub referer: Option<String>,
    pub param: Option<BTreeMap<String, String>>,
    pub header: Option<BTreeMap<String, String>>,
    pub language: Option<OneOrMany<String>>,
    pub method: Option<OneOrMany<String>>,
    pub path: Option<OneOrMany<String>>,
    pub schedule: Option<ScheduleSpec>,
    pub rate: Option<super::rate::RateSpec>,
    pub unique: Option<UniqueSpec>,
    /// TLS client fingerprints, whole or as prefixes ending in `*`.
    pub ja4: Option<OneOrMany<String>>,
}

/// `{ days: [mon, fri], hours: "09:00-17:30", tz: "+02:00" }`; every part optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    pub days: Option<OneOrMany<String>>,
    pub hours: Option<String>,
    /// A fixed offset from UTC (`+02:00`, `-05:00`) or `UTC`.
    pub tz: Option<String>,
}
