//! One canonical form for request paths, shared by campaign matching and the upstream
//! request, so that `/%2e%2e/offer` or `//admin/` cannot mean one thing to flowgate and
//! another to the nginx behind it (dodging a campaign prefix or escaping a route prefix).

use std::borrow::Cow;
use std::fmt;

/// Why a path was refused (the proxy answers 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Does not start with `/`.
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// `%2F`: servers disagree on whether it separates segments, so no form is safe.
    EncodedSlash,
    /// `\` or `%5C`: a separator for some backends, a name character for others.
    Backslash,
    /// NUL, another C0 control or DEL, raw or encoded.
    ControlChar,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotAbsolute => "path does not start with /",
            Self::BadEscape => "malformed percent-escape in path",
            Self::EncodedSlash => "encoded slash in path",
            Self::Backslash => "backslash in path",
            Self::ControlChar => "control character in path",
        })
    }
}

impl std::error::Error for PathError {}

/// The path as the servers behind flowgate will read it: the one form that campaign
/// matching sees and the upstream receives.
///
/// `path` is the path of the request target only; the caller splits off `?query` first.
pub fn normalize(path: &str) -> Result<Cow<'_, str>, PathError> {
    if is_canonical(path.as_bytes()) {
        return Ok(Cow::Borrowed(path));
    }
    rebuild(path).map(Cow::Owned)
}

/// The upstream path for a route's prefix (`""` or `/safe`, no trailing slash) and a
/// normalised visitor path: always inside the prefix.
pub fn join(prefix: &str, normalized: &str) -> String {
    // Only a canonical path is sure not to climb out of the prefix upstream.
    debug_assert!(matches!(normalize(normalized), Ok(Cow::Borrowed(_))));
    let sep = if normalized.starts_with('/') { "" } else { "/" };
    [prefix.trim_end_matches('/'), sep, normalized].concat()
}

fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// What `%hl` stands for: `Some(c)` when it must be decoded to `c`, `None` when it stays
/// an escape.
fn unescape(h: u8, l: u8) -> Result<Option<u8>, PathError> {
    let (Some(h), Some(l)) = (char::from(h).to_digit(16), char::from(l).to_digit(16)) else {
        return Err(PathError::BadEscape);
    };
    match (h << 4 | l) as u8 {
        b'/' => Err(PathError::EncodedSlash),
        b'\\' => Err(PathError::Backslash),
        v if is_control(v) => Err(PathError::ControlChar),
        v if is_unreserved(v) => Ok(Some(v)),
        _ => Ok(None),
    }
}

fn is_canonical_escape(h: u8, l: u8) -> bool {
    !h.is_ascii_lowercase() && !l.is_ascii_lowercase() && unescape(h, l) == Ok(None)
}

/// The hot path: one pass, no allocation. Anything doubtful (including every error) is
/// left to `rebuild`, so the refusal rules live in one place.
fn is_canonical(p: &[u8]) -> bool {
    let [b'/', rest @ ..] = p else {
        return false;
    };
    // Dots seen in the current segment, 3 once it is known to be a name: an empty, `.`
    // or `..` segment is exactly what must be rewritten.
    let mut dots = 0u8;
    let mut bytes = rest.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'/' if dots < 3 => return false,
            b'/' => dots = 0,
            b'.' => dots = (dots + 1).min(3),
            b'%' => match (bytes.next(), bytes.next()) {
                (Some(&h), Some(&l)) if is_canonical_escape(h, l) => dots = 3,
                _ => return false,
            },
            b'\\' => return false,
            _ if is_control(b) => return false,
            _ => dots = 3,
        }
    }
    // A trailing empty segment is a kept trailing slash; a trailing `.`/`..` is not.
    !matches!(dots, 1 | 2)
}

