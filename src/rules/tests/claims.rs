//! `crawler` and `signal`: what a visitor claims, against its address and the rest of its
//! request. The header sets are what real browsers send (Chrome, Edge, Samsung Internet, Brave,
//! Android's "desktop site", Safari, Firefox): none of them may fire a signal.

use super::*;

const RULES: &str = "
routes: { odd: { respond: { body: odd } }, ok: { respond: { body: ok } } }
campaigns:
  - id: c
    flows:
      - { name: hints, if: { signal: hints_mismatch }, to: odd }
      - { name: headers, if: { signal: [headers_missing] }, to: odd }
      - { name: rest, to: ok }
";

const EDGE: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0";
const SAMSUNG: &str = "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36";
const ANDROID_DESKTOP: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const SAFARI: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15";
const FIREFOX: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0";

fn browser(ua: &str) -> Req {
    Req::get("promo.example.com", "/")
        .ua(ua)
        .header("accept", "text/html,*/*;q=0.8")
        .header("accept-language", "en-US,en;q=0.9")
}

fn flow(req: &Req) -> &'static str {
    static RULES_C: OnceLock<Rules> = OnceLock::new();
    let r = RULES_C.get_or_init(|| rules(RULES));
    decide(r, "203.0.113.7", req).1.unwrap_or("")
}

#[test]
fn real_browsers_headers_fire_no_signal() {
    let cases = [
        browser(CHROME)
            .header(
                "sec-ch-ua",
                r#""Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99""#,
            )
            .header("sec-ch-ua-platform", "\"Windows\""),
        browser(EDGE)
            .header(
                "sec-ch-ua",
                r#""Chromium";v="124", "Microsoft Edge";v="124", "Not-A.Brand";v="99""#,
            )
            .header("sec-ch-ua-platform", "\"Windows\""),
        browser(SAMSUNG)
            .header(
                "sec-ch-ua",
                r#""Chromium";v="121", "Not A(Brand";v="99", "Samsung Internet";v="25.0""#,
            )
            .header("sec-ch-ua-platform", "\"Android\""),
        // Brave sends Chrome's user agent and its own brand.
        browser(CHROME).header(
            "sec-ch-ua",
            r#""Brave";v="124", "Chromium";v="124", "Not-A.Brand";v="99""#,
        ),
        browser(ANDROID_DESKTOP)
            .header(
                "sec-ch-ua",
                r#""Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99""#,
            )
            .header("sec-ch-ua-platform", "\"Android\""),
        browser(SAFARI),
        browser(FIREFOX),
        // No client hints at all (a plain-HTTP origin): nothing to contradict.
        browser(CHROME),
        // Tools are not browsers: nothing is missing from them.
        Req::get("promo.example.com", "/").ua(CURL),
    ];
    for (i, req) in cases.iter().enumerate() {
        assert_eq!(flow(req), "rest", "case {i}: {:?}", req.headers);
    }
}

#[test]
fn hints_that_contradict_the_user_agent_and_missing_browser_headers_fire() {
    let cases = [
        (
            browser(FIREFOX).header("sec-ch-ua", r#""Chromium";v="124""#),
            "hints",
        ),
        (
            browser(SAFARI).header("sec-ch-ua", r#""Chromium";v="124""#),
            "hints",
        ),
        (
            browser(CHROME).header("sec-ch-ua", r#""Not-A.Brand";v="99""#),
            "hints",
        ),
        (
            browser(CHROME).header(
                "sec-ch-ua",
                r#""Chromium";v="120", "Google Chrome";v="120""#,
            ),
            "hints",
        ),
        (
            browser(CHROME).header(
                "sec-ch-ua",
                r#""Chromium";v="124", "Microsoft Edge";v="124""#,
            ),
            "hints",
        ),
        (
            browser(EDGE).header(
                "sec-ch-ua",
                r#""Chromium";v="124", "Google Chrome";v="124""#,
            ),
            "hints",
        ),
        (
            browser(CHROME).header("sec-ch-ua-platform", "\"macOS\""),
            "hints",
        ),
        (
            browser(SAMSUNG).header("sec-ch-ua-platform", "\"Windows\""),
            "hints",
        ),
        (
            Req::get("promo.example.com", "/")
                .ua(CHROME)
                .header("accept", "*/*"),
            "headers",
        ),
        (
            Req::get("promo.example.com", "/")
                .ua(SAFARI)
                .header("accept-language", "en"),
            "headers",
        ),
    ];
    for (i, (req, want)) in cases.iter().enumerate() {
        assert_eq!(flow(req), *want, "case {i}: {:?}", req.headers);
    }
}

#[test]
fn explain_says_what_a_signal_and_a_crawler_claim_found() {
    let r = rules(
        "routes: { ok: { respond: { body: ok } } }\ncampaigns:\n  - id: c\n    flows:\n      \
         - { name: f, if: { any: [ { crawler: [claimed] }, { signal: [hints_mismatch, headers_missing] } ] }, to: ok }\n",
    );
    let req = browser(CHROME).header("sec-ch-ua", r#""Chromium";v="120""#);
    let facts = req.facts();
    let v = visitor("203.0.113.7", facts.user_agent());
    let (_, trace) = r.explain(intel(), &v, &facts);
    let seen: Vec<(&str, &str, bool)> = (trace.iter())
        .filter(|s| s.condition.starts_with("if.any["))
        .map(|s| (s.condition.as_str(), s.value.as_str(), s.result))
        .collect();
    assert_eq!(
        seen,
        [
            ("if.any[0].crawler", "none", false),
            (
                "if.any[1].signal",
                "hints_mismatch: sec-ch-ua says Chromium 120, the user agent Chrome/124",
                true
            ),
        ]
    );
    let googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    let v = visitor("203.0.113.7", Some(googlebot));
    let req = Req::get("promo.example.com", "/").ua(googlebot);
    let (_, trace) = r.explain(intel(), &v, &req.facts());
    assert!(
        (trace.iter()).any(|s| s.value == "claimed googlebot" && s.result),
        "{trace:#?}"
    );
}

#[test]
fn unknown_verdicts_and_signals_are_problems_with_the_nearest_name() {
    let p = problems_of(
        "routes: { ok: { respond: { body: ok } } }\ncampaigns:\n  - id: c\n    flows:\n      \
         - { name: f, if: { crawler: verifed }, to: ok }\n      \
         - { name: g, if: { signal: [hint_mismatch] }, to: ok }\n      \
         - { name: h, if: { signal: [] }, to: ok }\n",
    );
    assert_problem(
        &p,
        5,
        "campaigns[c].flows[f].if.crawler",
        "unknown value \"verifed\"; did you mean \"verified\"?",
    );
    assert_problem(
        &p,
        6,
        "campaigns[c].flows[g].if.signal",
        "unknown value \"hint_mismatch\"; did you mean \"hints_mismatch\"?",
    );
    assert_problem(
        &p,
        7,
        "campaigns[c].flows[h].if.signal",
        "needs at least one value",
    );
}
