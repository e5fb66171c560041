//! Bot and device classification from the user agent: one compiled pattern set, one pass
//! over the string.

use regex::RegexSet;

/// What the visitor's user agent says about the device behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Device {
    Desktop,
    Mobile,
    Tablet,
    Bot,
    Unknown,
}

impl Device {
    pub const ALL: [Device; 5] = [
        Device::Desktop,
        Device::Mobile,
        Device::Tablet,
        Device::Bot,
        Device::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Device::Desktop => "desktop",
            Device::Mobile => "mobile",
            Device::Tablet => "tablet",
            Device::Bot => "bot",
            Device::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Device> {
        Device::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// A bit for compact device sets in compiled rules.
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Automation: crawlers, previews, monitors, scanners, AI crawlers, HTTP libraries, CLI tools
/// and headless or driven browsers. Mostly tokens that name a kind of tool rather than a
/// product, so tools nobody has listed yet are caught too.
const BOT: &str = r"(?x)
    # what the client says it is
    bot\b | bot[-_/;:.)\ ] | robot | crawl | spider | slurp | scrap(e|er|ing|y)\b
  | \bfetch(er)?\b | archiv(e|er|ing) | index(er|ing) | \bseo\b | audit | optimi[sz]er
  | monitor | uptime | health.?(check|service) | synthetic | \bcheck(er)?\b | linkcheck
  | \bscan(ner)?\b | vulnerab | preview | validator | analy[sz]er | \bprobe | survey
  | agent\b | agent/ | \bcron\b | proxy\b | downloader | sitesucker | httrack | \btools?/
  | verif(y|ication) | \bdcv\b | certificate | webhook | resolver | expander | lookup | onebox
  | parser | classifier | extract | daemon | integration | batch\b | recon\b | observatory
  | inspector | transcoder | fuzz | discovery | sender\b | service\b
  # headless and driven browsers
  | headless | phantomjs | slimerjs | selenium | webdriver | puppeteer | playwright | cypress
  | \bsplash\b | htmlunit | jsdom | nightmare
  # HTTP libraries and command-line tools
  | curl | wget | httpie | python | aiohttp | httpx | \(java\) | java/ | jakarta | okhttp
  | apache-httpclient | go-http-client | \bgo/\d | libwww-perl | lwp- | lwp:: | perl | ruby
  | \bphp | guzzle | node-fetch | axios | undici | \bnode/ | node\.js | reqwest | \bhyper/
  | rest-?client | restsharp | postman | insomnia | winhttp | http.?client | httpurlconnection
  | http-kit | [-_]http/ | libcurl | mechanize | grpc- | jersey/ | cryptoapi
  # performance, uptime and load tools
  | pingdom | statuscake | gtmetrix | lighthouse | pagespeed | speedcurve | ptst/ | webpagetest
  | catchpoint | gomez | rigor\b | site24x7 | ruxit | dynatrace | newrelic | datadog
  | dareboost | apachebench | \bsiege | jmeter | \bk6/ | collectd | munin | nagios | zabbix
  | xymon | \bmonit/ | prometheus | icinga | hobbit | kube-probe
  # feed readers and link previews
  | \bfeed | \brss | rss\b | \breader\b | newsblur | reeder | readkit | newspaper
  | facebookexternalhit | facebookcatalog | meta-external | whatsapp | embedly | iframely
  | outbrain | thumbor | imgproxy | weblight | mediapartners | adsbot | google-
  | googleother | duplexweb | apis-google | google.?(favicon|search.console|association)
  | googlemessages | ^duckduckgo/ | ddg[-_]android | cloudflare | clamav
  # AI crawlers and agents, search engines
  | gptbot | chatgpt | openai | claude | anthropic | perplexity | ccbot | bytespider | cohere
  | diffbot | omgili | amazonbot | applebot | yandex | baiduspider | sogou | seznam | petalbot
  | nutch | heritrix | gigablast | mixnode | sparkler | owler | zgrab | masscan | nuclei
  | acunetix | arachni | burpcollaborator | sqlmap | nikto | wpscan
  # a URL or e-mail address in the user agent
  | https?:// | \+https?: | \bwww\. | \b[a-z0-9-]+\.(com|net|org|io|ai|app|ly|gy|me|ru|de|co)/
  | [\w.-]+@[a-z0-9-]+\.[a-z]{2,} | mailto:
  # shapes no browser sends: no product/version at all, a bare product token, a bare Mozilla,
  # or Mozilla with a single comment and nothing after it
  | ^[^/]*$ | ^[\w.-]+/v?[\d.]+$ | ^mozilla/[\d.]+$ | ^mozilla/[\d.]+\ [\w.-]+(/[\w.]+)?$
  | ^mozilla/[\d.]+\ \((compatible;\ )?[^;)]+\)$
";

/// Human clients whose names contain bot-like tokens (phones, apps).
const NOT_BOT: &str = r"cubot|mozacfetch|yandexsearch|yabrowser";
const TABLET: &str = r"ipad|tablet|kindle|\bsilk/|playbook|\bsm-t\d|nexus (7|9|10)\b|\bxoom\b";
const ANDROID: &str = r"android";
const MOBILE: &str =
    r"mobi|iphone|ipod|windows phone|blackberry|\bbb10\b|opera mini|iemobile|\bwebos\b|symbian";
const DESKTOP: &str = r"windows nt|macintosh|mac os x|\bx11\b|linux (x86_64|i686)|\bcros\b";

pub struct UaClassifier {
    set: RegexSet,
}

const I_BOT: usize = 0;
const I_NOT_BOT: usize = 1;
const I_TABLET: usize = 2;
const I_ANDROID: usize = 3;
const I_MOBILE: usize = 4;
const I_DESKTOP: usize = 5;

impl Default for UaClassifier {
    fn default() -> Self {
        Self::new()
    }
}

impl UaClassifier {
    pub fn new() -> Self {
        let set = regex::RegexSetBuilder::new([BOT, NOT_BOT, TABLET, ANDROID, MOBILE, DESKTOP])
            .case_insensitive(true)
            .build()
            // The patterns are constants of this file; a unit test compiles them.
            .expect("built-in user-agent patterns compile");
        UaClassifier { set }
    }

