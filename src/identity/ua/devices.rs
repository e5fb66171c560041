//! Tablet or phone from the device model, where the tokens cannot tell: Android user agents
//! name a model, and only a device database knows what it is. `data/devices.tsv` holds the
//! model names Matomo's device regexes spell out, with their type (made by
//! tests/data/user-agents/make_devices.py); a hash lookup of the model and its prefixes stands
//! in for Matomo's thousands of regexes, which would cost milliseconds per new user agent.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::{Device, Os};

const DATA: &str = include_str!("data/devices.tsv");

/// Shorter prefixes name too many models to tell anything.
const MIN_PREFIX: usize = 4;
/// Longer model tokens are not models (and are not worth the lookups).
const MAX_MODEL: usize = 48;

fn table() -> &'static HashMap<&'static str, Device> {
    static TABLE: LazyLock<HashMap<&'static str, Device>> = LazyLock::new(|| {
        DATA.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('\t'))
            .filter_map(|(model, kind)| {
                let device = match kind {
                    "mobile" => Device::Mobile,
                    "tablet" => Device::Tablet,
                    "desktop" => Device::Desktop,
                    "tv" => Device::Tv,
                    "console" => Device::Console,
                    _ => return None,
                };
                Some((model, device))
            })
            .collect()
    });
    &TABLE
}

/// The model an Android user agent names: the first part of its comment after `Android x`
/// that is not a locale, a flag (`U`, `wv`, `K`) or a build.
fn model(ua: &str) -> Option<&str> {
    let at = ua.find("Android")?;
    let rest = &ua[at..];
    let comment = &rest[..rest.find(')').unwrap_or(rest.len())];
    comment
        .split(';')
        .skip(1)
        .map(|part| {
            let part = part.trim();
            part.find(" Build/")
                .map_or(part, |b| &part[..b])
                .trim_end_matches(" Build")
        })
        .find(|part| {
            let flag = matches!(*part, "" | "U" | "wv" | "K" | "Mobile" | "Tablet" | "I");
            let b = part.as_bytes();
            let lang = b.len() >= 2 && b[..2].iter().all(u8::is_ascii_lowercase);
            let locale = lang && (b.len() == 2 || (b.len() == 5 && matches!(b[2], b'-' | b'_')));
            !flag && !locale && !part.starts_with("Build/") && !part.starts_with("HMSCore")
        })
        .filter(|m| m.len() <= MAX_MODEL)
}

/// The database's type for a model token, or for its longest prefix it knows; else for the
/// token's last word (a brand name before the model).
fn lookup(model: &str) -> Option<Device> {
    let mut buf = [0u8; MAX_MODEL];
    let key = &mut buf[..model.len()];
    key.copy_from_slice(model.as_bytes());
    key.make_ascii_lowercase();
    let key = std::str::from_utf8(key).ok()?;
    let longest = |key: &str| {
        (MIN_PREFIX.min(key.len())..=key.len())
            .rev()
            // Not a brand name alone ("archos" of "archos 101 xenon"): a brand makes both.
            .filter(|&n| key.is_char_boundary(n) && !key[n..].starts_with(' '))
            .find_map(|n| table().get(&key[..n]).copied())
    };
    longest(key).or_else(|| key.rsplit_once(' ').and_then(|(_, last)| longest(last)))
}

/// What the database says of a user agent the tokens took for `tokens`: for Android user
/// agents, the type of the model they name when the database knows it.
pub fn refine(ua: &str, tokens: Device, android: bool, os: Os) -> Device {
    if !android || os == Os::Ios {
        return tokens;
    }
    model(ua).and_then(lookup).unwrap_or(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_and_their_types() {
        let m = |ua| model(ua);
        assert_eq!(
            m("Dalvik/1.6.0 (Linux; U; Android 4.1.2; ru; SHV-E120S Build/JZO54K)"),
            Some("SHV-E120S")
        );
        assert_eq!(
            m("Mozilla/5.0 (Linux; Android 10; BQ-7083G Build/QP1A.190711.020; wv) AppleWebKit/537.36"),
            Some("BQ-7083G")
        );
        assert_eq!(
            m("Mozilla/5.0 (Linux; U; Android 4.0.3; en-us; KFTT Build/IML74K) AppleWebKit/535.19"),
            Some("KFTT")
        );
        assert_eq!(lookup("SM-T865N"), Some(Device::Tablet));
        assert_eq!(lookup("SM-M315F"), Some(Device::Mobile));
        assert_eq!(lookup("no such model anywhere"), None);
        let tablet_with_mobile_token = "Mozilla/5.0 (Linux; Android 11; SM-T865N) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36";
        assert_eq!(
            refine(tablet_with_mobile_token, Device::Mobile, true, Os::Android),
            Device::Tablet
        );
    }
}
