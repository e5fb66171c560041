//! What the user agent says: bot or human, device class, OS and browser family. One
//! compiled pattern set and one pass over the string; then, only when its tokens found no
//! bot, the bot list (`list`), and for Android the model table (`devices`). A bounded cache
//! in front, since the same few thousand user agents make most of the traffic.

mod cache;
mod devices;
pub mod list;
mod patterns;

use regex::{Regex, RegexSet};

use crate::identity::Error;

pub use cache::{UaCache, UaFacts};

macro_rules! family {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }

            pub fn parse(s: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|d| d.as_str().eq_ignore_ascii_case(s.trim()))
            }

            /// A bit for compact sets in compiled rules.
            pub fn bit(self) -> u16 {
                1 << (self as u16)
            }

            /// The known names, for error messages.
            pub fn names() -> String {
                Self::ALL.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", ")
            }
        }
    };
}

family!(
    /// The class of device behind the user agent.
    Device { Desktop = "desktop", Mobile = "mobile", Tablet = "tablet", Tv = "tv", Console = "console", Bot = "bot", Unknown = "unknown" }
);
family!(
    Os { Windows = "windows", Macos = "macos", Ios = "ios", Android = "android", Linux = "linux", Chromeos = "chromeos", Other = "other" }
);
family!(
    Browser {
        Chrome = "chrome", Safari = "safari", Firefox = "firefox", Edge = "edge", Opera = "opera",
        Samsung = "samsung", Yandex = "yandex", Ie = "ie", Facebook = "facebook",
        Instagram = "instagram", Tiktok = "tiktok", Other = "other",
    }
);

/// Everything the user agent tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UaClass {
    pub bot: bool,
    pub device: Device,
    pub os: Os,
    pub browser: Browser,
}

/// `Sec-CH-UA-Mobile` and `Sec-CH-UA-Platform`, which Chromium sends in place of details it
/// no longer writes into the user agent.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientHints<'a> {
    pub mobile: Option<bool>,
    pub platform: Option<&'a str>,
}

impl<'a> ClientHints<'a> {
    pub fn from_headers(headers: &'a http::HeaderMap) -> ClientHints<'a> {
        static MOBILE: http::HeaderName = http::HeaderName::from_static("sec-ch-ua-mobile");
        static PLATFORM: http::HeaderName = http::HeaderName::from_static("sec-ch-ua-platform");
        let text = |n: &http::HeaderName| headers.get(n).and_then(|v| v.to_str().ok());
        ClientHints {
            mobile: text(&MOBILE).and_then(|v| match v.trim() {
                "?1" => Some(true),
                "?0" => Some(false),
                _ => None,
            }),
            platform: text(&PLATFORM).map(|p| p.trim().trim_matches('"')),
        }
    }
}

#[derive(Debug, Clone)]
pub struct UaClassifier {
    set: RegexSet,
    /// Index of the first operator pattern: `[extra, allow)` add bots, `[allow, ..)` allow.
    extra: usize,
    allow: usize,
    /// The bot list (built in, or `intel.bots.list`), one alternation.
    list: Option<Regex>,
}

const I_BOT: usize = 0;
const I_NOT_BOT: usize = 1;
const I_TV: usize = 2;
const I_CONSOLE: usize = 3;
const I_TABLET: usize = 4;
const I_ANDROID: usize = 5;
const I_MOBILE: usize = 6;
const I_DESKTOP: usize = 7;
const I_ANDROID_APP: usize = 8;
const I_ODD_TAIL: usize = 9;
const I_TAIL_ENGINE: usize = 10;
const I_COMPATIBLE: usize = 11;
const I_COMPATIBLE_BROWSER: usize = 12;
const I_OS: usize = 13;
const I_BROWSER: usize = I_OS + patterns::OS.len();
const BUILT_IN: usize = I_BROWSER + patterns::BROWSERS.len();

/// Room for a few hundred operator patterns beside the built-in ones.
const SET_SIZE_LIMIT: usize = 32 << 20;
/// The lazy DFA's cache per thread: with the default 2 MiB, a stream of never-seen user agents
/// fills it, clears it and falls back to the slow engine (hundreds of µs a user agent).
pub(crate) const DFA_CACHE: usize = 32 << 20;

impl Default for UaClassifier {
    fn default() -> Self {
        Self::new(&[], &[]).expect("built-in user-agent patterns compile")
    }
}

/// The built-in bot list, compiled once per process (a test checks that it compiles).
pub(crate) fn built_in_list() -> Option<Regex> {
    static LIST: std::sync::LazyLock<Option<Regex>> =
        std::sync::LazyLock::new(|| list::compile(&list::built_in()).ok().flatten());
    LIST.clone()
}

impl UaClassifier {
    /// The built-in patterns plus the operator's: `extra` marks more clients as bots,
    /// `allow` marks clients as human whatever else matches. Compiled once, into one set;
    /// when that fails, every operator pattern to blame is named.
    pub fn new(extra: &[String], allow: &[String]) -> Result<UaClassifier, Vec<Error>> {
        Self::with_list(extra, allow, built_in_list())
    }

