//! Verified crawlers: a search engine's user agent is believed only from the ranges that search
//! engine publishes (`intel.crawlers`). Visitors come through the trusted proxy's
//! X-Forwarded-For, as they would behind a load balancer.

mod common;

use std::time::Duration;

use common::*;

const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
const BINGBOT: &str = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)";
const APPLEBOT: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)";

const RULES: &str = r#"
routes:
  index: { respond: { body: index } }
  blocked: { respond: { status: 403, body: fake } }
  page: { respond: { body: page } }
campaigns:
  - id: c
    flows:
      - { name: verified, if: { crawler: verified }, to: index }
      - { name: fake, if: { crawler: claimed }, to: blocked }
      - { name: rest, to: page }
"#;

fn crawlers(googlebot: &std::path::Path) -> String {
    format!(
        "intel:\n  crawlers:\n    googlebot: {}\n    bingbot: {}\n",
        googlebot.display(),
        data("crawlers/bingbot.txt").display()
    )
}

fn visit(fg: &Flowgate, ua: &str, ip: &str) -> String {
    let r = fg.get("/", &[("User-Agent", ua), ("X-Forwarded-For", ip)]);
    r.body
}

#[test]
fn a_googlebot_from_its_published_ranges_is_verified_and_one_from_elsewhere_only_claims() {
    let fg = Flowgate::start(&crawlers(&data("crawlers/googlebot.json")), RULES);
    // Inside and outside the published JSON, both families.
    assert_eq!(visit(&fg, GOOGLEBOT, "66.249.64.5"), "index");
    assert_eq!(visit(&fg, GOOGLEBOT, "2001:4860:4801:10::5"), "index");
    assert_eq!(visit(&fg, GOOGLEBOT, "203.0.113.9"), "fake");
    // A plain CIDR list, and another crawler's ranges verify nothing.
    assert_eq!(visit(&fg, BINGBOT, "157.55.39.7"), "index");
    assert_eq!(visit(&fg, BINGBOT, "66.249.64.5"), "fake");
    // A known crawler without ranges configured can only claim.
    assert_eq!(visit(&fg, APPLEBOT, "17.58.97.1"), "fake");
    // Browsers and tools claim no crawler.
    assert_eq!(visit(&fg, CHROME, "66.249.64.5"), "page");
    assert_eq!(visit(&fg, "curl/8.5.0", "66.249.64.5"), "page");

    let events = fg.events(8);
    let event = |ua: &str, ip: &str| {
        (events.iter())
            .find(|e| e["ip"] == ip && e["ua"] == ua)
            .unwrap_or_else(|| panic!("no event of {ua} from {ip}: {events:#?}"))
    };
    let verified = event(GOOGLEBOT, "66.249.64.5");
    assert_eq!(
        (&verified["crawler"], &verified["crawler_verified"]),
        (&"googlebot".into(), &true.into())
    );
    assert_eq!(verified["bot"], true, "a verified crawler is still a bot");
    let fake = event(GOOGLEBOT, "203.0.113.9");
    assert_eq!(fake["crawler_verified"], false);
    let chrome = event(CHROME, "66.249.64.5");
    assert!(chrome.get("crawler").is_none(), "{chrome}");

    let series = |flow: &str, route: &str, class: &str, visitor: &str| {
        fg.metric(&format!(
            "flowgate_requests_total{{campaign=\"c\",flow=\"{flow}\",route=\"{route}\",status_class=\"{class}\",visitor=\"{visitor}\"}}"
        ))
    };
    assert_eq!(series("verified", "index", "2xx", "verified_crawler"), 3.0);
    assert_eq!(series("verified", "index", "2xx", "bot"), 0.0);
    assert_eq!(series("fake", "blocked", "4xx", "bot"), 3.0);
    assert_eq!(series("rest", "page", "2xx", "human"), 1.0);
    assert_eq!(series("rest", "page", "2xx", "bot"), 1.0);
}

#[test]
fn a_bad_range_file_is_refused_naming_where_and_the_old_ranges_keep_serving() {
    let dir = tempfile::tempdir().unwrap();
    let ranges = dir.path().join("googlebot.json");
    std::fs::copy(data("crawlers/googlebot.json"), &ranges).unwrap();
    let fg = Flowgate::start(&crawlers(&ranges), RULES);
    assert_eq!(visit(&fg, GOOGLEBOT, "66.249.64.5"), "index");

    let bad = "{\"prefixes\": [\n  {\"ipv4Prefix\": \"66.249.64.0/33\"}\n]}\n";
    std::fs::write(&ranges, bad).unwrap();
    wait_for("refused reload", Duration::from_secs(10), || {
        fg.metric(r#"flowgate_reloads_total{outcome="error"}"#) >= 1.0
    });
    assert_eq!(visit(&fg, GOOGLEBOT, "66.249.64.5"), "index", "old ranges");
    let config = fg.config();
    let out = flowgate_cli(&config, &["check"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    let want = format!(
        "{}: prefixes[0].ipv4Prefix: \"66.249.64.0/33\" is not an IP address or CIDR network",
        ranges.display()
    );
    assert!(said.contains(&want), "{want}\nnot in:\n{said}");

    std::fs::write(
        &ranges,
        "{\"prefixes\": [{\"ipv4Prefix\": \"203.0.113.0/24\"}]}",
    )
    .unwrap();
    wait_for("new ranges", Duration::from_secs(10), || {
        visit(&fg, GOOGLEBOT, "203.0.113.9") == "index"
    });
    assert_eq!(visit(&fg, GOOGLEBOT, "66.249.64.5"), "fake");
}

#[test]
fn a_crawler_flowgate_does_not_know_is_an_error_with_the_nearest_name() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "intel: {{ crawlers: {{ gooblebot: {} }} }}\n",
        data("crawlers/googlebot.json").display()
    );
    let config = write_setup(dir.path(), &extra, RULES);
    let out = flowgate_cli(&config, &["check"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("intel.crawlers.gooblebot: unknown crawler \"gooblebot\"")
            && said.contains("did you mean \"googlebot\"?"),
        "{said}"
    );
}

#[test]
fn intel_update_fetches_crawler_ranges_and_refuses_a_bad_download() {
    let published = std::fs::read(data("crawlers/googlebot.json")).unwrap();
    let server = serve_files(vec![
        ("/googlebot.json", published.clone()),
        ("/bingbot.json", b"{\"creationTime\": \"x\"}".to_vec()),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("bingbot.txt"), "157.55.39.0/24\n").unwrap();
    let extra = format!(
        "intel:\n  crawlers:\n    \
         googlebot: {{ file: googlebot.json, url: \"http://{server}/googlebot.json\" }}\n    \
         bingbot: {{ file: bingbot.txt, url: \"http://{server}/bingbot.json\" }}\n"
    );
    let config = write_setup(d, &extra, RULES);
    let (code, said) = flowgate_said(&config, &["intel", "update"]);
    assert_eq!(code, Some(1), "bingbot's download fails: {said}");
    assert_eq!(std::fs::read(d.join("googlebot.json")).unwrap(), published);
    assert_eq!(
        std::fs::read_to_string(d.join("bingbot.txt")).unwrap(),
        "157.55.39.0/24\n",
        "a refused download never replaces"
    );
    assert!(
        said.contains("intel.crawlers.bingbot") && said.contains("refused"),
        "{said}"
    );
}
