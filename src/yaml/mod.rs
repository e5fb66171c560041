//! YAML parsing shared by the config and rule loaders, and `At<T>`: a value with the place
//! in the file it came from, so validation can point at the line.

mod explain;
mod tree;

use std::ops::Deref;
use std::path::Path;

use serde::{Deserialize, Deserializer};

use crate::problem::{Problems, Span};

/// Parses a file's text; when it does not load, the problem names the line, the field, what
/// was expected and, where it can, the fix.
pub fn load<T: serde::de::DeserializeOwned>(
    file: &Path,
    text: &str,
    problems: &mut Problems,
) -> Option<T> {
    match parse::<T>(text) {
        Ok(v) => Some(v),
        Err(e) => {
            let retry = |t: &str| parse::<T>(t).map(|_| ());
            let (span, field, message) = explain::explain(text, &e, &retry);
            problems.push(file, span, field, message);
            None
        }
    }
}

pub fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, serde_saphyr::Error> {
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        with_snippet: false,
    };
    serde_saphyr::from_str_with_options(text, options)
}

/// A deserialized value and where it was written.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct At<T> {
    pub value: T,
    pub span: Span,
}

impl<T> At<T> {
    /// A value no file wrote (a default).
    pub fn new(value: T) -> At<T> {
        At {
            value,
            span: Span::default(),
        }
    }
}

/// The value alone: where it was written is not part of it, so two configs that differ only
/// in line numbers print alike (what a reload compares, `Config::cold_changes`).
impl<T: std::fmt::Debug> std::fmt::Debug for At<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}

impl<T> Deref for At<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for At<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = serde_saphyr::Spanned::<T>::deserialize(d)?;
        Ok(At {
            span: Span {
                line: s.referenced.line() as usize,
                column: s.referenced.column() as usize,
            },
            value: s.value,
        })
    }
}

/// One item or a list of them: `country: US` and `country: [US, CA]` both read as a list.
#[derive(Debug, Clone, Default)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a value or a list of values")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(x) = seq.next_element()? {
                    out.push(x);
                }
                Ok(OneOrMany(out))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::deserialize(serde::de::value::StrDeserializer::<E>::new(v))
                    .map(|x| OneOrMany(vec![x]))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                T::deserialize(serde::de::value::U64Deserializer::<E>::new(v))
                    .map(|x| OneOrMany(vec![x]))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
                T::deserialize(serde::de::value::BoolDeserializer::<E>::new(v))
                    .map(|x| OneOrMany(vec![x]))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}
