//! Logging: env_logger (`RUST_LOG`, default `info`) writing text or JSON lines (`log.format`,
//! switchable while running), minus visitor data above debug and minus pingora lines that
//! cry wolf at error level.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use log::{Level, Log, Metadata, Record};

use crate::config::LogFormat;

/// The format every line is written in from now on: `run` applies `log.format` at start, a
/// reload applies it again.
pub fn set_format(format: LogFormat) {
    JSON.store(format == LogFormat::Json, Ordering::Relaxed);
}

static JSON: AtomicBool = AtomicBool::new(false);

/// Lines from `target` whose message starts with `prefix`, and the level they belong at.
/// pingora logs a TLS handshake failure at error level with the client's address (a scanner
/// would fill the log, and an address is visitor data), and `run --upgrade` waiting its first
/// second for the old process's sockets as an error, though that is how every upgrade begins.
const DEMOTED: [(&str, &str, Level); 2] = [
    (
        "pingora_core::services::listening",
        "Downstream handshake error from",
        Level::Debug,
    ),
    (
        "pingora_core::server::transfer_fd",
        "No incoming socket transfer",
        Level::Debug,
    ),
];

fn demoted(record: &Record) -> Option<Level> {
    if record.level() >= Level::Debug {
        return None;
    }
    let (target, message) = (record.target(), record.args().to_string());
    DEMOTED
        .iter()
        .find(|(t, prefix, _)| target == *t && message.starts_with(prefix))
        .map(|(_, _, level)| *level)
}

struct Filtered {
    inner: env_logger::Logger,
}

impl Log for Filtered {
    fn enabled(&self, m: &Metadata) -> bool {
        self.inner.enabled(m)
    }

    fn log(&self, record: &Record) {
        match demoted(record) {
            None => self.inner.log(record),
            Some(level) => {
                let lowered = Record::builder()
                    .args(*record.args())
                    .level(level)
                    .target(record.target())
                    .module_path(record.module_path())
                    .file(record.file())
                    .line(record.line())
                    .build();
                // `inner` applies RUST_LOG to the lowered level.
                if self.inner.matches(&lowered) {
                    self.inner.log(&lowered);
                }
            }
        }
    }

    fn flush(&self) {
        self.inner.flush()
    }
}

fn write_line(buf: &mut env_logger::fmt::Formatter, record: &Record) -> std::io::Result<()> {
    if JSON.load(Ordering::Relaxed) {
        let line = json_line(
            &buf.timestamp_millis().to_string(),
            record.level(),
            record.target(),
            &record.args().to_string(),
        );
        writeln!(buf, "{line}")
    } else {
        let style = buf.default_level_style(record.level());
        writeln!(
            buf,
            "[{} {style}{:<5}{style:#} {}] {}",
            buf.timestamp(),
            record.level(),
            record.target(),
            record.args()
        )
    }
}

/// One JSON object: `ts`, `level`, `target`, `msg` in that order, each an escaped string.
fn json_line(ts: &str, level: Level, target: &str, msg: &str) -> String {
    let s = |v: &str| serde_json::Value::from(v).to_string();
    format!(
        "{{\"ts\":{},\"level\":{},\"target\":{},\"msg\":{}}}",
        s(ts),
        s(level.as_str()),
        s(target),
        s(msg)
    )
}

pub fn init() {
    let inner = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format(write_line)
        .build();
    let max = inner.filter();
    if log::set_boxed_logger(Box::new(Filtered { inner })).is_ok() {
        log::set_max_level(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_level(target: &str, line: std::fmt::Arguments) -> Option<Level> {
        let record = Record::builder()
            .args(line)
            .level(Level::Error)
            .target(target)
            .build();
        demoted(&record)
    }

    #[test]
    fn handshake_errors_with_addresses_are_not_above_debug() {
        let line =
            format_args!("Downstream handshake error from 203.0.113.7:5555: TLSHandshakeFailure");
        let level = record_level("pingora_core::services::listening", line);
        assert_eq!(level, Some(Level::Debug));
    }

    #[test]
    fn an_upgrade_waiting_for_the_sockets_is_not_an_error() {
        let line = format_args!("No incoming socket transfer, sleep 1s and try again");
        let level = record_level("pingora_core::server::transfer_fd", line);
        assert_eq!(level, Some(Level::Debug));
        let other = format_args!("Error accepting socket transfer: EBADF");
        assert_eq!(
            record_level("pingora_core::server::transfer_fd", other),
            None
        );
    }

    #[test]
    fn a_json_line_is_one_escaped_object() {
        let msg = "reload: rules/a.yaml:3:7: \"to\" unknown\n\tsecond line \u{1}";
        let line = json_line(
            "2026-12-01T15:00:00.123Z",
            Level::Warn,
            "flowgate::reload",
            msg,
        );
        assert!(!line.contains('\n'), "{line}");
        assert!(line.starts_with("{\"ts\":"), "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ts"], "2026-12-01T15:00:00.123Z");
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["target"], "flowgate::reload");
        assert_eq!(v["msg"], msg);
    }
}
