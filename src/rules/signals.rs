//! Consistency signals: what a visitor claims in its user agent, compared with what the rest of
//! its request shows. Each is named (the `signal` condition), computed only when a rule asks,
//! from headers borrowed from the request, and says in `explain` what it found.
//!
//! * `hints_mismatch`: client hints that contradict the user agent. Firefox and Safari send no
//!   `Sec-CH-UA`; every Chromium-based browser names `Chromium` in it, at the major version its
//!   user agent says, and the brands that write themselves into the user agent (Chrome, Edge,
//!   Opera, Samsung Internet, Yandex) name the browser the user agent names; `Sec-CH-UA-Platform`
//!   names the user agent's platform (Android's "desktop site" sends a Linux user agent, which
//!   is not a contradiction). A request without client hints never fires it: browsers send them
//!   only to secure origins.
//! * `headers_missing`: a browser's user agent (Chrome, Safari, Firefox, Edge, Opera, Samsung
//!   Internet, Yandex) without `Accept` or `Accept-Language`, which each of them sends with every
//!   request. Only these two: `Accept-Encoding` and the `Sec-Fetch-*` headers are rewritten by
//!   proxies or sent only to secure origins.

use std::fmt;

use http::header::{self, HeaderName};

use super::request::RequestFacts;
use crate::identity::{Browser, Os, Visitor};

pub const NAMES: [&str; 2] = ["hints_mismatch", "headers_missing"];

pub const HINTS_MISMATCH: u8 = 1;
pub const HEADERS_MISSING: u8 = 2;

static SEC_CH_UA: HeaderName = HeaderName::from_static("sec-ch-ua");
static SEC_CH_UA_PLATFORM: HeaderName = HeaderName::from_static("sec-ch-ua-platform");

/// The bit of a signal's name.
pub fn bit(name: &str) -> Option<u8> {
    NAMES.iter().position(|n| *n == name).map(|i| 1 << i)
}

/// What a signal found, borrowed from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding<'a> {
    /// `Sec-CH-UA` from a browser whose engine never sends it.
    HintsFromNonChromium(Browser),
    /// `Sec-CH-UA` without the `Chromium` brand every Chromium-based browser sends.
    NoChromiumBrand,
    /// The `Chromium` brand's major version is not the user agent's `Chrome/` one.
    Version { ua: u32, hints: u32 },
    /// A brand of another browser than the user agent's.
    OtherBrand { brand: &'a str, ua: Browser },
    /// `Sec-CH-UA-Platform` names another platform than the user agent.
    Platform { hints: &'a str, ua: Os },
    /// A header every browser sends.
    Missing(&'static str),
}

impl fmt::Display for Finding<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::HintsFromNonChromium(b) => write!(
                f,
                "hints_mismatch: sec-ch-ua sent by a {} user agent",
                b.as_str()
            ),
            Finding::NoChromiumBrand => {
                f.write_str("hints_mismatch: sec-ch-ua names no Chromium brand")
            }
            Finding::Version { ua, hints } => write!(
                f,
                "hints_mismatch: sec-ch-ua says Chromium {hints}, the user agent Chrome/{ua}"
            ),
            Finding::OtherBrand { brand, ua } => write!(
                f,
                "hints_mismatch: sec-ch-ua names {brand:?}, the user agent {}",
                ua.as_str()
            ),
            Finding::Platform { hints, ua } => write!(
                f,
                "hints_mismatch: sec-ch-ua-platform says {hints:?}, the user agent {}",
                ua.as_str()
            ),
            Finding::Missing(h) => write!(f, "headers_missing: no {h}"),
        }
    }
}

/// The first signal of `mask` that fires, in the order of `NAMES`.
pub fn first<'a>(mask: u8, v: &Visitor, r: &RequestFacts<'a>) -> Option<Finding<'a>> {
    let hints = (mask & HINTS_MISMATCH != 0).then(|| hints_mismatch(v, r));
    let missing = (mask & HEADERS_MISSING != 0).then(|| headers_missing(v, r));
    hints.flatten().or(missing.flatten())
}

fn headers_missing<'a>(v: &Visitor, r: &RequestFacts<'a>) -> Option<Finding<'a>> {
    use Browser::*;
    if v.bot
        || !matches!(
            v.browser,
            Chrome | Safari | Firefox | Edge | Opera | Samsung | Yandex
        )
    {
        return None;
    }
    [
        ("accept", header::ACCEPT),
        ("accept-language", header::ACCEPT_LANGUAGE),
    ]
    .into_iter()
    .find(|(_, h)| !r.headers.contains_key(h))
    .map(|(name, _)| Finding::Missing(name))
}

