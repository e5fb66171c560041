//! The shared store: Redis (or Valkey), for several flowgate nodes. The state writer, start-up
//! and `events forget` use it through `Store`, on a plain connection that is made again after
//! any error; the request path has its own client (`shared_live`).
//!
//! Keys, all under `fg:`:
//! * `fg:keys` (hash): `cookie`, `visitor:{day}` — the state's secrets, each made once with
//!   HSETNX, so nodes racing at start agree on one.
//! * `fg:click:{id}`: the click as JSON, expiring when its retention ends.
//! * `fg:seen:{visitor}` (hash): scope → last click (ms), expiring a retention after the last.
//! * `fg:ipk:{ip_key}` (sorted set, by time): `c:{click id}` and `v:{visitor}`, what
//!   `forget --ip` erases.
//! * `fg:conv:{click id}` (set): the conversion statuses recorded for the click.
//! * `fg:cap:{cap}@{window}`: a cap's count in one window.

use std::time::Duration;

use redis::{Commands, Connection, RedisResult};

use super::keys::{unhex, Keys};
use super::store::{CountDelta, Forget, Forgotten, SeenRow, Store, StoreError, StoredClick};

pub const KEYS: &str = "fg:keys";

pub fn click_key(id: &str) -> String {
    format!("fg:click:{id}")
}

pub fn seen_key(visitor: &str) -> String {
    format!("fg:seen:{visitor}")
}

fn conv_key(id: &str) -> String {
    format!("fg:conv:{id}")
}

fn ip_key(ip_key: &str) -> String {
    format!("fg:ipk:{ip_key}")
}

pub fn cap_key(cap: &str, window: u32) -> String {
    format!("fg:cap:{cap}@{window}")
}

/// How long one command may take from the writer or the command line before it is an error.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

pub struct RedisStore {
    client: redis::Client,
    conn: Option<Connection>,
    retention: Duration,
}

fn err(e: redis::RedisError) -> StoreError {
    StoreError(format!("redis: {e}"))
}

impl RedisStore {
    /// Connects once, so a wrong address or a Redis that is down fails at start.
    pub fn open(url: &str, retention: Duration) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url).map_err(err)?;
        let mut s = RedisStore {
            client,
            conn: None,
            retention,
        };
        s.conn()
            .map_err(|e| StoreError(format!("cannot connect: {e}")))?;
        Ok(s)
    }

    fn conn(&mut self) -> Result<&mut Connection, StoreError> {
        if self.conn.is_none() {
            let c = self
                .client
                .get_connection_with_timeout(IO_TIMEOUT)
                .map_err(err)?;
            c.set_read_timeout(Some(IO_TIMEOUT)).map_err(err)?;
            c.set_write_timeout(Some(IO_TIMEOUT)).map_err(err)?;
            self.conn = Some(c);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| StoreError("redis: no connection".into()))
    }

    /// Runs `f` on the connection; any error drops it, so the next call connects again.
    fn with<T>(
        &mut self,
        f: impl FnOnce(&mut Connection) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        let r = f(self.conn()?);
        if r.is_err() {
            self.conn = None;
        }
        r.map_err(err)
    }

    fn retention_ms(&self) -> u64 {
        self.retention.as_millis() as u64
    }

    /// The state's secrets as every node sees them: made once (HSETNX), a new visitor key
    /// after each retention, the previous one kept another retention for `forget`.
    pub fn keys(&mut self) -> Result<Keys, StoreError> {
        let today = crate::time::now_ms() / 86_400_000;
        let days = (self.retention.as_secs() / 86_400).max(1);
        let random = || -> Result<[u8; 32], StoreError> {
            let mut k = [0u8; 32];
            getrandom::getrandom(&mut k).map_err(|e| StoreError(e.to_string()))?;
            Ok(k)
        };
        let cookie = random()?;
        let _: bool = self.with(|c| c.hset_nx(KEYS, "cookie", &cookie[..]))?;
        let newest = self.visitor_keys()?.first().map(|(d, _)| *d);
        if newest.is_none_or(|made| today.saturating_sub(made) >= days) {
            let k = random()?;
            let field = format!("visitor:{today}");
            let _: bool = self.with(|c| c.hset_nx(KEYS, &field, &k[..]))?;
        }
        let all: Vec<(String, Vec<u8>)> = self.with(|c| c.hgetall(KEYS))?;
        let cookie = all
            .iter()
            .find(|(f, _)| f == "cookie")
            .and_then(|(_, v)| <[u8; 32]>::try_from(v.as_slice()).ok())
            .ok_or_else(|| StoreError(format!("redis: {KEYS} has no 32-byte cookie key")))?;
        let mut visitor = Vec::new();
        for (made, key) in self.visitor_keys()? {
            // Rows under a key this old have expired: nothing is left for it to find.
            if today.saturating_sub(made) >= 2 * days && !visitor.is_empty() {
                let field = format!("visitor:{made}");
                let _: i64 = self.with(|c| c.hdel(KEYS, &field))?;
                continue;
            }
            visitor.push(key);
        }
        if visitor.is_empty() {
            return Err(StoreError(format!("redis: {KEYS} has no visitor key")));
        }
        Ok(Keys::from_bytes(&cookie, &visitor))
    }

    /// `(day made, key)` of every visitor key, newest first.
    fn visitor_keys(&mut self) -> Result<Vec<(u64, [u8; 32])>, StoreError> {
        let all: Vec<(String, Vec<u8>)> = self.with(|c| c.hgetall(KEYS))?;
        let mut keys: Vec<(u64, [u8; 32])> = all
            .into_iter()
            .filter_map(|(f, v)| {
                let day = f.strip_prefix("visitor:")?.parse().ok()?;
                Some((day, <[u8; 32]>::try_from(v.as_slice()).ok()?))
            })
            .collect();
        keys.sort_by_key(|k| std::cmp::Reverse(k.0));
        Ok(keys)
    }
}

