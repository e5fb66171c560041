//! Finding a click by id for the async request path (a lander's click-through, a postback):
//! the clicks this process served recently answer from memory; anything older is one point
//! read of the store on a blocking thread, waited for no longer than a deadline, after which
//! the click is unknown. Conversions are recorded the same way, so a repeat counts once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::store::{Store, StoreError, StoredClick};
use super::{cookie, worker, State};

/// How long a visitor's request waits for the store to find a click.
pub const VISITOR_DEADLINE: Duration = Duration::from_millis(5);
/// How long a postback (a tracker's server, not a visitor) waits for the store.
pub const POSTBACK_DEADLINE: Duration = Duration::from_millis(500);

/// Stores that only lookups use, never the writer's: each blocking lookup takes one, and
/// when every one is busy the lookup fails at once instead of queueing behind a slow store.
pub(super) struct Readers {
    idle: Mutex<Vec<Box<dyn Store>>>,
}

impl Readers {
    pub fn new(stores: Vec<Box<dyn Store>>) -> Readers {
        Readers {
            idle: Mutex::new(stores),
        }
    }

    fn take(&self) -> Option<Box<dyn Store>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn put(&self, store: Box<dyn Store>) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(store);
    }
}

impl State {
    /// `Set-Cookie: fg_click=...` naming this click, for a lander's click-through.
    pub fn click_cookie(&self, id: uuid::Uuid) -> Option<http::HeaderValue> {
        let value = cookie::encode_click(id.as_u128(), self.keys.cookie());
        let header = format!("{}={value}{}", cookie::CLICK_NAME, self.cookie_attrs);
        http::HeaderValue::from_str(&header).ok()
    }

    /// The click the request's click cookie names, if flowgate signed it.
    pub fn cookie_click(&self, headers: &http::HeaderMap) -> Option<uuid::Uuid> {
        let value = cookie::find_named(headers, cookie::CLICK_NAME)?;
        cookie::decode_click(value, self.keys.cookie()).map(uuid::Uuid::from_u128)
    }

    /// The click `id` names: from memory when this process served it in the last seconds,
    /// else from the store within `deadline`. `None`: not a click id, no such click (or
    /// past retention, or forgotten), or the store did not answer in time (counted in
    /// `flowgate_state_errors_total`).
    pub async fn click(&self, id: &str, deadline: Duration) -> Option<StoredClick> {
        let uuid = uuid::Uuid::try_parse(id.trim()).ok()?;
        if let Some(c) = self.recent.get(uuid.as_u128()) {
            let visitor = c
                .visitor
                .unwrap_or_else(|| (self.keys).pseudonym(c.ip, c.ua.as_deref().unwrap_or("")));
            // As the store answers: scopes are written, never read back.
            let stored = worker::stored(&c, &visitor, &self.keys, &self.keep);
            return Some(StoredClick {
                scopes: Vec::new(),
                ..stored
            });
        }
        let mut buf = [0u8; 36];
        let id = uuid.hyphenated().encode_lower(&mut buf).to_string();
        self.ask(deadline, move |s| s.click(&id)).await.flatten()
    }

    /// Records that `click_id` converted with `status`: `Some(true)` the first time,
    /// `Some(false)` for a repeat; `None` when the store did not answer within `deadline`.
    pub async fn converted(
        &self,
        click_id: &str,
        status: &str,
        deadline: Duration,
    ) -> Option<bool> {
        let (id, status) = (click_id.to_string(), status.to_string());
        let now = crate::time::now_ms();
        self.ask(deadline, move |s| s.converted(&id, &status, now))
            .await
    }

    /// Runs `f` on an idle reader on a blocking thread, waiting at most `deadline`. A lookup
    /// that outlives its deadline finishes on its thread and gives its reader back then.
    async fn ask<T, F>(&self, deadline: Duration, f: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Store) -> Result<T, StoreError> + Send + 'static,
    {
        let readers = Arc::clone(&self.readers);
        let task = tokio::task::spawn_blocking(move || {
            let mut store = readers.take()?;
            let answer = f(store.as_mut());
            readers.put(store);
            Some(answer)
        });
        match tokio::time::timeout(deadline, task).await {
            Ok(Ok(Some(Ok(v)))) => return Some(v),
            Ok(Ok(Some(Err(e)))) => log::warn!("state: the store failed a lookup: {e}"),
            Ok(Err(e)) => log::warn!("state: a lookup failed: {e}"),
            // Slow or busy stores are counted, not logged: under load that would be a
            // line per request.
            Ok(Ok(None)) => log::debug!("state: every reader is busy"),
            Err(_) => log::debug!("state: no answer within {} ms", deadline.as_millis()),
        }
        self.errors.inc();
        None
    }
}
