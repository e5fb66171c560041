//! A connection after both sides switched protocols (a WebSocket): bytes are copied each way
//! until either side closes, no byte moves either way for `limits.tunnel_idle_timeout`, or
//! the drain closes it. It runs in the task that served the connection, after hyper let go of
//! it, so the connection keeps its admission place, its `flowgate_connections_open` count and
//! its count for the drain until the tunnel ends.

use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::conn::{ConnState, TICK};
use crate::lifecycle::InFlightCounter;

/// A switch of protocols both sides agreed to, waiting for hyper to hand over both
/// connections.
pub(super) struct Pending {
    pub(super) down: OnUpgrade,
    pub(super) up: OnUpgrade,
    pub(super) in_flight: InFlightCounter,
    pub(super) idle: Duration,
    /// `flowgate_bytes_total` in and out.
    pub(super) bytes: (prometheus::IntCounter, prometheus::IntCounter),
}

/// Copies until the tunnel ends; both connections close when it returns.
pub(super) async fn run(pending: Pending, conn: &ConnState) {
    let Pending {
        down,
        up,
        in_flight,
        idle,
        bytes,
    } = pending;
    let _counted = in_flight.tunnel();
    let before = conn.bytes();
    let copy = async move {
        let (Ok(down), Ok(up)) = (down.await, up.await) else {
            return log::debug!("an upgrade did not complete");
        };
        let (mut down, mut up) = (TokioIo::new(down), TokioIo::new(up));
        if let Err(e) = tokio::io::copy_bidirectional(&mut down, &mut up).await {
            log::debug!("upgraded connection: {e}");
        }
    };
    tokio::select! {
        () = copy => {}
        () = quiet_for(conn, idle) => log::debug!("tunnel closed: nothing moved for {idle:?}"),
        () = in_flight.tunnels_closing() => log::debug!("tunnel closed: the process drains"),
    }
    // Every byte of the tunnel passes the visitor's connection, whichever way it goes.
    let after = conn.bytes();
    bytes.0.inc_by(after.0.saturating_sub(before.0));
    bytes.1.inc_by(after.1.saturating_sub(before.1));
}

/// Returns once no byte has moved to or from the visitor for `limit` (at most a second more).
/// Every byte of the tunnel passes the visitor's connection, whose reads and writes `conn`
/// counts.
async fn quiet_for(conn: &ConnState, limit: Duration) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    let mut seen = conn.moved();
    let mut quiet = Duration::ZERO;
    // Bytes seen at a tick may have moved anywhere in the second before it, so the silence
    // is only sure to have lasted `limit` once one more tick passed.
    while quiet <= limit {
        interval.tick().await;
        let now = conn.moved();
        quiet = if now == seen {
            quiet + TICK
        } else {
            Duration::ZERO
        };
        seen = now;
    }
}