impl Store for RedisStore {
    fn write(
        &mut self,
        clicks: &[StoredClick],
        counts: &[CountDelta],
    ) -> Result<Vec<u32>, StoreError> {
        let now = crate::time::now_ms();
        let keep = self.retention_ms();
        let mut p = redis::pipe();
        p.atomic();
        for c in clicks {
            let left = keep.saturating_sub(now.saturating_sub(c.ts_ms)).max(1);
            let json = serde_json::to_string(c).map_err(|e| StoreError(e.to_string()))?;
            p.pset_ex(click_key(&c.click_id), json, left).ignore();
            let seen = seen_key(&c.visitor);
            for s in &c.scopes {
                p.hset(&seen, s.to_string(), c.ts_ms).ignore();
            }
            p.pexpire(&seen, keep as i64).ignore();
            // Scored by time, so what is past the retention leaves a busy address's set.
            let ipk = ip_key(&c.ip_key);
            p.zadd(&ipk, format!("c:{}", c.click_id), c.ts_ms).ignore();
            p.zadd(&ipk, format!("v:{}", c.visitor), c.ts_ms).ignore();
            p.zrembyscore(&ipk, "-inf", now.saturating_sub(keep))
                .ignore();
            p.pexpire(&ipk, keep as i64).ignore();
        }
        for d in counts {
            let k = cap_key(&d.key, d.window);
            p.incr(&k, d.add);
            p.pexpire(&k, keep as i64).ignore();
        }
        let totals: Vec<i64> = self.with(|c| p.query(c))?;
        Ok(totals
            .into_iter()
            .map(|t| t.clamp(0, i64::from(u32::MAX)) as u32)
            .collect())
    }

    /// Nothing is loaded: the request path asks Redis for a visitor's last clicks itself.
    fn seen_since(&mut self, _since_ms: u64, _limit: usize) -> Result<Vec<SeenRow>, StoreError> {
        Ok(Vec::new())
    }