/// Decode, merge slashes and resolve dot segments in one left-to-right pass.
fn rebuild(path: &str) -> Result<String, PathError> {
    let rest = path.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    let mut out = String::with_capacity(path.len());
    // Input ending in `/`, `/.` or `/..` names a directory; keep saying so.
    let mut trailing = true;
    for seg in rest.split('/') {
        trailing = true;
        // Merged like nginx's `merge_slashes on`, before `..` applies: `/a//../b` is `/b`.
        if seg.is_empty() {
            continue;
        }
        let start = out.len();
        out.push('/');
        decode_into(seg, &mut out)?;
        match out.get(start + 1..) {
            Some(".") => out.truncate(start),
            Some("..") => {
                // Decoded segments hold no `/`, so the parent starts at the `/` before
                // this one; at the root there is nothing to climb to.
                let parent = out.get(..start).and_then(|o| o.rfind('/'));
                out.truncate(parent.unwrap_or(0));
            }
            _ => trailing = false,
        }
    }
    if trailing {
        out.push('/');
    }
    Ok(out)
}

fn decode_into(seg: &str, out: &mut String) -> Result<(), PathError> {
    let mut parts = seg.split('%');
    push_raw(parts.next().unwrap_or(""), out)?;
    // Every later part follows a `%`, so it must open with the two hex digits.
    for part in parts {
        let &[h, l, ..] = part.as_bytes() else {
            return Err(PathError::BadEscape);
        };
        match unescape(h, l)? {
            // Decoded once only: `%252e` stays `%252e`, as nginx leaves it.
            Some(c) => out.push(char::from(c)),
            None => {
                out.push('%');
                out.extend([h, l].map(|d| char::from(d.to_ascii_uppercase())));
            }
        }
        // Two hex digits are two ASCII bytes, so byte 2 is a char boundary.
        push_raw(part.get(2..).unwrap_or(""), out)?;
    }
    Ok(())
}

