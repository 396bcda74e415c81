//! The service's status file (`status.json` in the state directory), the sd_notify protocol, and
//! Prometheus textfile metrics. Every file is written atomically (a temporary file, then rename).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::amthi::ControlMode;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LastError {
    pub code: u8,
    pub name: String,
    pub message: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// starting, checking, activating, activated, retrying, stopped.
    pub state: String,
    pub desired: String,
    /// The control mode in words, for people (`ControlMode::text`); set with `set_control_mode`.
    pub control_mode: Option<String>,
    /// The same mode as the firmware's number (0 not activated, 1 CCM, 2 ACM), for programs.
    pub control_mode_code: Option<u32>,
    pub last_attempt: Option<String>,
    pub last_error: Option<LastError>,
    pub next_attempt: Option<String>,
    pub attempts: u64,
    pub successes: u64,
    pub failures_by_code: BTreeMap<String, u64>,
    pub pid: u32,
    pub updated: String,
    /// With a profile: its path, when the last plan ran, and the settings that drifted from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_plan: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<DriftEntry>,
    /// Drifted settings fixed by the service since it started.
    #[serde(default)]
    pub drift_fixed: u64,
}

/// A setting that left the profile after the machine had reached it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DriftEntry {
    pub area: String,
    pub setting: String,
    pub current: String,
    pub desired: String,
    /// When a plan first saw it.
    pub since: String,
    pub fixed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_at: Option<String>,
    /// Fixed by this service (`drift = "fix"`), or found back in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_by: Option<String>,
}

/// Seconds since the epoch of an [`rfc3339`] time.
fn unix_of(t: &str) -> Option<i64> {
    let (d, rest) = t.split_once('T')?;
    let mut ymd = d.split('-').map(|x| x.parse::<i64>());
    let (y, m, dd) = (ymd.next()?.ok()?, ymd.next()?.ok()?, ymd.next()?.ok()?);
    let hms: Vec<i64> = rest
        .trim_end_matches('Z')
        .split(':')
        .filter_map(|x| x.parse().ok())
        .collect();
    if hms.len() != 3 {
        return None;
    }
    // Days-from-civil (Howard Hinnant's algorithm), the inverse of rfc3339's.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2])
}

/// RFC 3339 UTC time, seconds precision, with no dependency on a date crate.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

impl Status {
    /// Records the mode the firmware reported, in words and as its number.
    pub fn set_control_mode(&mut self, mode: ControlMode) {
        self.control_mode = Some(mode.text().into());
        self.control_mode_code = Some(mode.code());
    }

    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        write_atomic(path, &json)
    }

    pub fn read(path: &Path) -> std::io::Result<Status> {
        let t = std::fs::read_to_string(path)?;
        serde_json::from_str(&t).map_err(std::io::Error::other)
    }

    /// Prometheus text exposition format, for node_exporter's textfile collector.
    pub fn metrics(&self) -> String {
        let mut s = String::new();
        s.push_str("# HELP amt_agent_attempts_total Activation attempts.\n# TYPE amt_agent_attempts_total counter\n");
        s.push_str(&format!("amt_agent_attempts_total {}\n", self.attempts));
        s.push_str("# HELP amt_agent_successes_total Successful activations.\n# TYPE amt_agent_successes_total counter\n");
        s.push_str(&format!("amt_agent_successes_total {}\n", self.successes));
        s.push_str("# HELP amt_agent_failures_total Failed attempts by exit code.\n# TYPE amt_agent_failures_total counter\n");
        for (code, n) in &self.failures_by_code {
            s.push_str(&format!(
                "amt_agent_failures_total{{code=\"{code}\"}} {n}\n"
            ));
        }
        s.push_str("# HELP amt_agent_control_mode 0 not activated, 1 CCM, 2 ACM, -1 unknown.\n# TYPE amt_agent_control_mode gauge\n");
        let m = match self.control_mode_code.map(ControlMode::from_u32) {
            Some(ControlMode::None) => 0,
            Some(ControlMode::Ccm) => 1,
            Some(ControlMode::Acm) => 2,
            Some(ControlMode::Unknown(_)) | None => -1,
        };
        s.push_str(&format!("amt_agent_control_mode {m}\n"));
        if self.profile.is_some() {
            let open: Vec<&DriftEntry> = self.drift.iter().filter(|d| !d.fixed).collect();
            s.push_str("# HELP amt_agent_drift_settings Settings that drifted from the profile and are not fixed.\n# TYPE amt_agent_drift_settings gauge\n");
            s.push_str(&format!("amt_agent_drift_settings {}\n", open.len()));
            s.push_str("# HELP amt_agent_drift_since_timestamp_seconds When the oldest unfixed drift was first seen (0: none).\n# TYPE amt_agent_drift_since_timestamp_seconds gauge\n");
            let since = open
                .iter()
                .filter_map(|d| unix_of(&d.since))
                .min()
                .unwrap_or(0);
            s.push_str(&format!(
                "amt_agent_drift_since_timestamp_seconds {since}\n"
            ));
            s.push_str("# HELP amt_agent_drift_fixed_total Drifted settings the service fixed.\n# TYPE amt_agent_drift_fixed_total counter\n");
            s.push_str(&format!(
                "amt_agent_drift_fixed_total {}\n",
                self.drift_fixed
            ));
            s.push_str("# HELP amt_agent_drift One per setting that drifted (1 unfixed, 0 fixed).\n# TYPE amt_agent_drift gauge\n");
            for d in &self.drift {
                let esc = |x: &str| x.replace('\\', "\\\\").replace('"', "\\\"");
                s.push_str(&format!(
                    "amt_agent_drift{{area=\"{}\",setting=\"{}\"}} {}\n",
                    esc(&d.area),
                    esc(&d.setting),
                    u8::from(!d.fixed)
                ));
            }
        }
        s
    }
}

