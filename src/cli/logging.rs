//! Logging on stderr (results go to stdout). Level: --log-level, else -v count, else the
//! `AMT_AGENT_LOG` filter (e.g. `debug` or `amt_agent::heci=trace`), else warnings only. A Windows
//! service has no stderr anyone reads: its logs go to a file instead ([`log_to_file`]).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

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

/// Where log lines go once [`log_to_file`] has been called; stderr until then.
static LOG_FILE: OnceLock<Mutex<std::fs::File>> = OnceLock::new();

/// The log's sink: the file when one is set, else stderr. tracing writes each event whole.
struct Sink;

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match LOG_FILE.get() {
            Some(f) => f.lock().unwrap_or_else(|p| p.into_inner()).write(buf),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match LOG_FILE.get() {
            Some(f) => f.lock().unwrap_or_else(|p| p.into_inner()).flush(),
            None => std::io::stderr().flush(),
        }
    }
}

/// A log file kept below this size at start: a larger one is moved to `NAME.1` first.
const LOG_ROTATE_BYTES: u64 = 10 * 1024 * 1024;

/// Sends every later log line to `path` (appended), as a Windows service does with its state
/// directory's `amt-agent.log`. The same filter and redaction apply as on stderr.
pub fn log_to_file(path: &std::path::Path) -> std::io::Result<()> {
    rotate(path, LOG_ROTATE_BYTES)?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    LOG_FILE
        .set(Mutex::new(f))
        .map_err(|_| std::io::Error::other("the log already goes to a file"))
}

/// Moves `path` to `path.1` (replacing it) when it is larger than `limit` bytes.
fn rotate(path: &std::path::Path, limit: u64) -> std::io::Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() > limit) {
        let mut old = path.as_os_str().to_owned();
        old.push(".1");
        std::fs::rename(path, old)?;
    }
    Ok(())
}

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
        .with_writer(|| Sink)
        // Colour only for a terminal: not in a redirected stderr, a file or a service's log.
        .with_ansi(std::io::stderr().is_terminal())
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
    use super::{capped, rotate};

    #[test]
    fn a_log_past_its_limit_moves_aside_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("amt-agent.log");
        std::fs::write(&log, "x".repeat(20)).unwrap();
        rotate(&log, 100).unwrap();
        assert!(log.exists(), "under the limit it stays");
        rotate(&log, 10).unwrap();
        assert!(!log.exists());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("amt-agent.log.1")).unwrap(),
            "x".repeat(20)
        );
        rotate(&log, 10).unwrap();
    }

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
