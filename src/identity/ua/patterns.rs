//! The built-in patterns. Case-insensitive, linear-time (no look-around): tokens that name a
//! kind of client rather than lists of products, so clients nobody listed are caught too.

/// Automation: crawlers, previews, monitors, scanners, AI crawlers, HTTP libraries, CLI tools
/// and headless or driven browsers. Mostly tokens that name a kind of tool rather than a
/// product, so tools nobody has listed yet are caught too.
pub const BOT: &str = r"(?x)
    # what the client says it is
    bot\b | bot[-_/;:.)\ ] | robot | crawl | spider | slurp | scrap(e|er|ing|y)\b
  | \bfetch(er)?\b | archiv(e|er|ing) | index(er|ing) | \bseo\b | audit | optimi[sz]er
  | monitor | uptime | health.?(check|service) | synthetic | \bcheck(er)?\b | linkcheck
  | \bscan(ner)?\b | vulnerab | preview | validator | analy[sz]er | \bprobe | survey
  | agent\b | agent/ | \bcron\b | proxy\b | downloader | sitesucker | httrack | \btools?/
  | verif(y|ication) | \bdcv\b | certificate | webhook | resolver | expander | lookup | onebox
  | parser | classifier | extract | daemon | integration | batch\b | recon\b | observatory
  | inspector | transcoder | fuzz | discovery(bot|/) | sender\b | service\b | fetcher | (^|[^a-z])scanner
  | \d+\ subscribers? | lead.?gen | marketplace | advisor\b | trackable | \bhydra\b | mutant
  | \bcursor/ | \bdevin/ | \bmanus- | securityheaders | algolia | emclient | igetter | \bswcd\b
  | dmbrowser | webster | datanyze | marketgoo | morningscore | pageburst | taginspector
  | dejaclick | foregenix | hexometer | scope3 | onetrust | collapsify | browsershots | twingly
  | inoreader | nuzzel | blogtrottr | mnogosearch | marginalia | firephp | \bdaum\b
  | cdn/ | workflow | logic-?apps | internal\ dummy\ connection | adsense | convertify
  | proxychecker | assetnote | \btime/\d{13} | measurement | functionize | \bvisit\ [\w-]+\.[a-z]{2,}
  # headless and driven browsers
  | headless | phantomjs | slimerjs | selenium | webdriver | puppeteer | playwright | cypress
  | \bsplash\b | htmlunit | jsdom | nightmare
  # HTTP libraries and command-line tools
  | curl | wget | httpie | python | aiohttp | httpx | \(java\) | java/ | jakarta | okhttp
  | apache-httpclient | go-http-client | \bgo/(go)?\d | libwww-perl | lwp- | lwp:: | \bperl\b | ruby/ | ^ruby | \bruby$
  | \bphp | guzzle | node-fetch | axios | undici | \bnode/ | node\.js | reqwest | \bhyper/
  | rest-?client | restsharp | postman | insomnia | winhttp | http.?client | httpurlconnection
  | http-kit | [-_]http/ | libcurl | mechanize | grpc- | jersey/ | cryptoapi
  | \bureq/ | fasthttp | alamofire | \bdocker/ | \bgitlab/
  # a script's marks: a JavaScript library as the product, a Perl or Ruby module path, a
  # development build, a word glued before Mozilla's prefix
  | \.js/\d | [a-z]::[a-z] | \d-snapshot\b | ^[a-z]+,?\ mozilla/
  # what the tool does, in words
  | updater\b | tracer\b | tester\b | screen.?shot | suggestion | tracker\b
  | wkhtmlto | html.?to.?(pdf|image)
  # performance, uptime and load tools
  | pingdom | statuscake | gtmetrix | lighthouse | page\ ?speed | speedcurve | \bptst[/\ ]\d | webpagetest
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
  | [\w.-]+@[a-z0-9-]+\.[a-z]{2,} | mailto: | [\w.-]+@localhost\b
  # an address spelt out against harvesters: `name at example dot com`
  | \ at\ [\w-]+\ dot\ [a-z]{2,}
  # shapes no browser sends: no product/version at all, a bare product token, a bare Mozilla,
  # or Mozilla with a single comment and nothing after it
  | ^[^/]*$ | ^[\w.-]+/v?[\d.]+$ | ^mozilla/[\d.]+$ | ^mozilla/[\d.]+\ [\w.-]+(/[\w.]+)?$
  | ^mozilla/[\d.]+\ \((compatible;\ )?[^;)]+\)$
  # a contact in a comment, the way crawlers sign (Googlebot's `+http://...`): `+` then a URL,
  # an address or a dotted or hyphenated name (TVs list features as `+DRM`, `+mouse`: no dot)
  | [(;]\s*\+\s*\w+([.:@\[-]|\ at\ )
  # a bare domain name as a word of its own: a tool naming its site without the URL
  | (^|[\s;(])[a-z0-9][a-z0-9-]*\.(com|net|org|io|ai|app|co|de|ru|info|biz|me|dev|xyz)([\s;)]|$)
  # an unfilled template: a browser product or Gecko's `rv:` whose version has no digit
  | \b(firefox|chrome|safari|applewebkit|gecko|version|opr|edge?|crios|fxios|opera|mozilla)/[^\d\s;)]+([\s;)]|$)
  | \brv:[^\d\s;)]+[;)]
  # not a user agent at all: a version glued to the next product, a request line, an encoded
  # blob, another header, a prefix
  | \.\d+[a-z]+browser/ | ^(get|post|head|put)\ / | ^[\w+/=]{40,}$ | \bhost:\ | ^\w+\| | ^anonymous, | \(at\)
