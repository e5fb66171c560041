//! Redirect URL templates, parsed once: literal text and `{macro}`s whose values are always
//! percent-encoded when inserted.

use super::request::RequestFacts;
use crate::url::{percent_encode_into, query_pairs};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    ClickId,
    Country,
    Asn,
    Campaign,
    Flow,
    Route,
    Query,
    Param(String),
}

#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
}

/// Values a template may insert.
pub struct Vars<'a> {
    pub click_id: &'a str,
    pub country: Option<&'a str>,
    pub asn: Option<u32>,
    pub campaign: &'a str,
    pub flow: &'a str,
    pub route: &'a str,
    /// On a lander's click-through, the first click's kept parameters: `{param:NAME}` takes
    /// them rather than the click-through request's own.
    pub params: Option<&'a std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("{0:?} must be an http(s) URL or a path starting with /")]
    NotAUrl(String),
    #[error("{0:?} starts with //, which browsers read as another host; write https://...")]
    OtherHost(String),
    #[error("{template:?} contains {char:?}; encode it")]
    Char { template: String, char: char },
    #[error("unclosed {{ in {0:?}")]
    Unclosed(String),
    #[error("unmatched }} in {0:?}")]
    Unmatched(String),
    #[error(
        "unknown macro {{{0}}}; known: click_id, country, asn, campaign, flow, route, query, \
         param:NAME"
    )]
    UnknownMacro(String),
}

impl Template {
    pub fn parse(s: &str) -> Result<Template, TemplateError> {
        if !(s.starts_with("http://") || s.starts_with("https://") || s.starts_with('/')) {
            return Err(TemplateError::NotAUrl(s.to_string()));
        }
        // `//host/path` is a URL of another host, not a path of this one.
        if s.starts_with("//") {
            return Err(TemplateError::OtherHost(s.to_string()));
        }
        if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(TemplateError::Char {
                template: s.to_string(),
                char: c,
            });
        }
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| TemplateError::Unclosed(s.to_string()))?;
            let name = &after[..close];
            parts.push(match name {
                "click_id" => Part::ClickId,
                "country" => Part::Country,
                "asn" => Part::Asn,
                "campaign" => Part::Campaign,
                "flow" => Part::Flow,
                "route" => Part::Route,
                "query" => Part::Query,
                _ => match name.strip_prefix("param:") {
                    Some(p) if !p.is_empty() => Part::Param(p.to_string()),
                    _ => return Err(TemplateError::UnknownMacro(name.to_string())),
                },
            });
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err(TemplateError::Unmatched(s.to_string()));
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// The URL for one request. With `keep_query`, the visitor's query string is appended
    /// (before any `#fragment`), re-encoded where it holds anything a URL may not.
    pub fn render(&self, vars: &Vars, req: &RequestFacts, keep_query: bool) -> String {
        let mut out = String::with_capacity(128);
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::ClickId => percent_encode_into(&mut out, vars.click_id),
                Part::Country => percent_encode_into(&mut out, vars.country.unwrap_or("")),
                Part::Asn => {
                    if let Some(a) = vars.asn {
                        out.push_str(itoa::Buffer::new().format(a));
                    }
                }
                Part::Campaign => percent_encode_into(&mut out, vars.campaign),
                Part::Flow => percent_encode_into(&mut out, vars.flow),
                Part::Route => percent_encode_into(&mut out, vars.route),
                Part::Query => percent_encode_into(&mut out, req.query.unwrap_or("")),
                Part::Param(name) => match vars.params {
                    Some(first) => {
                        if let Some(v) = first.get(name) {
                            percent_encode_into(&mut out, v);
                        }
                    }
                    None => {
                        if let Some(v) = req.param(name) {
                            percent_encode_into(&mut out, &v);
                        }
                    }
                },
            }
        }
        match req.query.filter(|q| keep_query && !q.is_empty()) {
            Some(q) => append_query(out, q),
            None => out,
        }
    }
}

fn append_query(url: String, query: &str) -> String {
    let (base, fragment) = match url.find('#') {
        Some(i) => url.split_at(i),
        None => (url.as_str(), ""),
    };
    let mut out = String::with_capacity(url.len() + query.len() + 1);
    out.push_str(base);
    out.push(if base.contains('?') { '&' } else { '?' });
    for (i, (k, v)) in query_pairs(query).enumerate() {
        if i > 0 {
            out.push('&');
        }
        push_query_safe(&mut out, k);
        out.push('=');
        push_query_safe(&mut out, v);
    }
    out.push_str(fragment);
    out
}

/// Keeps an already-encoded query component as it is, encoding only what may not stand in one.
fn push_query_safe(out: &mut String, s: &str) {
    for c in s.chars() {
        if c.is_ascii_graphic() && !matches!(c, '#' | '&' | '=' | '"' | '<' | '>' | '\\') {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            percent_encode_into(out, c.encode_utf8(&mut buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, Method};

    fn facts<'a>(query: Option<&'a str>, headers: &'a HeaderMap) -> RequestFacts<'a> {
        RequestFacts {
            method: &Method::GET,
            host: "promo.example.com",
            path: "/",
            query,
            headers,
            at: None,
            rate_limited: Default::default(),
            state: Default::default(),
        }
    }

    const VARS: Vars = Vars {
        click_id: "0190-ab",
        country: Some("US"),
        asn: Some(15169),
        campaign: "spring sale",
        flow: "target",
        route: "shop",
        params: None,
    };

    #[test]
    fn macros_are_encoded() {
        let t = Template::parse("https://shop.example.com/?cid={click_id}&c={country}&a={asn}&s={param:sub1}&n={campaign}").unwrap();
        let h = HeaderMap::new();
        let url = t.render(
            &VARS,
            &facts(Some("sub1=%0d%0aSet-Cookie:%20x=1&b=2"), &h),
            false,
        );
        assert_eq!(
            url,
            "https://shop.example.com/?cid=0190-ab&c=US&a=15169&s=%0D%0ASet-Cookie%3A%20x%3D1&n=spring%20sale"
        );
        assert!(!url.contains('\r') && !url.contains('\n'));
    }

    #[test]
    fn keep_query_goes_before_the_fragment() {
        let t = Template::parse("https://x.example/p?a=1#top").unwrap();
        let h = HeaderMap::new();
        assert_eq!(
            t.render(&VARS, &facts(Some("gclid=abc&q=a\"b"), &h), true),
            "https://x.example/p?a=1&gclid=abc&q=a%22b#top"
        );
        let t = Template::parse("/thanks").unwrap();
        assert_eq!(
            t.render(&VARS, &facts(Some("x=1"), &h), true),
            "/thanks?x=1"
        );
        assert_eq!(t.render(&VARS, &facts(None, &h), true), "/thanks");
    }

    #[test]
    fn bad_templates_are_refused() {
        assert!(Template::parse("https://x/{nope}").is_err());
        assert!(Template::parse("https://x/{click_id").is_err());
        assert!(Template::parse("javascript:alert(1)").is_err());
        assert!(Template::parse("https://x/ y").is_err());
        assert!(Template::parse("https://x/{param:}").is_err());
    }
}
