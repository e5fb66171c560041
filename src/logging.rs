//! Logging: env_logger (`RUST_LOG`, default `info`), minus visitor data above debug. pingora
//! logs TLS handshake failures at error level with the client's address; those lines are
//! kept for debug only (a scanner would otherwise also fill the log).

use log::{Level, Log, Metadata, Record};

struct Private {
    inner: env_logger::Logger,
}

/// Lines from `target` whose message starts with `prefix` name a visitor.
const VISITOR_LINES: [(&str, &str); 1] = [(
    "pingora_core::services::listening",
    "Downstream handshake error from",
)];

impl Log for Private {
    fn enabled(&self, m: &Metadata) -> bool {
        self.inner.enabled(m)
    }

    fn log(&self, record: &Record) {
        if record.level() < Level::Debug {
            let names_visitor = VISITOR_LINES.iter().any(|(target, prefix)| {
                record.target() == *target && record.args().to_string().starts_with(prefix)
            });
            if names_visitor {
                if log::max_level() >= Level::Debug {
                    let demoted = Record::builder()
                        .args(*record.args())
                        .level(Level::Debug)
                        .target(record.target())
                        .build();
                    self.inner.log(&demoted);
                }
                return;
            }
        }
        self.inner.log(record);
    }

    fn flush(&self) {
        self.inner.flush()
    }
}

pub fn init() {
    let inner =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).build();
    let max = inner.filter();
    if log::set_boxed_logger(Box::new(Private { inner })).is_ok() {
        log::set_max_level(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_errors_with_addresses_are_not_above_debug() {
        let line =
            format_args!("Downstream handshake error from 203.0.113.7:5555: TLSHandshakeFailure");
        let record = Record::builder()
            .args(line)
            .level(Level::Error)
            .target("pingora_core::services::listening")
            .build();
        let names = VISITOR_LINES
            .iter()
            .any(|(t, p)| record.target() == *t && record.args().to_string().starts_with(p));
        assert!(names);
    }
}