fn push_raw(raw: &str, out: &mut String) -> Result<(), PathError> {
    match raw.bytes().find(|&b| b == b'\\' || is_control(b)) {
        Some(b'\\') => Err(PathError::Backslash),
        Some(_) => Err(PathError::ControlChar),
        None => {
            out.push_str(raw);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use PathError::*;

    fn norm(p: &str) -> Result<String, PathError> {
        normalize(p).map(Cow::into_owned)
    }

    /// Checks a forwarding table: `input -> output` or `input -> !Refusal`, `;`-separated.
    #[track_caller]
    fn forwards(table: &str) {
        for (p, want) in table.split("; ").map(|e| e.split_once(" -> ").unwrap()) {
            assert_eq!(norm(p).unwrap_or_else(|e| format!("!{e:?}")), want, "{p:?}");
        }
    }

    #[test]
    fn dot_dot_cannot_escape_the_safe_route() {
        let tries = "/../offer/lp /lp/../../../offer/lp /%2e%2e/offer/lp /%2E%2E/offer/lp";
        for p in tries.split(' ').chain(["/.%2e/offer/lp", "/%2e./offer/lp"]) {
            // What nginx is asked for when route `safe` (`path: /safe`) serves `p`.
            let upstream = normalize(p).map(|n| join("/safe", &n));
            assert_eq!(upstream.as_deref(), Ok("/safe/offer/lp"), "{p}");
        }
    }

    #[test]
    fn admin_campaign_sees_admin_however_it_is_spelled() {
        let tries = "/x/../admin/s /%61dmin/s //admin/s /./admin/s /%2e/admin/s /admin/./s";
        for p in tries.split(' ').chain(["/%61%64%6D%69%6e/s"]) {
            assert_eq!(norm(p).as_deref(), Ok("/admin/s"), "{p}");
        }
    }

    #[test]
    fn smuggled_separators_are_refused() {
        forwards("/..%2foffer -> !EncodedSlash; /%2e%2e%2Foffer -> !EncodedSlash");
        forwards("/admin%2fs -> !EncodedSlash; /admin%2F -> !EncodedSlash");
        forwards(r"/a%5cb -> !Backslash; /a%5Cb -> !Backslash; /a\b -> !Backslash");
        forwards(r"/..\offer -> !Backslash; /%2e%2e%5coffer -> !Backslash");
    }

    #[test]
    fn control_characters_are_refused_raw_or_encoded() {
        forwards("/a%00b -> !ControlChar; /a\0b -> !ControlChar; /a\rb -> !ControlChar");
        forwards("/a%0d%0ab -> !ControlChar; /%09 -> !ControlChar; /%1f -> !ControlChar");
        forwards("/a%7F -> !ControlChar; /\x7f -> !ControlChar; /a\nb -> !ControlChar");
    }

    #[test]
    fn broken_escapes_and_relative_paths_are_refused() {
        forwards("/%zz -> !BadEscape; /% -> !BadEscape; /a%2 -> !BadEscape; /%2/x -> !BadEscape");
        forwards("/%u002e%u002e/ -> !BadEscape; /%é1 -> !BadEscape; /%+2 -> !BadEscape");
        forwards(" -> !NotAbsolute; admin/s -> !NotAbsolute; * -> !NotAbsolute");
        forwards("http://x/admin -> !NotAbsolute; %2fadmin -> !NotAbsolute");
    }

    #[test]
    fn other_escapes_stay_encoded_in_uppercase() {
        forwards("/caf%c3%a9 -> /caf%C3%A9; /a%20b%3b -> /a%20b%3B; /%41DMIN/%7e -> /ADMIN/~");
        // Overlong UTF-8 for `.`: a dot to no server that matters.
        forwards("/%c0%ae%c0%ae/offer -> /%C0%AE%C0%AE/offer");
    }

    #[test]
    fn canonical_paths_and_raw_utf8_are_borrowed() {
        let paths = "/ /lp /admin/s /a/b/ /.a/... /caf%C3%A9 /~-_.h /café/ü /a/%20/ /%C3%A9/";
        let borrowed = |p: &str| matches!(normalize(p), Ok(Cow::Borrowed(b)) if b == p);
        for p in paths.split(' ') {
            assert!(borrowed(p), "{p}");
        }
        assert!(matches!(normalize("/a//b"), Ok(Cow::Owned(_))));
        forwards("/café/../ü -> /ü");
    }

    #[test]
    fn dots_resolve_and_the_trailing_slash_stays_where_the_visitor_put_one() {
        forwards("/a/ -> /a/; /a// -> /a/; /a/. -> /a/; /a/.. -> /; /a/b/.. -> /a/");
        forwards("/a/b/.%2E -> /a/; /. -> /; /.. -> /; // -> /; /a/b -> /a/b");
        forwards("/%2e/ -> /; /.%2E/ -> /; /%2e%2e -> /; /a/%2E%2e/b -> /b; /a//../b -> /b");
    }

    #[test]
    fn lookalike_segments_and_double_encoding_are_just_names() {
        // nginx treats `..;` as a name (Tomcat would not, but Tomcat is not behind us).
        forwards("/..;/offer -> /..;/offer; /safe/..;/offer -> /safe/..;/offer");
        forwards("/.../x -> /.../x; /..a/.b/a.. -> /..a/.b/a..; /.%20./x -> /.%20./x");
        forwards("/%252e%252e/ -> /%252e%252e/; /a%252fb -> /a%252fb; /%255c -> /%255c");
    }

    #[test]
    fn join_keeps_the_visitor_inside_the_prefix_and_errors_read_short() {
        assert_eq!(join("/safe", "/lp"), "/safe/lp");
        assert_eq!(join("", "/lp"), "/lp");
        assert_eq!(join("/safe", "/"), "/safe/");
        assert_eq!(join("/safe/", "/lp"), "/safe/lp");
        let e: Box<dyn std::error::Error> = Box::new(EncodedSlash);
        assert_eq!(e.to_string(), "encoded slash in path");
    }

    /// Independent model: decode byte by byte, merge slashes, then RFC 3986 §5.2.4 verbatim.
    fn model(p: &str) -> Result<String, PathError> {
        p.strip_prefix('/').ok_or(NotAbsolute)?;
        let (b, mut i, mut s) = (p.as_bytes(), 0, Vec::new());
        while let Some(&c) = b.get(i) {
            let hex = |k: usize| b.get(i + k).and_then(|&d| char::from(d).to_digit(16));
            let (v, escaped) = match (c, hex(1), hex(2)) {
                (b'%', Some(h), Some(l)) => ((h * 16 + l) as u8, true),
                (b'%', ..) => return Err(BadEscape),
                _ => (c, false),
            };
            match v {
                b'/' if escaped => return Err(EncodedSlash),
                b'\\' => return Err(Backslash),
                0..=0x1f | 0x7f => return Err(ControlChar),
                _ if escaped && !(v.is_ascii_alphanumeric() || b"-._~".contains(&v)) => {
                    s.extend(format!("%{v:02X}").bytes())
                }
                _ => s.push(v),
            }
            i += if escaped { 3 } else { 1 };
        }
        let mut input = String::from_utf8(s).unwrap();
        while input.contains("//") {
            input = input.replace("//", "/");
        }
        let (mut input, mut out) = (input.as_str(), String::new());
        let pop = |out: &mut String| out.truncate(out.rfind('/').unwrap_or(0));
        while !input.is_empty() {
            if input.starts_with("/./") || input == "/." {
                input = if input == "/." { "/" } else { &input[2..] };
            } else if input.starts_with("/../") || input == "/.." {
                input = if input == "/.." { "/" } else { &input[3..] };
                pop(&mut out);
            } else {
                let end = input[1..].find('/').map_or(input.len(), |e| e + 1);
                out.push_str(&input[..end]);
                input = &input[end..];
            }
        }
        Ok(out)
    }

    /// Every escape decoded, as the most credulous backend would.
    fn full_decode(s: &str) -> Vec<u8> {
        let mut parts = s.split('%');
        let mut v = parts.next().unwrap_or("").as_bytes().to_vec();
        for part in parts {
            v.push(u8::from_str_radix(&part[..2], 16).unwrap());
            v.extend(&part.as_bytes()[2..]);
        }
        v
    }

    /// Mostly the bytes of dot, slash and escape tricks, now and then any char at all.
    fn attack_path() -> impl Strategy<Value = String> {
        let tricky: Vec<char> = "////....%%%22eEfF5cCaa0\0~\\;é".chars().collect();
        let c = prop_oneof![12 => prop::sample::select(tricky), 1 => any::<char>()];
        prop::collection::vec(c, 0..24).prop_map(|v| std::iter::once('/').chain(v).collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn never_panics(p in attack_path(), q in any::<String>()) {
            let _ = normalize(&p);
            let _ = normalize(&q);
            let _ = normalize(&format!("/{q}"));
        }

        #[test]
        fn agrees_with_the_rfc_model_and_the_slow_path(p in attack_path()) {
            let got = norm(&p);
            prop_assert_eq!(&got, &model(&p));
            prop_assert_eq!(&got, &rebuild(&p));
        }

        #[test]
        fn output_is_canonical_and_idempotent(p in attack_path()) {
            if let Ok(n) = normalize(&p) {
                prop_assert!(matches!(normalize(&n), Ok(Cow::Borrowed(b)) if b == n));
                prop_assert!(n.starts_with('/') && !n.contains("//"));
                prop_assert!(!n.contains("/./") && !n.contains("/../"));
                prop_assert!(!n.ends_with("/.") && !n.ends_with("/.."));
                for esc in n.split('%').skip(1) {
                    let hex = esc.get(..2).unwrap_or("");
                    prop_assert!(!hex.contains(|c: char| c.is_ascii_lowercase()), "{}", n);
                    let v = u8::from_str_radix(hex, 16);
                    prop_assert!(v.is_ok_and(|v| !is_unreserved(v)), "{}", n);
                }
            }
        }

        #[test]
        fn joined_path_stays_under_the_prefix(
            prefix in prop_oneof![Just(""), Just("/safe"), Just("/offer/x")],
            p in attack_path(),
        ) {
            if let Ok(n) = normalize(&p) {
                let j = join(prefix, &n);
                let dir = format!("{prefix}/");
                prop_assert!(j.starts_with(&dir) && (n != "/" || j == dir), "{}", j);
                // The upstream has nothing left to resolve, so it stays there.
                prop_assert!(matches!(normalize(&j), Ok(Cow::Borrowed(_))));
            }
        }

        #[test]
        fn decoded_output_has_nothing_left_to_resolve(p in attack_path()) {
            if let Ok(n) = normalize(&p) {
                let decoded = full_decode(&n);
                prop_assert!(!decoded.iter().any(|b| *b == b'\\' || b.is_ascii_control()), "{}", n);
                let segs: Vec<&[u8]> = decoded.split(|b| *b == b'/').skip(1).collect();
                prop_assert_eq!(segs.len(), n.matches('/').count(), "{}", n);
                prop_assert!(segs.iter().rev().skip(1).all(|s| !s.is_empty()), "{}", n);
                prop_assert!(segs.iter().all(|s| *s != b"." && *s != b".."), "{}", n);
            }
        }
    }
}
