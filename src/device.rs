//! The device factory: what `--device` names, and the one place that knows every MEI backend.
//!
//! `heci` defines the interface and the real backends (Linux ioctl, Windows driver, the simulator's
//! socket protocol); the simulator's firmware model lives in `sim`. Choosing between them happens
//! here, above both, so the transport never imports its imitation (as a TPM stack's TCTI loader
//! sits above its device and swtpm backends).
//!
//! | `--device` | backend |
//! |---|---|
//! | `auto` | Linux: probe `/dev/mei0` … `/dev/mei3`, `/dev/mei`; Windows: the HECI device interface |
//! | a path | Linux: that MEI character device (or an `amt-sim --mei-file`); Windows: a device interface path |
//! | `sim:SOCKET` | `amt-sim serve --socket SOCKET` (Unix only) |
//! | `sim:tcp:HOST:PORT` | `amt-sim serve --tcp HOST:PORT`, loopback only |
//! | `sim`, `sim:profile=NAME` | the simulator's firmware model inside this process |

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::heci::simsock::{SimEndpoint, SimSocketDevice};
use crate::heci::{HeciError, MeiDevice};

/// Where `--device` points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    /// Probe the usual device nodes (Linux) or the HECI device interface (Windows).
    Auto,
    /// A MEI character device or a file that behaves like one; on Windows a device interface path.
    Path(PathBuf),
    /// A running `amt-sim serve --socket PATH`.
    SimSocket(PathBuf),
    /// A running `amt-sim serve --tcp ADDR` on a loopback address.
    SimTcp(SocketAddr),
    /// The simulator in this process, with the named profile (None = the default profile).
    InProcess { profile: Option<String> },
}

impl DeviceSpec {
    pub fn parse(s: &str) -> Result<DeviceSpec, String> {
        let s = s.trim();
        if s.is_empty() || s == "auto" {
            return Ok(DeviceSpec::Auto);
        }
        if s == "sim" {
            return Ok(DeviceSpec::InProcess { profile: None });
        }
        if let Some(rest) = s.strip_prefix("sim:") {
            if let Some(p) = rest.strip_prefix("profile=") {
                if p.is_empty() {
                    return Err("sim:profile= needs a profile name or a profile file".into());
                }
                return Ok(DeviceSpec::InProcess {
                    profile: Some(p.to_string()),
                });
            }
            if let Some(addr) = rest.strip_prefix("tcp:") {
                let addr: SocketAddr = addr.parse().map_err(|_| {
                    format!("sim:tcp:{addr}: expected an address and port, e.g. sim:tcp:127.0.0.1:16990")
                })?;
                if !addr.ip().is_loopback() {
                    return Err(format!(
                        "sim:tcp:{addr}: the simulator is reached on a loopback address only (127.0.0.1 or [::1])"
                    ));
                }
                return Ok(DeviceSpec::SimTcp(addr));
            }
            if rest.is_empty() {
                return Err(
                    "sim: needs a socket path (sim:/run/amt-sim.sock), sim:tcp:HOST:PORT, or plain 'sim'"
                        .into(),
                );
            }
            return Ok(DeviceSpec::SimSocket(PathBuf::from(rest)));
        }
        Ok(DeviceSpec::Path(PathBuf::from(s)))
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Auto => write!(f, "auto"),
            DeviceSpec::Path(p) => write!(f, "{}", p.display()),
            DeviceSpec::SimSocket(p) => write!(f, "sim:{}", p.display()),
            DeviceSpec::SimTcp(a) => write!(f, "sim:tcp:{a}"),
            DeviceSpec::InProcess { profile: None } => write!(f, "sim"),
            DeviceSpec::InProcess { profile: Some(p) } => write!(f, "sim:profile={p}"),
        }
    }
}

/// Opens the device a spec names.
pub fn open(spec: &DeviceSpec) -> Result<Arc<dyn MeiDevice>, HeciError> {
    match spec {
        DeviceSpec::Auto => open_auto(),
        DeviceSpec::Path(p) => open_path(p.clone()),
        DeviceSpec::SimSocket(p) => open_sim_socket(p.clone()),
        DeviceSpec::SimTcp(a) => Ok(Arc::new(SimSocketDevice::new(SimEndpoint::Tcp(*a)))),
        DeviceSpec::InProcess { profile } => {
            let fw = crate::sim::Firmware::from_profile_name(profile.as_deref()).map_err(|e| {
                HeciError::SimSocket {
                    path: "in-process".into(),
                    reason: e,
                }
            })?;
            Ok(Arc::new(crate::sim::InProcessDevice::new(fw)))
        }
    }
}