    /// As `new`, with a bot list of the operator's (`list::compile`) instead of the built-in.
    pub fn with_list(
        extra: &[String],
        allow: &[String],
        list: Option<Regex>,
    ) -> Result<UaClassifier, Vec<Error>> {
        let mut all: Vec<&str> = vec![
            patterns::BOT,
            patterns::NOT_BOT,
            patterns::TV,
            patterns::CONSOLE,
            patterns::TABLET,
            patterns::ANDROID,
            patterns::MOBILE,
            patterns::DESKTOP,
            patterns::ANDROID_APP,
            patterns::ODD_TAIL,
            patterns::TAIL_ENGINE,
            patterns::COMPATIBLE,
            patterns::COMPATIBLE_BROWSER,
        ];
        all.extend(patterns::OS.iter().map(|(_, p)| *p));
        all.extend(patterns::BROWSERS.iter().map(|(_, p)| *p));
        all.extend(extra.iter().chain(allow).map(String::as_str));
        let set = regex::RegexSetBuilder::new(all)
            .case_insensitive(true)
            .size_limit(SET_SIZE_LIMIT)
            .dfa_size_limit(DFA_CACHE)
            .build()
            .map_err(|e| blame(extra, allow, e))?;
        Ok(UaClassifier {
            set,
            extra: BUILT_IN,
            allow: BUILT_IN + extra.len(),
            list,
        })
    }

