//! A thin synchronous driver for the UPID client: one connection, enable → get → disable, a
//! deadline on every read, and a trace of every exchange (rpc-go.md §6.6).

use std::time::{Duration, Instant};

use super::{
    decode_feature_state_set_reply, decode_platform_id_reply, feature_state_set, platform_id_get,
    Command, DecodeError, PlatformId, PlatformIdAnswer, UpidStatus,
};
use crate::amthi::codec::hex;
use crate::heci::{self, guid, HeciError, MeiConnection, MeiDevice, RetryPolicy};

/// How long one UPID reply may take (rpc-go reads with a 3 s deadline; the AMTHI default is used).
pub const DEFAULT_TIMEOUT: Duration = crate::amthi::client::DEFAULT_TIMEOUT;

#[derive(Debug, Clone, thiserror::Error)]
pub enum UpidError {
    #[error(transparent)]
    Heci(#[from] HeciError),
    #[error("{command} returned {status}: {}", status.meaning())]
    Status {
        command: &'static str,
        status: UpidStatus,
    },
    #[error("malformed {command} reply: {error}")]
    Malformed {
        command: &'static str,
        error: DecodeError,
    },
    #[error("the UPID is not provisioned on this platform (UPID_PLATFORM_ID_GET answered SUCCESS without an id)")]
    NotProvisioned,
}

impl UpidError {
    pub fn help(&self) -> &'static str {
        match self {
            UpidError::Heci(h) => h.help(),
            UpidError::Status { .. } => {
                "the firmware refuses to read the UPID now (the BIOS may keep it from the OS); check the BIOS/MEBx settings"
            }
            UpidError::Malformed { .. } => {
                "the firmware's answer did not match the UPID layout; capture a trace (-vvv) and report it"
            }
            UpidError::NotProvisioned => {
                "this platform has no UPID provisioned; nothing to show"
            }
        }
    }
}

/// rpc-go gives GUID-only clients (UPID, HOTHAM) 3 plain connect attempts (rpc-go.md §6.2); a
/// short back-off here, so that a held client costs well under a second.
fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        busy_attempts: 3,
        busy_first_delay: Duration::from_millis(50),
        ..RetryPolicy::default()
    }
}

