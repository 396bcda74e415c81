//! Logging on stderr (results go to stdout). Level: --log-level, else -v count, else the
//! `AMT_AGENT_LOG` filter (e.g. `debug` or `amt_agent::heci=trace`), else warnings only.

use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;

static JSON_LOGS: AtomicBool = AtomicBool::new(false);

/// Whether stderr carries JSON log lines (then notes go through the logger, not plain text).
pub fn json_logs() -> bool {
    JSON_LOGS.load(Ordering::Relaxed)
}

/// A note for the user on stderr: plain text, or a log record when logs are JSON.
pub fn note(msg: &str) {
    if json_logs() {
        tracing::warn!("{msg}");
    } else {
        eprintln!("note: {msg}");
    }
}

use super::{Cli, LogFormat, LogLevel};

pub fn init(cli: &Cli) {
    let directive = match (cli.log_level, cli.verbose) {
        (Some(l), _) => level_name(l).to_string(),
        (None, 0) => std::env::var("AMT_AGENT_LOG").unwrap_or_else(|_| "warn".into()),
        (None, 1) => "info".into(),
        (None, 2) => "debug".into(),
        (None, _) => "trace".into(),
    };
    let filter = EnvFilter::try_new(capped(&directive)).unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    JSON_LOGS.store(cli.log_format == LogFormat::Json, Ordering::Relaxed);
    let _ = match cli.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The websocket library logs whole frames and handshake headers at debug and trace: the first
/// message (passwords) and the RPS token. It never logs below info, whatever the filter says.
fn capped(directive: &str) -> String {
    let cap = match directive.trim() {
        "error" => "error",
        "warn" | "" => "warn",
        _ => "info",
    };
    format!("{directive},tungstenite={cap},tokio_tungstenite={cap}")
}

fn level_name(l: LogLevel) -> &'static str {
    match l {
        LogLevel::Error => "error",
        LogLevel::Warn => "warn",
        LogLevel::Info => "info",
        LogLevel::Debug => "debug",
        LogLevel::Trace => "trace",
    }
}

#[cfg(test)]
mod tests {
    use super::capped;

    #[test]
    fn the_websocket_library_is_capped_at_info_whatever_the_level() {
        assert_eq!(
            capped("trace"),
            "trace,tungstenite=info,tokio_tungstenite=info"
        );
        assert_eq!(
            capped("warn"),
            "warn,tungstenite=warn,tokio_tungstenite=warn"
        );
        assert_eq!(
            capped("amt_agent::heci=trace"),
            "amt_agent::heci=trace,tungstenite=info,tokio_tungstenite=info"
        );
        // A later, more specific user directive cannot lift it: ours come last.
        assert!(capped("tungstenite=trace").ends_with("tungstenite=info,tokio_tungstenite=info"));
    }
}
