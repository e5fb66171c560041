//! Property-based fuzzing (proptest, stable Rust) of what visitors and operators write: the
//! client-IP header walk, redirect templates, CIDR list lines, rule and config files. Bounded
//! for CI (`PROPTEST_CASES` raises the count for a longer run on demand). Each property is
//! "never panics, and what comes out is well-formed"; the path and PROXY protocol parsers
//! and postback queries have theirs beside their code.

use std::net::IpAddr;

use flowgate::config::Config;
use flowgate::identity::{client_ip, CidrSet, ClientIpHeader, Intel};
use flowgate::problem::Problems;
use flowgate::rules::{RequestFacts, Template, Vars};
use http::{HeaderMap, HeaderValue, Method};
use proptest::prelude::*;

/// Built once: the user-agent patterns take a while to compile.
fn intel() -> &'static Intel {
    static INTEL: std::sync::OnceLock<Intel> = std::sync::OnceLock::new();
    INTEL.get_or_init(|| Intel::load(&Default::default(), &mut Problems::default()))
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(200),
        ..ProptestConfig::default()
    }
}

/// Text made mostly of the characters that matter to the parser under test.
fn text(alphabet: &'static str, max: usize) -> impl Strategy<Value = String> {
    let chars: Vec<char> = alphabet.chars().collect();
    proptest::collection::vec(
        prop_oneof![
            8 => proptest::sample::select(chars),
            1 => any::<char>(),
        ],
        0..max,
    )
    .prop_map(|v| v.into_iter().collect())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_forwarded_for_walk_returns_the_peer_or_an_address_from_the_header(
        lines in proptest::collection::vec(text("0123456789abcdef.:,[] unknow", 60), 0..4),
        trusted in any::<bool>(),
    ) {
        let mut headers = HeaderMap::new();
        for l in &lines {
            if let Ok(v) = HeaderValue::from_str(l) {
                headers.append("x-forwarded-for", v);
            }
        }
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let proxies: Vec<flowgate::identity::Cidr> = if trusted {
            vec!["10.0.0.0/8".parse().unwrap()]
        } else {
            vec![]
        };
        let set = CidrSet::new(proxies);
        let ip = client_ip(peer, &headers, &set, &ClientIpHeader::XForwardedFor);
        let all = lines.join(",");
        prop_assert!(ip == peer || all.contains(&ip.to_string()) || all.contains(&format!("{ip:?}")),
            "{ip} from {lines:?}");
        if !trusted {
            prop_assert_eq!(ip, peer);
        }
    }

    #[test]
    fn a_rendered_redirect_is_always_a_valid_header_value(
        template in text("https:/?&={}click_idcountryparam:qsub", 50),
        query in text("a=b&%20\r\n{}é", 40),
        ua in text("Mozilla \r\n\"", 30),
    ) {
        let to = format!("https://x.example/{template}");
        if let Ok(t) = Template::parse(&to) {
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&ua) {
                headers.insert("user-agent", v);
            }
            let facts = RequestFacts {
                method: &Method::GET,
                host: "promo.example.com",
                path: "/lp",
                query: Some(&query),
                headers: &headers,
                at: None,
                rate_limited: Default::default(),
                state: Default::default(),
            };
            let vars = Vars {
                click_id: "019ad0f3-6c1e-7a51-9b7e-1f2e3d4c5b6a",
                country: Some("US"),
                asn: Some(15169),
                campaign: "c",
                flow: "f",
                route: "r",
                            params: None,
            };
            for keep in [false, true] {
                let out = t.render(&vars, &facts, keep);
                prop_assert!(HeaderValue::from_str(&out).is_ok(), "{out:?}");
                prop_assert!(!out.contains(['\r', '\n', ' ']), "{out:?}");
            }
        }
    }

    #[test]
    fn any_list_file_loads_or_is_refused_with_a_line(
        lines in proptest::collection::vec(text("0123456789./:abcdef# \t", 40), 0..20),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list.txt");
        std::fs::write(&path, lines.join("\n")).unwrap();
        let mut problems = Problems::default();
        let set = CidrSet::load(&path, &mut problems);
        prop_assert!(set.is_some() == problems.is_empty(), "{problems}");
    }

    #[test]
    fn any_rule_file_compiles_or_is_refused_never_panics(
        body in text("campaigns routes upstreams flows:-{}[],\n id name to if proxy respond redirect 0123 /", 300),
    ) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("r.yaml"), &body).unwrap();
        let _ = flowgate::rules::load(dir.path(), intel());
    }

    #[test]
    fn any_config_file_loads_or_is_refused_never_panics(
        body in text("listen admin limits trusted_proxies events sink: {}[],\n \"127.0.0.1:80\" 10s 64KiB", 200),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flowgate.yaml");
        std::fs::write(&path, &body).unwrap();
        if let Err(problems) = Config::load(&path) {
            prop_assert!(!problems.is_empty());
        }
    }
}
