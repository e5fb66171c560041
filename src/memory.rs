//! Memory that a burst of visitor connections leaves behind. glibc's malloc keeps what they
//! freed (mostly read buffers, up to twice `limits.max_header_bytes` each for a header sent
//! half) in its arenas instead of giving it back: 300 half-sent 60 KiB headers left about
//! 30 MB resident after they closed (`benches/peer/halfsent.py`). So once the open
//! connections have fallen a burst below their peak, a thread of its own asks malloc to
//! return its free pages. Never on the request path, and never for steady churn, whose memory
//! the next connections reuse.

use std::time::{Duration, Instant};

use crate::lifecycle::InFlightCounter;

/// Connections closed, net, that make a trim worth its page faults.
const BURST: usize = 64;
const TICK: Duration = Duration::from_secs(1);

/// Starts the thread that trims after each burst, for the life of the process.
pub fn trim_after_bursts(in_flight: InFlightCounter) {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("flowgate-trim".into())
        .spawn(move || loop {
            std::thread::sleep(TICK);
            let open = in_flight.connections();
            let peak = in_flight.peak();
            if peak >= open + BURST {
                in_flight.reset_peak(open);
                let started = Instant::now();
                trim();
                log::debug!(
                    "{} connections closed: free memory returned in {:?}",
                    peak - open,
                    started.elapsed()
                );
            }
        });
    if let Err(e) = spawned {
        log::warn!("cannot start the memory trimmer ({e}); freed buffers stay with malloc");
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only releases free pages of malloc's own arenas; it takes their
    // locks itself and has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