fn hints_mismatch<'a>(v: &Visitor, r: &RequestFacts<'a>) -> Option<Finding<'a>> {
    let ua = r.user_agent().unwrap_or("");
    if let Some(brands) = r.header_named(&SEC_CH_UA).filter(|b| !b.trim().is_empty()) {
        let chrome = chrome_major(ua);
        match (v.browser, chrome) {
            (b @ (Browser::Firefox | Browser::Safari), None) => {
                return Some(Finding::HintsFromNonChromium(b))
            }
            (
                b @ (Browser::Chrome
                | Browser::Edge
                | Browser::Opera
                | Browser::Samsung
                | Browser::Yandex),
                Some(major),
            ) => {
                let mut chromium = None;
                for (brand, version) in brands_of(brands) {
                    if brand == "Chromium" {
                        chromium = Some(version);
                    } else if brand_family(brand).is_some_and(|f| f != b) {
                        return Some(Finding::OtherBrand { brand, ua: b });
                    }
                }
                match chromium {
                    None => return Some(Finding::NoChromiumBrand),
                    Some(v) if major_of(v) != Some(major) => {
                        let hints = major_of(v).unwrap_or(0);
                        return Some(Finding::Version { ua: major, hints });
                    }
                    Some(_) => {}
                }
            }
            _ => {}
        }
    }
    let hinted = r
        .header_named(&SEC_CH_UA_PLATFORM)?
        .trim()
        .trim_matches('"');
    let platforms = [
        ("windows", Os::Windows),
        ("macos", Os::Macos),
        ("ios", Os::Ios),
        ("android", Os::Android),
        ("linux", Os::Linux),
        ("chrome os", Os::Chromeos),
        ("chromeos", Os::Chromeos),
    ];
    let (_, hint_os) = *platforms
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(hinted))?;
    let ua_os = ua_platform(ua)?;
    // Android's and ChromeOS's "desktop site" sends a Linux user agent.
    let desktop_mode = ua_os == Os::Linux && matches!(hint_os, Os::Android | Os::Chromeos);
    (ua_os != hint_os && !desktop_mode).then_some(Finding::Platform {
        hints: hinted,
        ua: ua_os,
    })
}

/// `(brand, version)` of each item of `Sec-CH-UA` (`"Chromium";v="124", "Not-A.Brand";v="99"`).
/// Brands are quoted and may hold `;` and `=` (the GREASE brand does), so quotes are followed.
fn brands_of(header: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = header;
    std::iter::from_fn(move || {
        let open = rest.find('"')?;
        let after = &rest[open + 1..];
        let close = after.find('"')?;
        let brand = &after[..close];
        rest = &after[close + 1..];
        let item_end = rest.find(',').unwrap_or(rest.len());
        let params = &rest[..item_end];
        // `;v="124"`: the one parameter Chromium sends, its value the next quoted string.
        let version = params.split('"').nth(1).unwrap_or("");
        rest = &rest[item_end..];
        Some((brand, version))
    })
}

/// The browser family of a brand that writes its name into the user agent too.
fn brand_family(brand: &str) -> Option<Browser> {
    Some(match brand {
        "Google Chrome" => Browser::Chrome,
        "Microsoft Edge" => Browser::Edge,
        "Opera" | "Opera GX" => Browser::Opera,
        "Samsung Internet" => Browser::Samsung,
        "YaBrowser" | "Yandex" => Browser::Yandex,
        _ => return None,
    })
}

fn major_of(version: &str) -> Option<u32> {
    version.split('.').next()?.trim().parse().ok()
}

/// The major version after `Chrome/` (also in `HeadlessChrome/`).
fn chrome_major(ua: &str) -> Option<u32> {
    let at = ua.find("Chrome/")? + "Chrome/".len();
    let digits = ua[at..].bytes().take_while(u8::is_ascii_digit).count();
    ua[at..at + digits].parse().ok()
}

/// The platform the user agent's own tokens name, read here rather than from the visitor,
/// whose OS the client hints already refined. Only the first parenthesis is read
/// (`(Windows NT 10.0; Win64; x64)`): where every browser writes its platform, and short.
fn ua_platform(ua: &str) -> Option<Os> {
    let inside = ua.split_once('(')?.1;
    let comment = inside.split_once(')').map_or(inside, |(c, _)| c).as_bytes();
    let has = |token: &str| comment.windows(token.len()).any(|w| w == token.as_bytes());
    Some(if has("iPhone") || has("iPad") || has("iPod") {
        Os::Ios
    } else if has("Android") {
        Os::Android
    } else if has("Windows") {
        Os::Windows
    } else if has("CrOS") {
        Os::Chromeos
    } else if has("Macintosh") || has("Mac OS X") {
        Os::Macos
    } else if has("Linux") || has("X11") {
        Os::Linux
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brands_follow_quotes_past_grease_punctuation() {
        let h = r#""Not;A=Brand";v="99", "Chromium";v="124.0.6367.60", "Google Chrome";v="124""#;
        let got: Vec<_> = brands_of(h).collect();
        assert_eq!(
            got,
            [
                ("Not;A=Brand", "99"),
                ("Chromium", "124.0.6367.60"),
                ("Google Chrome", "124")
            ]
        );
        assert_eq!(brands_of("garbage").count(), 0);
        assert_eq!(brands_of(r#""unclosed"#).count(), 0);
        assert_eq!(chrome_major("x HeadlessChrome/120.0.1 y"), Some(120));
        assert_eq!(chrome_major("Chrome/"), None);
        let platform = |ua| ua_platform(ua).map(Os::as_str);
        assert_eq!(
            platform("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit"),
            Some("ios")
        );
        assert_eq!(
            platform("Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit"),
            Some("android")
        );
        assert_eq!(
            platform("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Windows"),
            Some("macos")
        );
        assert_eq!(
            platform("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0)"),
            Some("chromeos")
        );
        assert_eq!(platform("curl/8.5.0"), None);
    }
}
