//! A YAML document as a plain tree of maps, lists and scalars, each with where it starts. Read
//! only when a file failed to load, to name the field the parser stopped at.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::At;
use crate::problem::Span;

#[derive(Debug)]
pub enum Node {
    Map(Vec<(At<String>, At<Node>)>),
    List(Vec<At<Node>>),
    /// Text as written (`Some` quoted in messages) or any other scalar (`None`: numbers,
    /// booleans, null), rendered as written.
    Scalar(String, bool),
}

impl Node {
    /// How a message shows what was found: `"abc"`, `99999`, `a map`, `a list`.
    pub fn found(&self) -> String {
        match self {
            Node::Map(_) => "a map".to_string(),
            Node::List(_) => "a list".to_string(),
            Node::Scalar(s, true) => format!("{s:?}"),
            Node::Scalar(s, false) => s.clone(),
        }
    }

    pub fn key(&self, name: &str) -> Option<&At<Node>> {
        match self {
            Node::Map(entries) => entries.iter().find(|(k, _)| k.value == name).map(|e| &e.1),
            _ => None,
        }
    }

    fn scalar(&self) -> Option<&str> {
        match self {
            Node::Scalar(s, _) => Some(s),
            _ => None,
        }
    }
}

/// What stands at a place in the document.
pub struct Place<'a> {
    /// Dotted path: `routes.shop.redirect.status`, `campaigns[spring].flows[geo]`.
    pub field: String,
    /// The value there, or the map whose key is there (`key` set).
    pub node: &'a At<Node>,
    /// The key the place is at, when it is a key rather than a value.
    pub key: Option<&'a At<String>>,
    /// The maps and lists around `node`, outermost first.
    pub ancestors: Vec<&'a At<Node>>,
}

impl Place<'_> {
    /// From a key to its value: a value's error the parser located at its key.
    pub fn enter_key(&mut self) {
        let Some(k) = self.key.take() else { return };
        if let Some(v) = self.node.key(&k.value) {
            self.ancestors.push(self.node);
            self.field = join(&self.field, &k.value);
            self.node = v;
        }
    }
}

/// The innermost node at or before `at`: the value or key the parser stopped on.
pub fn place(root: &At<Node>, at: Span) -> Place<'_> {
    let mut here = Place {
        field: String::new(),
        node: root,
        key: None,
        ancestors: Vec::new(),
    };
    loop {
        if before_or_at(at, here.node.span) {
            return here;
        }
        let next = match &here.node.value {
            Node::Map(entries) => {
                let Some((k, v)) = entries.iter().rev().find(|(k, _)| before_or_at(k.span, at))
                else {
                    return here;
                };
                if k.span == at || !before_or_at(v.span, at) {
                    here.key = Some(k);
                    return here;
                }
                let field = join(&here.field, &k.value);
                (field, v)
            }
            Node::List(items) => {
                let Some((i, v)) = items
                    .iter()
                    .enumerate()
                    .rev()
                    .find(|(_, v)| before_or_at(v.span, at))
                else {
                    return here;
                };
                (format!("{}[{}]", here.field, item_name(i, v)), v)
            }
            Node::Scalar(..) => return here,
        };
        here.ancestors.push(here.node);
        here.field = next.0;
        here.node = next.1;
        if matches!(here.node.value, Node::Scalar(..)) {
            return here;
        }
    }
}

/// `field.key`, or `key` at the top.
pub fn join(field: &str, key: &str) -> String {
    if field.is_empty() {
        key.to_string()
    } else {
        format!("{field}.{key}")
    }
}

/// A list item by its `id` or `name` where it has one, as rule problems name campaigns and
/// flows; else by its index.
fn item_name(i: usize, item: &At<Node>) -> String {
    ["id", "name"]
        .iter()
        .find_map(|k| item.key(k).and_then(|v| v.scalar()).map(str::to_string))
        .unwrap_or_else(|| i.to_string())
}

fn before_or_at(a: Span, b: Span) -> bool {
    (a.line, a.column) <= (b.line, b.column)
}

/// Every key named `name` in the document, in the order written.
pub fn keys_named<'a>(root: &'a At<Node>, name: &str, out: &mut Vec<&'a At<String>>) {
    match &root.value {
        Node::Map(entries) => {
            for (k, v) in entries {
                if k.value == name {
                    out.push(k);
                }
                keys_named(v, name, out);
            }
        }
        Node::List(items) => items.iter().for_each(|i| keys_named(i, name, out)),
        Node::Scalar(..) => {}
    }
}

/// A map key: text, or any scalar read as its text.
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarText).map(|(s, _)| Key(s))
    }
}

struct ScalarText;

impl Visitor<'_> for ScalarText {
    type Value = (String, bool);
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a scalar")
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok((v.to_string(), true))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok((v.to_string(), false))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok((v.to_string(), false))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok((v.to_string(), false))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok((v.to_string(), false))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(("null".to_string(), false))
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(("null".to_string(), false))
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = m.next_entry::<At<Key>, At<Node>>()? {
                    let key = At {
                        value: k.value.0,
                        span: k.span,
                    };
                    entries.push((key, v));
                }
                Ok(Node::Map(entries))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(x) = s.next_element()? {
                    items.push(x);
                }
                Ok(Node::List(items))
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string(), true))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string(), false))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string(), false))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string(), false))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Scalar(v.to_string(), false))
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Scalar("null".to_string(), false))
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Scalar("null".to_string(), false))
            }
        }
        d.deserialize_any(V)
    }
}