fn exchange(
    conn: &dyn MeiConnection,
    command: Command,
    request: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, HeciError> {
    tracing::trace!(client = "UPID", command = command.name(), len = request.len(), bytes = %hex(request), "→ request");
    conn.send(request)?;
    let reply = conn.recv(Instant::now() + timeout).map_err(|e| match e {
        HeciError::Timeout { client, .. } => HeciError::Timeout {
            client,
            timeout_ms: timeout.as_millis() as u64,
        },
        e => e,
    })?;
    tracing::trace!(client = "UPID", command = command.name(), len = reply.len(), bytes = %hex(&reply), "← reply");
    Ok(reply)
}

fn set_feature_state(
    conn: &dyn MeiConnection,
    enabled: bool,
    timeout: Duration,
) -> Result<(), UpidError> {
    let c = Command::FeatureStateSet;
    let reply = exchange(conn, c, &feature_state_set(enabled), timeout)?;
    let status = decode_feature_state_set_reply(&reply).map_err(|error| UpidError::Malformed {
        command: c.name(),
        error,
    })?;
    if status != UpidStatus::Success {
        return Err(UpidError::Status {
            command: c.name(),
            status,
        });
    }
    Ok(())
}

fn get_platform_id(conn: &dyn MeiConnection, timeout: Duration) -> Result<PlatformId, UpidError> {
    let c = Command::PlatformIdGet;
    let reply = exchange(conn, c, &platform_id_get(), timeout)?;
    match decode_platform_id_reply(&reply) {
        Ok(PlatformIdAnswer::Id(id)) => {
            tracing::trace!(
                oem_platform_id_type = %id.oem_platform_id_type.text(),
                oem_id = %id.oem_id_text(),
                csme_id = %id.csme_id_text(),
                "UPID_PLATFORM_ID_GET"
            );
            Ok(id)
        }
        Ok(PlatformIdAnswer::NotProvisioned) => Err(UpidError::NotProvisioned),
        Ok(PlatformIdAnswer::Refused(status)) => Err(UpidError::Status {
            command: c.name(),
            status,
        }),
        Err(error) => Err(UpidError::Malformed {
            command: c.name(),
            error,
        }),
    }
}

/// Reads this platform's UPID the way rpc-go v3 does: enable the feature (a refusal is logged and
/// the read tried anyway: some platforms have it enabled already), read the id, disable the feature
/// again (a refusal is logged only). A transport failure ends the sequence at once: after a timeout a
/// late reply would be read as the answer to the next request.
pub fn read_platform_id(
    device: &dyn MeiDevice,
    timeout: Duration,
) -> Result<PlatformId, UpidError> {
    let conn = heci::connect(device, guid::UPID, &retry_policy())?;
    match set_feature_state(conn.as_ref(), true, timeout) {
        Ok(()) => {}
        Err(UpidError::Heci(e)) => return Err(e.into()),
        Err(e) => {
            tracing::debug!(error = %e, "enabling the UPID feature failed; reading the id anyway")
        }
    }
    let got = get_platform_id(conn.as_ref(), timeout);
    if let Err(UpidError::Heci(_)) = got {
        return got;
    }
    if let Err(e) = set_feature_state(conn.as_ref(), false, timeout) {
        tracing::debug!(error = %e, "disabling the UPID feature again failed");
    }
    got
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::faults::{Fault, FaultPlan};
    use crate::sim::{profile, Firmware, InProcessDevice};

    fn device(name: &str, faults: &[&str]) -> InProcessDevice {
        let faults = faults.iter().map(|f| Fault::parse(f).unwrap()).collect();
        let fw = Firmware::new(
            profile::builtin(name).unwrap(),
            FaultPlan::new(faults),
            None,
        );
        InProcessDevice::new(fw)
    }

    const T: Duration = Duration::from_millis(500);

    #[test]
    fn the_simulated_csme_id_binds_the_simulated_tls_chain() {
        let id = read_platform_id(&device("amt19", &[]), T).unwrap();
        let chain = crate::sim::tls::odca_chain();
        let rom_ca: &[u8] = chain.chain()[crate::tls::ROM_CA_INDEX].as_ref();
        use sha2::Digest as _;
        assert_eq!(id.csme_binding()[..], sha2::Sha256::digest(rom_ca)[..20]);
        assert_eq!(
            id.oem_platform_id_type,
            super::super::OemPlatformIdType::NotSet
        );
        assert_eq!(id.oem_id_text(), "");
        // The verifier agrees: the chain passes with the binding on.
        let chain_ders: Vec<&[u8]> = chain.chain().iter().map(|c| c.as_ref()).collect();
        let v = crate::tls::AmtCertVerifier::provisioning()
            .with_extra_anchor(chain.root_der())
            .unwrap()
            .with_upid_csme_id(id.csme_binding());
        v.verify_chain(&chain_ders, rustls_pki_types::UnixTime::now())
            .unwrap();
    }

    #[test]
    fn the_mismatch_fault_reports_another_csme_which_the_verifier_refuses() {
        let id = read_platform_id(&device("amt19", &["upid-mismatch"]), T).unwrap();
        let chain = crate::sim::tls::odca_chain();
        let chain_ders: Vec<&[u8]> = chain.chain().iter().map(|c| c.as_ref()).collect();
        let v = crate::tls::AmtCertVerifier::provisioning()
            .with_extra_anchor(chain.root_der())
            .unwrap()
            .with_upid_csme_id(id.csme_binding());
        let e = v
            .verify_chain(&chain_ders, rustls_pki_types::UnixTime::now())
            .unwrap_err();
        assert!(
            matches!(e, crate::tls::AmtCertError::UpidMismatch { .. }),
            "{e}"
        );
    }

    #[test]
    fn the_feature_is_enabled_for_the_read_and_disabled_after() {
        let dev = device("amt16.1", &[]);
        read_platform_id(&dev, T).unwrap();
        // Without enabling first, the simulated firmware refuses the read.
        let conn = heci::connect(&dev, guid::UPID, &retry_policy()).unwrap();
        let e = get_platform_id(conn.as_ref(), T).unwrap_err();
        assert!(
            matches!(
                e,
                UpidError::Status {
                    status: UpidStatus::InvalidState,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn an_absent_client_a_refusal_and_a_short_success_are_told_apart() {
        let e = read_platform_id(&device("amt15", &[]), T).unwrap_err();
        assert!(
            matches!(e, UpidError::Heci(HeciError::ClientNotFound { .. })),
            "{e}"
        );
        let e =
            read_platform_id(&device("amt19", &["truncate=UPID_PLATFORM_ID_GET"]), T).unwrap_err();
        assert!(matches!(e, UpidError::NotProvisioned), "{e}");
        let e =
            read_platform_id(&device("amt19", &["status=UPID_PLATFORM_ID_GET:9"]), T).unwrap_err();
        assert_eq!(
            e.to_string(),
            "UPID_PLATFORM_ID_GET returned NOT_ALLOWED_AFTER_CBD (9): not allowed after core BIOS done"
        );
        // A refused enable is no failure: the read is tried anyway (the feature is then disabled,
        // so this simulated firmware answers INVALID_STATE).
        let e = read_platform_id(
            &device("amt19", &["status=UPID_PLATFORM_ID_FEATURE_STATE_SET:1"]),
            T,
        )
        .unwrap_err();
        assert!(e.to_string().contains("INVALID_STATE (7)"), "{e}");
    }

    #[test]
    fn a_hung_client_ends_at_the_deadline() {
        let started = Instant::now();
        let e = read_platform_id(
            &device("amt19", &["hang=UPID_PLATFORM_ID_FEATURE_STATE_SET"]),
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                UpidError::Heci(HeciError::Timeout {
                    timeout_ms: 200,
                    ..
                })
            ),
            "{e}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
