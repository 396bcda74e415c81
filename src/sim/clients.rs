//! The simulated ME clients other than AMTHI and LME: watchdog (state independence), MKHI, UPID.
//! Facts: transport.md §3.2–3.4, rpc-go.md §6.6, mei-clients.md.

use std::time::Instant;

use super::{ClientSession, FirmwareCore, Outgoing};
use crate::upid::{self, Command as UpidCommand, OemPlatformIdType, PlatformId, UpidStatus};

/// The watchdog client's "state independence" messages (no AMTHI header).
pub struct WatchdogSession;

impl ClientSession for WatchdogSession {
    fn on_message(
        &mut self,
        fw: &mut FirmwareCore,
        msg: &[u8],
        now: Instant,
        out: &mut Vec<Outgoing>,
    ) {
        match msg {
            // IsChangeToAMTEnabled: clients read byte 0 as the flags.
            [0x05, 0x02, 0x51, 0x10, ..] => {
                let mut reply = vec![0u8; fw.profile.watchdog_reply_len.max(1)];
                reply[0] = fw.profile.watchdog_flags();
                out.push(Outgoing {
                    at: now,
                    bytes: reply,
                });
            }
            // SetAmtOperationalState: header echo then u32 status.
            [0x05, 0x03, 0x53, 0x10, state, ..] => {
                // Only ME 16.1+ ("new interface") supports it (3 INVALID_AMT_MODE otherwise); only
                // in pre-provisioning and when the platform allows the transition (16
                // NOT_PERMITTED otherwise: UNCONFIRMED, firmware's status is unpublished). A state
                // other than 0 or 1 is INVALID_PARAMETER (36, UNCONFIRMED).
                let status: u32 = if !fw.profile.new_interface {
                    3
                } else if *state > 1 {
                    36
                } else if fw.profile.control_mode != 0 || !fw.profile.transition_allowed {
                    16
                } else {
                    if fw.profile.amt_enabled != (*state != 0) {
                        fw.profile.amt_enabled = *state != 0;
                        fw.changed();
                    }
                    0
                };
                let mut reply = vec![0x05, 0x03, 0x53, 0x10];
                reply.extend_from_slice(&status.to_le_bytes());
                out.push(Outgoing {
                    at: now,
                    bytes: reply,
                });
            }
            _ => tracing::debug!(len = msg.len(), "watchdog: unknown message ignored"),
        }
    }
}

/// MKHI: GET_FW_VERSION and FWCAPS GET_RULE, which LMS needs before it starts.
pub struct MkhiSession;

impl ClientSession for MkhiSession {
    fn on_message(
        &mut self,
        fw: &mut FirmwareCore,
        msg: &[u8],
        now: Instant,
        out: &mut Vec<Outgoing>,
    ) {
        if msg.len() < 4 {
            return;
        }
        let group = msg[0];
        let command = msg[1] & 0x7F;
        let mut reply = vec![group, command | 0x80, 0, 0];
        match (group, command) {
            (0xFF, 0x02) => {
                let (major, minor, hotfix, build) = fw.profile.version_parts();
                // code, NFTP and FITC blocks: {minor, major, build, hotfix} each (28 bytes in all)
                for _ in 0..3 {
                    for v in [minor, major, build, hotfix] {
                        reply.extend_from_slice(&v.to_le_bytes());
                    }
                }
            }
            (0x03, 0x02) if msg.len() >= 8 => {
                let rule = u32::from_le_bytes([msg[4], msg[5], msg[6], msg[7]]);
                let sku: u32 = fw
                    .profile
                    .version("Sku")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let data: u32 = match rule {
                    0 => sku,
                    // feature enable / available features: AMT present when the SKU has it
                    0x20 | 0x27 => {
                        if sku & 0x08 != 0 || sku & 0x10 != 0 {
                            0x04
                        } else {
                            0
                        }
                    }
                    0x1D => 1,
                    _ => {
                        reply[3] = 1;
                        out.push(Outgoing {
                            at: now,
                            bytes: reply,
                        });
                        return;
                    }
                };
                reply.extend_from_slice(&rule.to_le_bytes());
                reply.push(4);
                reply.extend_from_slice(&data.to_le_bytes());
            }
            _ => reply[3] = 1,
        }
        out.push(Outgoing {
            at: now,
            bytes: reply,
        });
    }
}

