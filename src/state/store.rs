//! Where clicks, what `unique` knows of visitors, and cap counts are kept. One trait, so the
//! embedded database and a shared store (Redis, for several nodes) are interchangeable behind
//! the state writer; only the writer, start-up and `events forget` talk to a store, never a
//! request.

use super::keys::Pseudonym;

/// One click as the store keeps it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredClick {
    pub click_id: String,
    pub ts_ms: u64,
    pub campaign: Option<String>,
    pub flow: Option<String>,
    pub route: String,
    /// The traffic source the click came from, once sources exist.
    pub source: Option<String>,
    /// The kept query parameters (`privacy.query_params`), as a JSON object.
    pub query: String,
    /// The address and user agent's pseudonym, hex.
    pub visitor: String,
    /// The address's own key, hex: what `forget --ip` finds rows by.
    pub ip_key: String,
    pub unique: Option<bool>,
    /// The scopes (campaign, and flow) whose last-seen time this click moves.
    pub scopes: Vec<u64>,
}

/// A visitor's last click in one scope, as loaded into the in-memory index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRow {
    pub visitor: Pseudonym,
    pub scope: u64,
    pub seen_ms: u64,
}

/// Clicks a cap counted that the store has not been told of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountDelta {
    pub key: String,
    pub window: u32,
    pub add: u32,
}

/// Who `forget` erases.
#[derive(Debug, Clone)]
pub enum Forget {
    /// Every row of these address keys (one per visitor key still kept).
    IpKeys(Vec<String>),
    ClickId(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forgotten {
    pub clicks: usize,
    pub visitors: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

pub trait Store: Send {
    /// Writes clicks, moves their visitors' last-seen times, and adds cap counts, all or
    /// nothing; returns each cap's total in the store afterwards, in the order given.
    fn write(
        &mut self,
        clicks: &[StoredClick],
        counts: &[CountDelta],
    ) -> Result<Vec<u32>, StoreError>;
    /// Last-seen times since `since_ms`, newest first, at most `limit`.
    fn seen_since(&mut self, since_ms: u64, limit: usize) -> Result<Vec<SeenRow>, StoreError>;
    /// Every cap's latest window: `(key, window, count)`.
    fn caps(&mut self) -> Result<Vec<(String, u32, u32)>, StoreError>;
    /// Deletes clicks and last-seen times older than `before_ms`; returns the clicks deleted.
    fn purge(&mut self, before_ms: u64) -> Result<usize, StoreError>;
    fn forget(&mut self, who: &Forget) -> Result<Forgotten, StoreError>;
}
