//! Turning the parser's error into one an operator can act on: the field path, what was
//! expected and what was found, the nearest valid name, and where a key landed at the wrong
//! indentation, the column that makes the file load (checked by loading it so).

use serde_saphyr::Error;

use super::tree::{self, Node, Place};
use super::At;
use crate::problem::Span;
use crate::suggest::did_you_mean;

/// Loads the text as the caller's type; `Err` carries the place of the error.
pub type Retry<'a> = &'a dyn Fn(&str) -> Result<(), Error>;

/// `(span, field, message)` for a file that did not load.
pub fn explain(text: &str, err: &Error, retry: Retry) -> (Span, String, String) {
    let err = err.without_snippet();
    let span = span_of(err);
    let root = match super::parse::<At<Node>>(text) {
        Ok(root) => root,
        // The typed parse can stop early ("missing field") on what is a syntax error further
        // on; the syntax error is the one to fix.
        Err(syntax) => return syntax_problem(text, syntax.without_snippet(), retry),
    };
    let mut at = tree::place(&root, span);
    let key_error = matches!(
        err,
        Error::SerdeUnknownField { .. }
            | Error::SerdeMissingField { .. }
            | Error::SerdeUnknownVariant { .. }
    );
    if !key_error {
        at.enter_key();
    }
    let message = match err {
        Error::InvalidScalar { ty, .. } => {
            format!(
                "expected {}, found {}",
                expected_scalar(ty, &at),
                found(&at)
            )
        }
        Error::InvalidBooleanStrict { .. } => {
            format!("expected true or false, found {}", found(&at))
        }
        Error::SerdeInvalidType { expected, .. } | Error::SerdeInvalidValue { expected, .. } => {
            format!(
                "expected {}, found {}",
                plain_expected(expected),
                found(&at)
            )
        }
        Error::SerdeUnknownField {
            field, expected, ..
        } => {
            let mut msg = format!("unknown field {field:?}");
            let hint = did_you_mean(field, expected);
            if !hint.is_empty() {
                msg += &hint;
            } else if let Some(h) = at.key.and_then(|k| too_deep(text, &at, k, span, retry)) {
                msg += &h;
            } else {
                msg += &one_of(expected);
            }
            msg
        }
        Error::SerdeUnknownVariant {
            variant, expected, ..
        } => {
            let hint = did_you_mean(variant, expected);
            let rest = if hint.is_empty() {
                one_of(expected)
            } else {
                hint
            };
            format!("unknown value {variant:?}{rest}")
        }
        Error::SerdeMissingField { field, .. } => {
            let hint = misplaced(text, &root, &at, field, span, retry).unwrap_or_default();
            format!("missing field {field:?}{hint}")
        }
        other => plain(other),
    };
    (span, at.field, message)
}

fn span_of(err: &Error) -> Span {
    err.location()
        .map(|l| Span {
            line: l.line() as usize,
            column: l.column() as usize,
        })
        .unwrap_or_default()
}

/// The parser's own words, without the "at line X column Y" it appends (the location is
/// printed up front).
fn plain(err: &Error) -> String {
    let mut message = err.to_string();
    if let Some(i) = message.find(" at line ") {
        message.truncate(i);
    }
    message
}

fn found(at: &Place) -> String {
    at.node.found()
}

fn one_of(expected: &[&str]) -> String {
    if expected.is_empty() {
        String::new()
    } else {
        format!("; expected one of {}", expected.join(", "))
    }
}

/// serde's names for what it wanted, in an operator's words.
fn plain_expected(expected: &str) -> &str {
    match expected {
        "a boolean" => "true or false",
        "a string" => "text",
        "a sequence" => "a list",
        other => other,
    }
}

/// What a scalar of this Rust type is to an operator; a few fields say more than their type.
fn expected_scalar(ty: &str, at: &Place) -> String {
    let last = at.field.rsplit('.').next().unwrap_or("");
    let last = last.split('[').next().unwrap_or(last);
    match (last, ty) {
        ("status", _) => "a number 100-599".to_string(),
        ("asn", _) => "an AS number like 15169".to_string(),
        (_, "u8") => "a number 0-255".to_string(),
        (_, "u16") => "a number 0-65535".to_string(),
        (_, "u32") => "a number 0-4294967295".to_string(),
        (_, "u64" | "usize" | "u128") => "a whole number, 0 or more".to_string(),
        (_, "i8" | "i16" | "i32" | "i64" | "isize" | "i128") => "a whole number".to_string(),
        (_, "f32" | "f64") => "a number".to_string(),
        (_, "bool" | "boolean") => "true or false".to_string(),
        (_, "char") => "a single character".to_string(),
        (_, other) => format!("a {other}"),
    }
}

/// A key the parser did not know in this map, which loads when moved out to the map around
/// it: written one level too deep.
fn too_deep(text: &str, at: &Place, key: &At<String>, span: Span, retry: Retry) -> Option<String> {
    let outer = at
        .ancestors
        .iter()
        .rev()
        .find(|n| matches!(n.value, Node::Map(_)))?;
    let (first, _) = match &outer.value {
        Node::Map(entries) => entries.first()?,
        _ => return None,
    };
    let moved = reindent(text, key.span, first.span.column)?;
    loads_further(&moved, span, retry).then(|| {
        format!(
            "; if it belongs to {}, indent it to column {}, like {:?} on line {}",
            outer_field(&at.field),
            first.span.column,
            first.value,
            first.span.line
        )
    })
}

