//! The request path's client of the shared store: a visitor's last clicks for `unique`, and a
//! cap's click taken atomically in Redis, each within a deadline of a few milliseconds.
//!
//! The calls run on a runtime of their own (one thread), so the connection and its reconnects
//! never depend on the runtime that serves requests. A call that fails or misses its deadline
//! answers `None`: the caller falls back to what this process knows, and counts the error.
//! After a failure the store is left alone for a moment, so while Redis is down requests do
//! not each wait a deadline for it; then the next request tries again (and the connection
//! manager connects again by itself).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::AsyncCommands;

use super::shared_store::{cap_key, seen_key};

/// How long the store is left alone after a failed call.
const REST: Duration = Duration::from_millis(500);

/// Takes one click of a cap if it has room: `{1, count after}`, or `{0, count}` when full.
const CLAIM: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return {0, n} end
n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, n}
";

pub struct SharedLive {
    /// Always `Some` until dropped: taken then, to shut down without blocking.
    rt: Option<tokio::runtime::Runtime>,
    conn: ConnectionManager,
    claim: Arc<redis::Script>,
    deadline: Duration,
    retention_ms: u64,
    /// Until when (ms since the epoch) calls are not tried.
    resting_until: AtomicU64,
}

/// What Redis said of a cap's click.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    Taken(u32),
    Full(u32),
}

impl SharedLive {
    pub fn connect(
        url: &str,
        deadline: Duration,
        retention: Duration,
    ) -> Result<SharedLive, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("flowgate-redis")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start its runtime: {e}"))?;
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(200));
        let claim = redis::Script::new(CLAIM);
        let conn = rt
            .block_on(async {
                let mut c = ConnectionManager::new_with_config(client, config).await?;
                // Loaded now, so the first claim is one round trip, not two.
                claim.prepare_invoke().load_async(&mut c).await?;
                Ok::<_, redis::RedisError>(c)
            })
            .map_err(|e| e.to_string())?;
        Ok(SharedLive {
            rt: Some(rt),
            conn,
            claim: Arc::new(claim),
            deadline,
            retention_ms: retention.as_millis() as u64,
            resting_until: AtomicU64::new(0),
        })
    }

    /// Runs `f` on the store's runtime within the deadline; `None` if it failed, missed the
    /// deadline, or the store is resting after a failure.
    async fn call<T, F>(&self, f: impl FnOnce(ConnectionManager) -> F) -> Option<T>
    where
        T: Send + 'static,
        F: Future<Output = redis::RedisResult<T>> + Send + 'static,
    {
        let now = crate::time::now_ms();
        if now < self.resting_until.load(Ordering::Relaxed) {
            return None;
        }
        let fut = f(self.conn.clone());
        let deadline = self.deadline;
        let rt = self.rt.as_ref()?;
        let task = rt.spawn(async move { tokio::time::timeout(deadline, fut).await });
        let answer = match task.await {
            Ok(Ok(Ok(v))) => Some(v),
            Ok(Ok(Err(e))) => {
                log::debug!("state: redis: {e}");
                None
            }
            Ok(Err(_)) => {
                log::debug!("state: redis: no answer within {deadline:?}");
                None
            }
            Err(_) => None,
        };
        if answer.is_none() {
            let until = crate::time::now_ms() + REST.as_millis() as u64;
            self.resting_until.store(until, Ordering::Relaxed);
        }
        answer
    }

    /// The visitor's last click in each scope it was seen in: `(scope, ms)`.
    pub async fn seen(&self, visitor: &str) -> Option<Vec<(u64, u64)>> {
        let key = seen_key(visitor);
        let all: Vec<(String, u64)> = self
            .call(move |mut c| async move { c.hgetall(key).await })
            .await?;
        Some(
            all.into_iter()
                .filter_map(|(s, ms)| Some((s.parse().ok()?, ms)))
                .collect(),
        )
    }

    /// Takes one click of cap `cap` in `window` if fewer than `limit` were taken.
    pub async fn claim(&self, cap: &str, window: u32, limit: u32) -> Option<Claim> {
        let key = cap_key(cap, window);
        let script = self.claim.clone();
        let keep = self.retention_ms;
        let (taken, n): (u8, i64) = self
            .call(move |mut c| async move {
                let mut inv = script.key(key);
                inv.arg(limit).arg(keep);
                inv.invoke_async(&mut c).await
            })
            .await?;
        let n = n.clamp(0, i64::from(u32::MAX)) as u32;
        Some(if taken == 1 {
            Claim::Taken(n)
        } else {
            Claim::Full(n)
        })
    }
}

impl Drop for SharedLive {
    /// The state may be dropped on a runtime's thread, where blocking on a shutdown panics.
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
