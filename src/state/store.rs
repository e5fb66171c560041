//! Where clicks, what `unique` knows of visitors, and cap counts are kept. One trait, so the
//! embedded database and a shared store (Redis, for several nodes) are interchangeable behind
//! the state writer. The writer, start-up and `events forget` each have a store of their own;
//! a request never calls one on its own task: click lookups and conversions go through
//! `State`, which asks a store on a blocking thread under a deadline.

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
    /// What the source's `params` took from the click URL, as a JSON object (`{}` without
    /// a source).
    pub source_params: String,
    /// The address and user agent's pseudonym, hex.
    pub visitor: String,
    /// The address's own key, hex: what `forget --ip` finds rows by.
    pub ip_key: String,
    pub unique: Option<bool>,
    /// The scopes (campaign, and flow) whose last-seen time this click moves. Written, not
    /// read back: a click found by id has none.
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
    /// The click whose `click_id` is `id` (hyphenated, lower case, as written), or `None`
    /// when the store has no such click: never written, purged past `state.retention`, or
    /// forgotten. Every field but `scopes` comes back as written (`scopes` is empty).
    ///
    /// Called on a store instance of its own, never the writer's, from a blocking thread
    /// with a caller waiting a few ms: one point read that never waits for the writer's
    /// batch (SQLite: a read in WAL mode; Redis: one GET/HGETALL). A click written by
    /// another process sharing the store is found. One still in the writer's batch is not:
    /// `State` answers for those from memory.
    fn click(&mut self, id: &str) -> Result<Option<StoredClick>, StoreError>;
    /// Records that the click `click_id` converted with `status` (`""` when the postback
    /// gave none): `true` the first time this pair is recorded, `false` for a repeat, which
    /// is counted once. Atomic across every process sharing the store: of two calls with
    /// the same pair, exactly one gets `true`. Kept, like clicks, for `state.retention`
    /// (`purge`), and erased with its click by `forget`. Same caller as `click`.
    fn converted(&mut self, click_id: &str, status: &str, ts_ms: u64) -> Result<bool, StoreError>;
}
