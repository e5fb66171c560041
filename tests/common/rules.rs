//! Rules files the tests share: the same campaign wherever a test needs it, written once.

/// A campaign whose `fresh` flow takes the visitor's first click in 24 hours to `offer`;
/// every later one goes to `safe`.
pub const UNIQUE_RULES: &str = r#"
routes:
  offer: { respond: { body: "offer" } }
  safe: { respond: { body: "safe" } }
campaigns:
  - id: spring
    flows:
      - name: fresh
        if: { unique: { window: 24h } }
        to: offer
      - name: rest
        to: safe
"#;

/// A campaign whose `capped` flow takes ten clicks a day (in UTC+3) to `offer`; the rest go
/// to `safe`.
pub const CAPPED_RULES: &str = r#"
routes:
  offer: { respond: { body: "offer" } }
  safe: { respond: { body: "safe" } }
campaigns:
  - id: spring
    flows:
      - name: capped              # its cap is its only condition: it may stand first
        cap: { clicks: 10, per: day, tz: "+03:00" }
        to: offer
      - name: rest
        to: safe
"#;

/// Rules with one campaign whose every visitor gets `body` as the page.
pub fn page_rules(body: &str) -> String {
    format!("routes: {{ page: {{ respond: {{ body: \"{body}\" }} }} }}\ncampaigns: [ {{ id: c, flows: [ {{ name: f, to: page }} ] }} ]\n")
}

/// Rules that send every visitor to one upstream, `up`, with its `read_timeout`.
pub fn proxy_rules(up: std::net::SocketAddr, read_timeout: &str) -> String {
    format!(
        r#"
upstreams:
  landing: {{ peers: ["{up}"], connect_timeout: 1s, read_timeout: {read_timeout} }}
routes:
  page: {{ proxy: {{ upstream: landing }} }}
campaigns:
  - id: c
    flows:
      - {{ name: all, to: page }}
"#
    )
}