/// The UPID client (rpc-go.md §6.6): FeatureStateSet and PlatformIdGet, answered with the profile's
/// OEM id and a CSME id derived from the simulated CSME's ROM CA certificate, so that AMT's TLS
/// chain is bound to it (rpc-go.md §5.6). `--fault upid-mismatch` reports another CSME's id.
pub struct UpidSession;

impl UpidSession {
    fn platform_id(fw: &FirmwareCore) -> PlatformId {
        let mut oem = [0u8; upid::ID_LEN];
        if let Some(b) = crate::amthi::codec::unhex(&fw.profile.upid_oem_platform_id) {
            let n = b.len().min(oem.len());
            oem[..n].copy_from_slice(&b[..n]);
        }
        let mut csme = super::tls::sim_csme_platform_id();
        if fw.faults.upid_mismatch() {
            // Another CSME: every byte differs, the bound bytes 0–19 included.
            csme.iter_mut().for_each(|b| *b ^= 0xA5);
        }
        PlatformId {
            oem_platform_id_type: OemPlatformIdType::from_u32(fw.profile.upid_oem_platform_id_type),
            oem_platform_id: oem,
            csme_platform_id: csme,
        }
    }
}

impl ClientSession for UpidSession {
    fn on_message(
        &mut self,
        fw: &mut FirmwareCore,
        msg: &[u8],
        now: Instant,
        out: &mut Vec<Outgoing>,
    ) {
        if msg.len() < upid::HEADER_LEN {
            tracing::warn!(
                len = msg.len(),
                "UPID: message shorter than a header; ignored"
            );
            return;
        }
        let command = UpidCommand::from_u8(msg[1]);
        let fault = fw.faults.for_named_reply(command.name());
        let (status, body) = match (upid::decode_request(msg), fault.status) {
            (Err(e), _) => {
                tracing::debug!(error = %e, "UPID: malformed request");
                (UpidStatus::InvalidInputParameter, Vec::new())
            }
            (Ok(req), _) if req.header.feature != upid::FEATURE_PLATFORM_ID => {
                // Other features (TEP, feature 1) are not modelled.
                (UpidStatus::FeatureNotSupported, Vec::new())
            }
            (Ok(_), Some(s)) => (UpidStatus::from_u32(s), Vec::new()),
            (Ok(req), None) => match (command, req.payload) {
                (UpidCommand::FeatureStateSet, [state @ (0 | 1)]) => {
                    fw.upid_feature_enabled = *state == 1;
                    (UpidStatus::Success, Vec::new())
                }
                (UpidCommand::FeatureStateSet, _) => {
                    (UpidStatus::InvalidInputParameter, Vec::new())
                }
                // UNCONFIRMED which status real firmware gives while the feature is disabled;
                // INVALID_STATE is the one rpc-go describes as "disabled".
                (UpidCommand::PlatformIdGet, []) if !fw.upid_feature_enabled => {
                    (UpidStatus::InvalidState, Vec::new())
                }
                (UpidCommand::PlatformIdGet, []) if fault.truncate => {
                    (UpidStatus::Success, Vec::new())
                }
                (UpidCommand::PlatformIdGet, []) => {
                    (UpidStatus::Success, Self::platform_id(fw).encode_body())
                }
                (UpidCommand::PlatformIdGet, _) => (UpidStatus::InvalidInputParameter, Vec::new()),
                // The reference gives no reply layout for the other commands: not modelled.
                _ => (UpidStatus::FeatureNotSupported, Vec::new()),
            },
        };
        tracing::debug!(command = command.name(), status = %status, "UPID");
        if fault.hang {
            tracing::debug!(command = command.name(), "fault: not answering");
            return;
        }
        let mut reply = upid::encode_reply(command, status, &body);
        // The header echoes the request's feature.
        reply[0] = msg[0];
        if fault.oversize {
            reply.resize(8192 + reply.len(), 0);
        }
        out.push(Outgoing {
            at: now + fault.delay,
            bytes: reply,
        });
    }
}

/// A client that is enumerated but whose protocol the simulator does not model.
pub struct SilentSession;

impl ClientSession for SilentSession {
    fn on_message(
        &mut self,
        _fw: &mut FirmwareCore,
        msg: &[u8],
        _now: Instant,
        _out: &mut Vec<Outgoing>,
    ) {
        tracing::debug!(len = msg.len(), "message to an unmodelled client ignored");
    }
}