#[cfg(unix)]
fn open_sim_socket(p: PathBuf) -> Result<Arc<dyn MeiDevice>, HeciError> {
    Ok(Arc::new(SimSocketDevice::new(SimEndpoint::Unix(p))))
}

#[cfg(not(unix))]
fn open_sim_socket(p: PathBuf) -> Result<Arc<dyn MeiDevice>, HeciError> {
    Err(HeciError::SimSocket {
        path: p.display().to_string(),
        reason: "Unix sockets are not available on this OS; run amt-sim serve --tcp 127.0.0.1:PORT and pass --device sim:tcp:127.0.0.1:PORT".into(),
    })
}

#[cfg(target_os = "linux")]
fn open_path(p: PathBuf) -> Result<Arc<dyn MeiDevice>, HeciError> {
    if !p.exists() {
        return Err(HeciError::NoDevice {
            tried: p.display().to_string(),
        });
    }
    Ok(Arc::new(crate::heci::linux::LinuxMeiDevice::new(p)))
}

#[cfg(target_os = "linux")]
fn open_auto() -> Result<Arc<dyn MeiDevice>, HeciError> {
    let present: Vec<PathBuf> = crate::heci::AUTO_PATHS
        .iter()
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .collect();
    if present.is_empty() {
        return Err(HeciError::NoDevice {
            tried: crate::heci::AUTO_PATHS.join(", "),
        });
    }
    Ok(Arc::new(crate::heci::linux::LinuxMeiDevice::probing(
        present,
    )))
}

#[cfg(windows)]
fn open_path(p: PathBuf) -> Result<Arc<dyn MeiDevice>, HeciError> {
    Ok(Arc::new(crate::heci::windows::WindowsMeiDevice::at_path(
        p.display().to_string(),
    )))
}

#[cfg(windows)]
fn open_auto() -> Result<Arc<dyn MeiDevice>, HeciError> {
    Ok(Arc::new(crate::heci::windows::WindowsMeiDevice::discover()?))
}

#[cfg(not(any(target_os = "linux", windows)))]
fn open_path(p: PathBuf) -> Result<Arc<dyn MeiDevice>, HeciError> {
    Err(HeciError::NoDevice {
        tried: format!("{} (no MEI backend for this OS)", p.display()),
    })
}

#[cfg(not(any(target_os = "linux", windows)))]
fn open_auto() -> Result<Arc<dyn MeiDevice>, HeciError> {
    Err(HeciError::NoDevice {
        tried: "no MEI backend for this OS".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_spec_parses_every_form() {
        assert_eq!(DeviceSpec::parse("auto").unwrap(), DeviceSpec::Auto);
        assert_eq!(
            DeviceSpec::parse("sim").unwrap(),
            DeviceSpec::InProcess { profile: None }
        );
        assert_eq!(
            DeviceSpec::parse("sim:profile=amt19").unwrap(),
            DeviceSpec::InProcess {
                profile: Some("amt19".into())
            }
        );
        assert_eq!(
            DeviceSpec::parse("sim:/tmp/a.sock").unwrap(),
            DeviceSpec::SimSocket("/tmp/a.sock".into())
        );
        assert_eq!(
            DeviceSpec::parse("sim:tcp:127.0.0.1:16990").unwrap(),
            DeviceSpec::SimTcp("127.0.0.1:16990".parse().unwrap())
        );
        assert_eq!(
            DeviceSpec::parse("/dev/mei0").unwrap(),
            DeviceSpec::Path("/dev/mei0".into())
        );
        assert!(DeviceSpec::parse("sim:").is_err());
        for spec in [
            "sim:profile=amt19",
            "sim:tcp:127.0.0.1:16990",
            "sim",
            "auto",
        ] {
            assert_eq!(DeviceSpec::parse(spec).unwrap().to_string(), spec);
        }
    }

    #[test]
    fn the_simulator_over_tcp_is_reached_on_loopback_only() {
        let e = DeviceSpec::parse("sim:tcp:192.0.2.7:16990").unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        let e = DeviceSpec::parse("sim:tcp:localhost").unwrap_err();
        assert!(e.contains("address and port"), "{e}");
        assert!(DeviceSpec::parse("sim:tcp:[::1]:16990").is_ok());
    }

    #[test]
    fn the_in_process_simulator_is_marked_simulated() {
        let d = open(&DeviceSpec::InProcess {
            profile: Some("amt19".into()),
        })
        .unwrap();
        assert_eq!(d.simulated_profile().as_deref(), Some("amt19"));
        let e = open(&DeviceSpec::InProcess {
            profile: Some("no-such-profile".into()),
        })
        .err()
        .unwrap();
        assert!(matches!(e, HeciError::SimSocket { .. }));
    }
}