    /// A missing or empty user agent is a bot.
    pub fn classify(&self, ua: Option<&str>) -> UaClass {
        let ua = match ua.map(str::trim) {
            None | Some("") => return UaClass::BOT,
            Some(ua) => ua,
        };
        let m = self.set.matches(ua);
        let allowed = (self.allow..m.len()).any(|i| m.matched(i));
        let added = (self.extra..self.allow).any(|i| m.matched(i));
        // The list last: most bots are caught by the set's tokens before it has to run.
        let shape = (m.matched(I_ODD_TAIL) && !m.matched(I_TAIL_ENGINE))
            || (m.matched(I_COMPATIBLE) && !m.matched(I_COMPATIBLE_BROWSER));
        let bot = !allowed
            && (added
                || (!m.matched(I_NOT_BOT)
                    && (m.matched(I_BOT)
                        || shape
                        || self.list.as_ref().is_some_and(|l| l.is_match(ua)))));
        let os = patterns::OS
            .iter()
            .enumerate()
            .find(|(i, _)| m.matched(I_OS + i))
            .and_then(|(_, (name, _))| Os::parse(name))
            .unwrap_or(Os::Other);
        let browser = patterns::BROWSERS
            .iter()
            .enumerate()
            .find(|(i, _)| m.matched(I_BROWSER + i))
            .and_then(|(_, (name, _))| Browser::parse(name))
            .unwrap_or(Browser::Other);
        let device = if bot {
            Device::Bot
        } else if m.matched(I_TV) {
            Device::Tv
        } else if m.matched(I_CONSOLE) {
            Device::Console
        } else {
            let no_mobile = m.matched(I_ANDROID) && !m.matched(I_MOBILE);
            let tokens = if m.matched(I_TABLET) || (no_mobile && !m.matched(I_ANDROID_APP)) {
                Device::Tablet
            } else if m.matched(I_MOBILE) || m.matched(I_ANDROID) {
                Device::Mobile
            } else if m.matched(I_DESKTOP) {
                Device::Desktop
            } else {
                Device::Unknown
            };
            // A tablet's own word for itself beats the model table's guess from a prefix.
            if m.matched(I_TABLET) {
                tokens
            } else {
                devices::refine(ua, tokens, m.matched(I_ANDROID), os)
            }
        };
        UaClass {
            bot,
            device,
            os,
            browser,
        }
    }
}

/// Why the set did not compile: each operator pattern that fails on its own (only on this
/// path is any pattern compiled alone), else the set as a whole is too large.
fn blame(extra: &[String], allow: &[String], set: regex::Error) -> Vec<Error> {
    let bad: Vec<Error> = [("intel.bots.add", extra), ("intel.bots.allow", allow)]
        .into_iter()
        .flat_map(|(key, list)| list.iter().map(move |p| (key, p)))
        .filter_map(|(key, p)| {
            let alone = regex::RegexBuilder::new(p)
                .case_insensitive(true)
                .size_limit(SET_SIZE_LIMIT)
                .build();
            alone.err().map(|source| Error::Pattern {
                key,
                pattern: p.clone(),
                source,
            })
        })
        .collect();
    if bad.is_empty() {
        vec![Error::PatternSet(set)]
    } else {
        bad
    }
}

impl UaClass {
    pub const BOT: UaClass = UaClass {
        bot: true,
        device: Device::Bot,
        os: Os::Other,
        browser: Browser::Other,
    };