/// sd_notify: a datagram to `$NOTIFY_SOCKET` (nothing when not run by systemd). On Windows the
/// Service Control Manager is told through `service::windows` instead.
#[cfg(not(target_os = "linux"))]
pub fn sd_notify(_msg: &str) {}

/// sd_notify: a datagram to `$NOTIFY_SOCKET` (nothing when not run by systemd).
#[cfg(target_os = "linux")]
pub fn sd_notify(msg: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sock = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(_) => return,
    };
    let p = path.to_string_lossy().into_owned();
    let r = if let Some(abstract_name) = p.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())
            .and_then(|a| sock.send_to_addr(msg.as_bytes(), &a))
    } else {
        sock.send_to(msg.as_bytes(), &p)
    };
    if let Err(e) = r {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_shows_in_the_metrics_with_its_age() {
        let mut s = Status {
            profile: Some("/etc/amt-agent/profile.yaml".into()),
            ..Default::default()
        };
        s.drift.push(DriftEntry {
            area: "hostname".into(),
            setting: "host name".into(),
            since: "2026-11-29T00:10:45Z".into(),
            ..Default::default()
        });
        let m = s.metrics();
        assert!(m.contains("amt_agent_drift_settings 1\n"), "{m}");
        assert!(
            m.contains("amt_agent_drift_since_timestamp_seconds 1795911045\n"),
            "{m}"
        );
        assert!(
            m.contains("amt_agent_drift{area=\"hostname\",setting=\"host name\"} 1\n"),
            "{m}"
        );
        // A status file without the new keys still reads.
        let old: Status = serde_json::from_str(r#"{"state":"activated","desired":"x","controlMode":null,"controlModeCode":null,"lastAttempt":null,"lastError":null,"nextAttempt":null,"attempts":1,"successes":1,"failuresByCode":{},"pid":1,"updated":"x"}"#).unwrap();
        assert!(old.drift.is_empty());
        assert!(!old.metrics().contains("drift"));
    }

    #[test]
    fn rfc3339_dates() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_911_045);
        assert_eq!(rfc3339(t), "2026-11-29T00:10:45Z");
        assert_eq!(rfc3339(std::time::UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn metrics_name_failures_by_code() {
        let mut s = Status {
            attempts: 3,
            successes: 1,
            ..Default::default()
        };
        s.failures_by_code.insert("4".into(), 2);
        let m = s.metrics();
        assert!(m.contains("amt_agent_failures_total{code=\"4\"} 2\n"));
        assert!(m.contains("amt_agent_control_mode -1\n"), "{m}");
        for (mode, gauge) in [
            (ControlMode::None, "0"),
            (ControlMode::Ccm, "1"),
            (ControlMode::Acm, "2"),
            (ControlMode::Unknown(9), "-1"),
        ] {
            s.set_control_mode(mode);
            assert!(
                s.metrics()
                    .contains(&format!("amt_agent_control_mode {gauge}\n")),
                "{mode:?}"
            );
        }
    }

    #[test]
    fn the_metrics_gauge_follows_the_mode_number_not_its_words() {
        // A status file from another version, or edited words, do not change the gauge.
        let s = Status {
            control_mode: Some("whatever words".into()),
            control_mode_code: Some(2),
            ..Default::default()
        };
        assert!(s.metrics().contains("amt_agent_control_mode 2\n"));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["controlModeCode"], 2);
    }
}