";

/// `Mozilla/x (platform) Product/version` and nothing more: a browser writes its engine there
/// (`Gecko/`, `AppleWebKit/`, `Presto/`, ...) and more after it; a tool borrowing Mozilla's
/// prefix writes its own name (`TAIL_ENGINE` lists what a browser writes).
pub const ODD_TAIL: &str = r"^mozilla/[\d.]+ \([^)]*\) [\w.-]+/[\w.]+$";
pub const TAIL_ENGINE: &str =
    r"^mozilla/[\d.]+ \([^)]*\) (gecko|applewebkit|firefox|version|[a-z]*webkit|presto|khtml)";
/// `(compatible; Name...`: the crawlers' convention (Googlebot, bingbot, ...), which among
/// browsers only the old ones in `COMPATIBLE_BROWSER` (and apps naming them) used, Internet
/// Explorer's toolbars and add-ons among them (`(compatible; GoogleToolbar 5.0; MSIE 6.0; ...`).
pub const COMPATIBLE: &str = r"\(compatible;\s*[a-z]";
pub const COMPATIBLE_BROWSER: &str = r"(?x)
    \(compatible;\s*(msie|konqueror|u;|ibrowse|amiga|netpositive|ms-office|polaris|icab|opera
      |lotus-notes/)
  | \(compatible;[^)]*;\s*(msie\ \d|trident/\d)
";

/// Humans whose user agents contain bot-like tokens: phones named like bots, and in-app
/// browsers (a visitor tapping a link in Facebook, Instagram or TikTok is a person).
pub const NOT_BOT: &str = r"(?x)
    cubot | mozacfetch | yandexsearch(browser)?/ | yabrowser
  | android\ [\d.]+;\ [a-z]\ bot\b | sogou(mse|mobilebrowser|search) | ^iphone\w*$ | ^amazon;aft
  | ^smarttv_ | amiga-aweb | ^links\ \(
  | \bfban/ | \bfbav/ | fb_iab | \binstagram\ \d | musical_ly | bytedancewebview
  | \bsnapchat/ | \bline/\d | kakaotalk | \[pinterest/ | linkedinapp | twitter\ for
";
pub const TV: &str = r"smart-?tv|hbbtv|\bappletv|googletv|android\ ?tv|\broku|\baft[a-z]{1,3}\b|bravia|\btizen.*\btv\b|web0s|webos.*tv|netcast|\bcrkey|\bvizio|philipstv";
pub const CONSOLE: &str = r"playstation|\bxbox|nintendo|\bwii\b";
pub const TABLET: &str = r"ipad|tablet|kindle|\bsilk/|playbook|\bsm-t\d|\bsm-x\d|nexus (7|9|10)\b|\bxoom\b|\btab\b|\bpad\b|[a-z]pad[-_ ]|\bmid\d|dslide|\bslate\b|pocketbook";
pub const ANDROID: &str = r"android";
/// Android apps' own HTTP stacks (Dalvik) and Android before 3.0 leave `Mobile` out on
/// phones too: without it they are phones, most likely, where a browser would be a tablet.
pub const ANDROID_APP: &str = r"^dalvik/|android [12]\.";
pub const MOBILE: &str = r"mobi|iphone|ipod|windows phone|blackberry|\bbb10\b|opera mini|iemobile|\bwebos\b|symbian|midp|cldc|up\.browser|\bbrew\b|smartphone|palmsource|netfront|\bmocor|kaios|\bobigo|\bwindows ce\b|\blumia\b|^dv\(iph|\bxiino/";
pub const DESKTOP: &str = r"windows nt|macintosh|mac os x|\bx11\b|linux (x86_64|i686)|\bcros\b|darwin/[\d.]+ \((x86_64|i386)\)|\bmacbook|\bimac\d|\bwin(10|11|7|8|32|64|98|95)\b|windows (98|95|2000|xp|me)\b|openvms|motif";

/// Operating systems, most specific first.
pub const OS: [(&str, &str); 6] = [
    ("ios", r"iphone|ipad|ipod|\bcpu (iphone )?os \d|\bios[ /]\d"),
    ("android", r"android"),
    ("chromeos", r"\bcros\b"),
    ("macos", r"macintosh|mac os x"),
    ("windows", r"windows"),
    ("linux", r"linux|x11|ubuntu|fedora"),
];

/// Browsers, most specific first (every Chromium says Chrome, every browser says Mozilla).
pub const BROWSERS: [(&str, &str); 11] = [
    ("facebook", r"\bfban/|\bfbav/|fb_iab"),
    ("instagram", r"\binstagram\ \d"),
    ("tiktok", r"musical_ly|bytedancewebview"),
    ("edge", r"\bedg(e|a|ios)?/"),
    ("opera", r"\bopr/|\bopera"),
    ("samsung", r"samsungbrowser"),
    ("yandex", r"yabrowser"),
    ("firefox", r"firefox/|fxios/"),
    ("chrome", r"chrome/|crios/|chromium/"),
    ("ie", r"\bmsie |trident/"),
    ("safari", r"safari/|applewebkit/"),
];
