//! What the rules ask of the state, in one of three ways: live (serving counts a cap's click
//! when its flow decides), shadow (shadow rules look at the live state, never count), and
//! assumed (rule tests and `explain` never touch live state: they say what it would answer).

use serde::Deserialize;

use std::sync::Arc;

use super::{CapCounter, Counted, Visit};

/// What a rule test (`state: { unique: true, clicks: 999 }`) or `explain` takes the store to
/// answer. Unsaid: a new visitor, and caps with nothing counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assumed {
    #[serde(default)]
    pub unique: Option<bool>,
    /// What every click cap has counted in its window.
    #[serde(default)]
    pub clicks: Option<u32>,
    /// What every conversion cap has counted in its window.
    #[serde(default)]
    pub conversions: Option<u32>,
}

impl Assumed {
    pub fn unique(&self) -> bool {
        self.unique.unwrap_or(true)
    }

    pub fn clicks(&self) -> u32 {
        self.clicks.unwrap_or(0)
    }

    pub fn conversions(&self) -> u32 {
        self.conversions.unwrap_or(0)
    }
}

/// A rule test's `state:`: what the store answers (`Assumed`), and for a request to a
/// campaign's `click_path`, which lander click the store finds (`click: { flow: fresh }`;
/// left out: an unknown click).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestState {
    #[serde(default)]
    pub unique: Option<bool>,
    #[serde(default)]
    pub clicks: Option<u32>,
    #[serde(default)]
    pub conversions: Option<u32>,
    #[serde(default)]
    pub click: Option<AssumedClick>,
}

/// The lander's click a click-through finds: served by `flow` of the request's campaign,
/// with these kept parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssumedClick {
    pub flow: String,
    #[serde(default)]
    pub params: std::collections::BTreeMap<String, String>,
}

impl TestState {
    pub fn assumed(&self) -> Assumed {
        Assumed {
            unique: self.unique,
            clicks: self.clicks,
            conversions: self.conversions,
        }
    }
}

#[derive(Clone, Copy)]
pub enum View<'a> {
    Assumed(Assumed),
    Live(&'a Visit<'a>),
    Shadow(&'a Visit<'a>),
}

impl Default for View<'_> {
    fn default() -> Self {
        View::Assumed(Assumed::default())
    }
}

impl std::fmt::Debug for View<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            View::Assumed(a) => write!(f, "Assumed({a:?})"),
            View::Live(_) => f.write_str("Live"),
            View::Shadow(_) => f.write_str("Shadow"),
        }
    }
}

impl<'a> View<'a> {
    /// The same visit, seen by shadow rules: they read, never count.
    pub fn shadowed(self) -> View<'a> {
        match self {
            View::Live(v) => View::Shadow(v),
            other => other,
        }
    }

    pub fn assumed(&self) -> Option<Assumed> {
        match self {
            View::Assumed(a) => Some(*a),
            _ => None,
        }
    }

    pub fn unique(&self, scope: u64, window_ms: u64) -> bool {
        match self {
            View::Assumed(a) => a.unique(),
            View::Live(v) | View::Shadow(v) => v.unique(scope, window_ms),
        }
    }

    /// Whether the cap still has room: `Ok(count with this click)` or `Err(count)`. Live, a
    /// click cap's click is taken (it counts toward the cap, exactly, as its flow decides;
    /// with a shared store, once the store confirmed it); a conversion cap is only read (its
    /// postbacks count).
    pub fn cap(&self, counter: &Arc<CapCounter>, limit: u32, what: Counted) -> Result<u32, u32> {
        match (self, what) {
            (View::Live(v), Counted::Clicks) => v.take_cap(counter, limit),
            _ => self.peek_cap(counter, limit, what),
        }
    }

    /// The same without counting anything: shadow rules and `explain`.
    pub fn peek_cap(&self, counter: &CapCounter, limit: u32, what: Counted) -> Result<u32, u32> {
        let count = match (self, what) {
            (View::Assumed(a), Counted::Clicks) => a.clicks(),
            (View::Assumed(a), Counted::Conversions) => a.conversions(),
            (View::Live(v) | View::Shadow(v), _) => counter.count(v.now_ms),
        };
        if count < limit {
            Ok(count + 1)
        } else {
            Err(count)
        }
    }
}
