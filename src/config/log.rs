//! `log:` in `flowgate.yaml`: how flowgate's own log lines look on stderr. Which lines are
//! written stays with `RUST_LOG` (default `info`).

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
}

/// One line per message either way; `json` is one object per line for log collectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `[2026-12-01T15:00:00Z INFO  flowgate::serve] message`, as env_logger writes it.
    #[default]
    Text,
    /// `{"ts":"2026-12-01T15:00:00.123Z","level":"INFO","target":"flowgate::serve","msg":"..."}`
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_is_text_or_json_and_nothing_else() {
        let json: LogConfig = crate::yaml::parse("format: json").unwrap();
        assert_eq!(json.format, LogFormat::Json);
        assert_eq!(LogConfig::default().format, LogFormat::Text);
        let wrong = crate::yaml::parse::<LogConfig>("format: xml").unwrap_err();
        assert!(wrong.to_string().contains("xml"), "{wrong}");
        assert!(crate::yaml::parse::<LogConfig>("colour: true").is_err());
    }
}