    fn caps(&mut self) -> Result<Vec<(String, u32, u32)>, StoreError> {
        let keys: Vec<String> = self.with(|c| {
            let iter: redis::Iter<String> = c.scan_match("fg:cap:*")?;
            iter.collect()
        })?;
        let mut latest: std::collections::HashMap<String, (u32, String)> = Default::default();
        for k in keys {
            let Some((cap, window)) = k
                .strip_prefix("fg:cap:")
                .and_then(|r| r.rsplit_once('@'))
                .and_then(|(cap, w)| Some((cap.to_string(), w.parse::<u32>().ok()?)))
            else {
                continue;
            };
            let e = latest.entry(cap).or_insert((window, k.clone()));
            if window >= e.0 {
                *e = (window, k);
            }
        }
        let mut out = Vec::with_capacity(latest.len());
        for (cap, (window, key)) in latest {
            let n: Option<u32> = self.with(|c| c.get(&key))?;
            out.push((cap, window, n.unwrap_or(0)));
        }
        Ok(out)
    }

    fn click(&mut self, id: &str) -> Result<Option<StoredClick>, StoreError> {
        let json: Option<String> = self.with(|c| c.get(click_key(id)))?;
        let Some(json) = json else { return Ok(None) };
        let click: StoredClick = serde_json::from_str(&json)
            .map_err(|e| StoreError(format!("redis: {}: {e}", click_key(id))))?;
        // As every store answers: scopes are written, never read back.
        Ok(Some(StoredClick {
            scopes: Vec::new(),
            ..click
        }))
    }

    /// SADD answers 1 to exactly one of two nodes adding the same status.
    fn converted(&mut self, click_id: &str, status: &str, _ts_ms: u64) -> Result<bool, StoreError> {
        let key = conv_key(click_id);
        let keep = self.retention_ms() as i64;
        let (added, _): (u32, bool) = self.with(|c| {
            redis::pipe()
                .atomic()
                .sadd(&key, status)
                .pexpire(&key, keep)
                .query(c)
        })?;
        Ok(added == 1)
    }

    /// Redis expires what is older than the retention by itself.
    fn purge(&mut self, _before_ms: u64) -> Result<usize, StoreError> {
        Ok(0)
    }

    fn forget(&mut self, who: &Forget) -> Result<Forgotten, StoreError> {
        let mut gone = Forgotten::default();
        match who {
            Forget::IpKeys(keys) => {
                for k in keys {
                    let set = ip_key(k);
                    let members: Vec<String> = self.with(|c| c.zrange(&set, 0, -1))?;
                    for m in &members {
                        if let Some(id) = m.strip_prefix("c:") {
                            let n: usize = self.with(|c| c.del(&[click_key(id), conv_key(id)]))?;
                            gone.clicks += usize::from(n > 0);
                        } else if let Some(v) = m.strip_prefix("v:") {
                            gone.visitors += self.forget_visitor(v)?;
                        }
                    }
                    let _: usize = self.with(|c| c.del(&set))?;
                }
            }
            Forget::ClickId(id) => {
                let json: Option<String> = self.with(|c| c.get(click_key(id)))?;
                if let Some(click) = json.and_then(|j| serde_json::from_str::<StoredClick>(&j).ok())
                {
                    let _: usize = self.with(|c| c.del(&[click_key(id), conv_key(id)]))?;
                    gone.clicks += 1;
                    gone.visitors += self.forget_visitor(&click.visitor)?;
                    let _: usize =
                        self.with(|c| c.zrem(ip_key(&click.ip_key), format!("c:{id}")))?;
                }
            }
        }
        Ok(gone)
    }
}

impl RedisStore {
    /// Erases a visitor's last-seen times; returns how many (visitor, scope) records went.
    fn forget_visitor(&mut self, visitor: &str) -> Result<usize, StoreError> {
        if unhex(visitor).is_none() {
            return Ok(0);
        }
        let key = seen_key(visitor);
        let n: usize = self.with(|c| c.hlen(&key))?;
        let _: usize = self.with(|c| c.del(&key))?;
        Ok(n)
    }
}