/// A required key written elsewhere (after this map, at another indentation), which loads
/// when moved into this map.
fn misplaced(
    text: &str,
    root: &At<Node>,
    at: &Place,
    field: &str,
    span: Span,
    retry: Retry,
) -> Option<String> {
    let Node::Map(entries) = &at.node.value else {
        return None;
    };
    let (first, _) = entries.first()?;
    let mut keys = Vec::new();
    tree::keys_named(root, field, &mut keys);
    let key = keys
        .into_iter()
        .find(|k| (k.span.line, k.span.column) > (span.line, span.column))?;
    let moved = reindent(text, key.span, first.span.column)?;
    loads_further(&moved, span, retry).then(|| {
        format!(
            "; the {field:?} on line {} is not indented as part of this map: indent it to column {}, like {:?} on line {}",
            key.span.line, first.span.column, first.value, first.span.line
        )
    })
}

/// The map around the one at `field`: `a.b[x].c` -> `a.b[x]`, `a.b[x]` -> `a`.
fn outer_field(field: &str) -> &str {
    let field = match field.strip_suffix(']').and_then(|f| f.rfind('[')) {
        Some(i) => &field[..i],
        None => field,
    };
    field.rfind('.').map_or("the top level", |i| &field[..i])
}

fn loads_further(text: &str, than: Span, retry: Retry) -> bool {
    match retry(text) {
        Ok(()) => true,
        Err(e) => {
            let s = span_of(e.without_snippet());
            (s.line, s.column) > (than.line, than.column)
        }
    }
}

/// A syntax error, with the indentation that fixes it when moving the line to the column of
/// a key above it makes the file parse.
fn syntax_problem(text: &str, err: &Error, retry: Retry) -> (Span, String, String) {
    let span = span_of(err);
    if let Error::DuplicateMappingKey { key: Some(key), .. } = err {
        let message = format!("{key:?} is written twice in this map");
        return (span, String::new(), message);
    }
    let mut message = plain(err);
    if let Some(hint) = syntax_indent_hint(text, span, retry) {
        message += &hint;
    }
    (span, String::new(), message)
}

/// Tries the columns of the keys above (nearest first, a few); of those that make the file
/// parse, the one the caller's type loads furthest with wins.
fn syntax_indent_hint(text: &str, span: Span, retry: Retry) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    // The error is reported at the offending key, or at the end of the line before it.
    for line in [span.line, span.line + 1] {
        let Some(col) = lines.get(line.checked_sub(1)?).and_then(|l| key_column(l)) else {
            continue;
        };
        let here = Span { line, column: col };
        let mut tried = Vec::new();
        // (how far the typed load got, column, line of the key above)
        let mut best: Option<((usize, usize), usize, usize)> = None;
        for (n, above) in lines[..line - 1].iter().enumerate().rev() {
            let Some(c) = key_column(above) else { continue };
            if c == col || tried.contains(&c) {
                continue;
            }
            tried.push(c);
            let Some(moved) = reindent(text, here, c) else {
                continue;
            };
            let parses = match super::parse::<At<Node>>(&moved) {
                Ok(_) => true,
                Err(e) => span_of(e.without_snippet()).line > line,
            };
            if parses {
                let reach = match retry(&moved) {
                    Ok(()) => (usize::MAX, 0),
                    Err(e) => {
                        let s = span_of(e.without_snippet());
                        (s.line, s.column)
                    }
                };
                if best.is_none_or(|(r, _, _)| reach > r) {
                    best = Some((reach, c, n + 1));
                }
            }
            if tried.len() >= 4 {
                break;
            }
        }
        if let Some((_, c, above)) = best {
            let key = lines[above - 1].trim_start().trim_start_matches("- ");
            let key = key.split(':').next().unwrap_or("").trim();
            return Some(format!(
                "; indent line {line} to column {c}, like {key:?} on line {above}"
            ));
        }
    }
    None
}

/// The column of the key a block-mapping line starts with (after any `- `), if it does.
fn key_column(line: &str) -> Option<usize> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    let rest = &line[indent..];
    let (dash, rest) = match rest.strip_prefix("- ") {
        Some(r) => {
            let r2 = r.trim_start_matches(' ');
            (2 + r.len() - r2.len(), r2)
        }
        None => (0, rest),
    };
    let key = rest.split(':').next()?;
    let ok = !key.is_empty()
        && rest.len() > key.len()
        && !key.starts_with(['#', '{', '[', '"', '\''])
        && !key.contains(' ');
    ok.then_some(indent + dash + 1)
}

/// The text with the key at `at` (which must start its line) and the lines of its block
/// below it moved to `column`.
fn reindent(text: &str, at: Span, column: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let first = *lines.get(at.line.checked_sub(1)?)?;
    let indent = first.len() - first.trim_start_matches(' ').len();
    if indent + 1 != at.column || column == 0 {
        return None;
    }
    let (from, to) = (indent, column - 1);
    let mut out = String::with_capacity(text.len() + 64);
    let mut in_block = false;
    for (i, l) in lines.iter().enumerate() {
        let li = l.len() - l.trim_start_matches(' ').len();
        if i + 1 == at.line {
            in_block = true;
        } else if in_block && !l.trim().is_empty() && li <= from {
            in_block = false;
        }
        if in_block && !l.trim().is_empty() {
            let new = (li + to).checked_sub(from)?;
            out.extend(std::iter::repeat_n(' ', new));
            out.push_str(&l[li..]);
        } else {
            out.push_str(l);
        }
        out.push('\n');
    }
    Some(out)
}
