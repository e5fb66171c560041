//! Sending to a server that may be down: one HTTP client setup, what an answer means
//! (delivered, worth retrying, refused for good), quick retries, and the backoff that keeps
//! a down server from being hammered. The event sink and the postback forwarder share it.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// Longest pause between attempts while the server is down.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// Why a request was not delivered.
#[derive(Debug)]
pub enum Failure {
    /// Worth trying again: network errors, timeouts, 5xx, 408, 429.
    Transient(String),
    /// The server refuses this request (other 4xx): retrying would never help.
    Permanent(String),
}

/// An agent that reports every HTTP status as an answer, with `timeout` for the whole
/// request and at most 2 s to connect.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .timeout_connect(Some(timeout.min(Duration::from_secs(2))))
        .http_status_as_error(false)
        .build()
        .into()
}

/// What an answer (or its absence) means for delivery.
pub fn judge(result: Result<http::Response<ureq::Body>, ureq::Error>) -> Result<(), Failure> {
    match result {
        Ok(resp) => {
            let status = resp.status().as_u16();
            match status {
                200..=299 => Ok(()),
                408 | 429 | 500..=599 => Err(Failure::Transient(format!("HTTP {status}"))),
                _ => {
                    let body = resp.into_body().read_to_string().unwrap_or_default();
                    let body: String = body.trim().chars().take(200).collect();
                    Err(Failure::Permanent(format!("HTTP {status}: {body}")))
                }
            }
        }
        Err(e) => Err(Failure::Transient(e.to_string())),
    }
}

/// Whether a server is taken as down, and when to try it again: doubling pauses with ±25%
/// jitter, so many flowgates do not retry in step.
pub struct Backoff {
    down_until: Option<Instant>,
    pause: Duration,
    jitter: Cell<u64>,
}

impl Default for Backoff {
    fn default() -> Self {
        let mut seed = [0u8; 8];
        let _ = getrandom::getrandom(&mut seed);
        Backoff {
            down_until: None,
            pause: FIRST_BACKOFF,
            jitter: Cell::new(u64::from_le_bytes(seed) | 1),
        }
    }
}

impl Backoff {
    pub fn is_down(&self) -> bool {
        self.down_until.is_some()
    }

    /// Down, and not yet time to try again.
    pub fn waiting(&self, now: Instant) -> bool {
        self.down_until.is_some_and(|t| now < t)
    }

    /// Try again now (what a spool left by an earlier run needs).
    pub fn retry_now(&mut self) {
        self.down_until = Some(Instant::now());
    }

    /// A failed attempt: wait longer before the next. True when the server was up until now.
    pub fn failed(&mut self) -> bool {
        let first = self.down_until.is_none();
        let wait = self.jittered(self.pause);
        self.down_until = Some(Instant::now() + wait);
        self.pause = (self.pause * 2).min(MAX_BACKOFF);
        first
    }

    /// It answered. True when it had been down.
    pub fn answered(&mut self) -> bool {
        self.pause = FIRST_BACKOFF;
        self.down_until.take().is_some()
    }

    /// `d` ± 25%.
    pub fn jittered(&self, d: Duration) -> Duration {
        let mut j = self.jitter.get();
        j ^= j << 13;
        j ^= j >> 7;
        j ^= j << 17;
        self.jitter.set(j);
        let spread = d.as_millis() as u64 / 2;
        let offset = if spread == 0 { 0 } else { j % spread };
        d - d / 4 + Duration::from_millis(offset)
    }

    /// A few quick attempts while each fails fast; a server that is down is not waited for.
    pub fn with_retries(
        &self,
        retries: u32,
        mut attempt: impl FnMut() -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let mut pause = Duration::from_millis(50);
        let mut n = 0;
        loop {
            let started = Instant::now();
            match attempt() {
                Err(Failure::Transient(e))
                    if n < retries && started.elapsed() < Duration::from_millis(500) =>
                {
                    n += 1;
                    std::thread::sleep(self.jittered(pause));
                    pause *= 2;
                    log::debug!("attempt {n} failed ({e}), retrying");
                }
                other => return other,
            }
        }
    }
}