    /// `(bot, device)` for a user agent; a missing or empty one is a bot.
    pub fn classify(&self, ua: Option<&str>) -> (bool, Device) {
        let ua = match ua.map(str::trim) {
            None | Some("") => return (true, Device::Bot),
            Some(ua) => ua,
        };
        let m = self.set.matches(ua);
        if m.matched(I_BOT) && !m.matched(I_NOT_BOT) {
            return (true, Device::Bot);
        }
        let device = if m.matched(I_TABLET) || (m.matched(I_ANDROID) && !m.matched(I_MOBILE)) {
            Device::Tablet
        } else if m.matched(I_MOBILE) || m.matched(I_ANDROID) {
            Device::Mobile
        } else if m.matched(I_DESKTOP) {
            Device::Desktop
        } else {
            Device::Unknown
        };
        (false, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_cases() {
        let c = UaClassifier::new();
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
        assert_eq!(c.classify(Some(chrome)), (false, Device::Desktop));
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
        assert_eq!(c.classify(Some(iphone)), (false, Device::Mobile));
        let ipad = "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1";
        assert_eq!(c.classify(Some(ipad)), (false, Device::Tablet));
        let android_tab = "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
        assert_eq!(c.classify(Some(android_tab)), (false, Device::Tablet));
        let cubot = "Mozilla/5.0 (Linux; Android 9; CUBOT P30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/90.0.4430.91 Mobile Safari/537.36";
        assert_eq!(c.classify(Some(cubot)), (false, Device::Mobile));
        for bot in [
            "curl/8.5.0",
            "python-requests/2.31.0",
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
            "Go-http-client/1.1",
        ] {
            assert_eq!(c.classify(Some(bot)), (true, Device::Bot), "{bot}");
        }
        assert_eq!(c.classify(None), (true, Device::Bot));
        assert_eq!(c.classify(Some("  ")), (true, Device::Bot));
    }
}