    /// Client hints refine what the user agent left vague; they never make a bot human.
    pub fn with_hints(mut self, hints: ClientHints) -> UaClass {
        if self.bot {
            return self;
        }
        if let Some(os) = hints
            .platform
            .and_then(|p| match p.to_ascii_lowercase().as_str() {
                "windows" => Some(Os::Windows),
                "macos" => Some(Os::Macos),
                "ios" => Some(Os::Ios),
                "android" => Some(Os::Android),
                "linux" => Some(Os::Linux),
                "chrome os" | "chromeos" => Some(Os::Chromeos),
                _ => None,
            })
        {
            self.os = os;
        }
        match hints.mobile {
            Some(true) if matches!(self.device, Device::Desktop | Device::Unknown) => {
                self.device = Device::Mobile
            }
            Some(false) if self.device == Device::Mobile && self.os != Os::Ios => {
                self.device = Device::Desktop
            }
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(ua: &str) -> UaClass {
        UaClassifier::default().classify(Some(ua))
    }

    #[test]
    fn devices_os_and_browsers() {
        let chrome = class("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36");
        assert_eq!(
            (chrome.bot, chrome.device, chrome.os, chrome.browser),
            (false, Device::Desktop, Os::Windows, Browser::Chrome)
        );
        let iphone = class("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1");
        assert_eq!(
            (iphone.device, iphone.os, iphone.browser),
            (Device::Mobile, Os::Ios, Browser::Safari)
        );
        let ipad = class("Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1");
        assert_eq!((ipad.device, ipad.os), (Device::Tablet, Os::Ios));
        let tab = class("Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36");
        assert_eq!((tab.device, tab.os), (Device::Tablet, Os::Android));
        let edge = class("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0");
        assert_eq!((edge.os, edge.browser), (Os::Macos, Browser::Edge));
        let tv = class("Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) 76.0.3809.146/6.0 TV Safari/537.36");
        assert_eq!(tv.device, Device::Tv);
        let ps = class("Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0 Safari/605.1.15");
        assert_eq!(ps.device, Device::Console);
        let cubot = class("Mozilla/5.0 (Linux; Android 9; CUBOT P30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/90.0.4430.91 Mobile Safari/537.36");
        assert_eq!((cubot.bot, cubot.device), (false, Device::Mobile));
    }

    #[test]
    fn in_app_browsers_are_people() {
        let ig = class("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML,like Gecko) Mobile/21F79 Instagram 330.0.3.29.91 (iPhone14,3; iOS 17_5; en_IR@calendar=gregorian; en; scale=3.00; 1125x2436; 595323416)");
        assert_eq!(
            (ig.bot, ig.device, ig.browser),
            (false, Device::Mobile, Browser::Instagram)
        );
        let fb = class("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/441.0.0.33.113;FBBV/123;FBDV/iPhone14,5;FBMD/iPhone;FBSN/iOS;FBSV/17.1;FBSS/3;FBCR/;FBID/phone;FBLC/en_US;FBOP/5]");
        assert_eq!((fb.bot, fb.browser), (false, Browser::Facebook));
    }

    #[test]
    fn bots_and_operator_patterns() {
        for bot in ["curl/8.5.0", "python-requests/2.31.0", "Go-http-client/1.1",
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36"] {
            assert_eq!(class(bot), UaClass { os: class(bot).os, browser: class(bot).browser, ..UaClass::BOT }, "{bot}");
        }
        let c = UaClassifier::default();
        assert!(c.classify(None).bot && c.classify(Some(" ")).bot);
        let ops =
            UaClassifier::new(&["(?i)acmeprobe".into()], &["(?i)^curl/8\\.5".into()]).unwrap();
        assert!(
            ops.classify(Some(
                "Mozilla/5.0 (Windows NT 10.0) AcmeProbe/1.0 Chrome/1 Safari/1"
            ))
            .bot
        );
        assert!(
            !ops.classify(Some("curl/8.5.0")).bot,
            "allowed by the operator"
        );
        let errors = UaClassifier::new(&["(unclosed".into(), "ok".into()], &["[".into()])
            .err()
            .unwrap_or_default();
        let named: Vec<_> = errors
            .iter()
            .map(|e| match e {
                Error::Pattern { key, pattern, .. } => (*key, pattern.as_str()),
                other => panic!("{other}"),
            })
            .collect();
        assert_eq!(
            named,
            [("intel.bots.add", "(unclosed"), ("intel.bots.allow", "[")]
        );
        assert!(errors[0]
            .to_string()
            .starts_with("bad regex \"(unclosed\": "));
    }

    #[test]
    fn how_tools_write_user_agents() {
        for bot in [
            "Mozilla/5.0 (compatible; Quillon/0.3; +quillon-team; contact via site)",
            "Mozilla/5.0 (Windows NT 10.0; rv:{rv}) Gecko/{trail} Firefox/{version}",
            "quillon.dev - qln/0.1",
            "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Quillon/2.1",
            "Mozilla/5.0 (compatible; Quillon/0.3; Linux)",
            "Quillon/1.0 (ops at quillon dot dev)",
            "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 Quill.js/2.0",
        ] {
            assert!(class(bot).bot, "{bot}");
        }
        for human in [
            "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; Trident/5.0)",
            "Mozilla/5.0 (compatible; Konqueror/4.5; Linux) KHTML/4.5.4 (like Gecko)",
            "Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/68.0.3440.106 Safari/537.36 HbbTV/1.5.1 (+DRM; LGE; ST-5090; WEBOS5.0 04.50.63;)",
            "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0",
            "Mozilla/4.0 (compatible; GoogleToolbar 5.0.2124.2070; Windows 6.0; MSIE 8.0.6001.18241)",
            "Mozilla/4.0 (compatible; Lotus-Notes/6.0; Windows-NT)",
        ] {
            assert!(!class(human).bot, "{human}");
        }
    }

    #[test]
    fn client_hints_refine() {
        let reduced = class("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36");
        let hinted = reduced.with_hints(ClientHints {
            mobile: Some(true),
            platform: Some("Android"),
        });
        assert_eq!((hinted.device, hinted.os), (Device::Mobile, Os::Android));
        assert!(
            UaClass::BOT
                .with_hints(ClientHints {
                    mobile: Some(true),
                    platform: None
                })
                .bot
        );
    }
}
