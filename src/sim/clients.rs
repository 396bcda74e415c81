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

/// FWCAPS rule ids (transport.md §3.2; LMS `GetFWCapsCommand.h`, `GetPlatformTypeCommand.h`).
const RULE_FEATURES_CAPABLE: u32 = 0;
const RULE_PLATFORM_TYPE: u32 = 0x1D;
const RULE_FEATURES_ENABLED: u32 = 0x20;
const RULE_FEATURES_AVAILABLE: u32 = 0x27;

/// MKHI: GET_FW_VERSION and FWCAPS GET_RULE, which LMS needs before it starts. The rule answers
/// follow the profile: the features bitmaps from its `Sku` and AMT state, the platform type from
/// `platform_type` (see [`super::profile::platform_type`] for both layouts and their sources).
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
                let data: u32 = match rule {
                    RULE_FEATURES_CAPABLE => fw.profile.mkhi_features(false),
                    RULE_FEATURES_ENABLED | RULE_FEATURES_AVAILABLE => {
                        fw.profile.mkhi_features(true)
                    }
                    RULE_PLATFORM_TYPE => fw.profile.mkhi_platform_type(),
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::profile::{self, BRAND_AMT, BRAND_NONE, BRAND_STANDARD_MANAGEABILITY};
    use super::super::Firmware;
    use crate::heci::guid;

    /// FWCAPS GET_RULE `rule` over the simulated MKHI client, as LMS sends it: the rule's data.
    fn rule(fw: &Firmware, rule: u32) -> u32 {
        let h = fw.connect(guid::MKHI).expect("MKHI connects");
        let mut req = vec![0x03, 0x02, 0x00, 0x00];
        req.extend_from_slice(&rule.to_le_bytes());
        h.write(&req).unwrap();
        let r = h
            .read(Some(Instant::now() + Duration::from_secs(1)), false)
            .unwrap();
        h.close();
        assert_eq!(
            &r[..4],
            [0x03, 0x82, 0x00, 0x00],
            "rule {rule:#x}: {r:02x?}"
        );
        assert_eq!(&r[4..8], rule.to_le_bytes());
        assert_eq!(r[8], 4, "rule data length");
        u32::from_le_bytes(r[9..13].try_into().unwrap())
    }

    /// What LMS's Configurator decides from rules 0x1D and 0x20 (intel/lms
    /// `UNS/Configurator/Configurator.cpp`): port forwarding (the AMT port service) needs image
    /// type 4; the manageability services need brand 1–3 and the AMT bit of rule 0x20.
    fn lms_decision(platform: u32, enabled: u32) -> (bool, bool) {
        let image = (platform >> 8) & 0xF;
        let brand = (platform >> 12) & 0xF;
        let full_me = image == 4;
        (
            full_me,
            full_me && (1..=3).contains(&brand) && enabled & (1 << 2) != 0,
        )
    }

    #[test]
    fn platform_type_answers_per_profile_as_lms_reads_them() {
        for name in profile::BUILTIN {
            let fw = Firmware::from_profile_name(Some(name)).unwrap();
            let platform = rule(&fw, 0x1D);
            let (image, brand) = ((platform >> 8) & 0xF, (platform >> 12) & 0xF);
            let mobile = platform & 1 != 0;
            let desktop = platform & 2 != 0;
            assert!(mobile != desktop, "{name}: exactly one form factor");
            let laptop = fw.lock().profile.description.contains("laptop");
            assert_eq!(mobile, laptop, "{name}: form factor");
            let (full, manageability) = lms_decision(platform, rule(&fw, 0x20));
            match *name {
                "consumer" => {
                    assert_eq!((image, brand), (3, BRAND_NONE), "{name}");
                    assert_eq!((full, manageability), (false, false), "{name}");
                    assert_eq!(rule(&fw, 0), 0, "{name}: no features");
                }
                "ism" => {
                    assert_eq!((image, brand), (4, BRAND_STANDARD_MANAGEABILITY), "{name}");
                    assert_eq!((full, manageability), (true, true), "{name}");
                }
                _ => {
                    assert_eq!((image, brand), (4, BRAND_AMT), "{name}");
                    assert_eq!((full, manageability), (true, true), "{name}");
                }
            }
        }
    }

    #[test]
    fn amt_disabled_in_mebx_clears_the_enabled_bit_but_not_the_capability() {
        let mut p = profile::builtin("amt16.1").unwrap();
        p.amt_enabled = false;
        let fw = Firmware::new(p, super::super::faults::FaultPlan::new(Vec::new()), None);
        assert_ne!(rule(&fw, 0) & 4, 0, "capable of AMT");
        assert_eq!(rule(&fw, 0x20) & 4, 0, "AMT not enabled");
        assert_eq!(rule(&fw, 0x27) & 4, 0, "AMT not available");
        assert_eq!(
            lms_decision(rule(&fw, 0x1D), rule(&fw, 0x20)),
            (true, false)
        );
    }

    #[test]
    fn a_state_file_without_a_platform_type_derives_it_from_the_sku() {
        let mut p = profile::builtin("ism").unwrap();
        p.platform_type = None;
        assert_eq!(p.mkhi_platform_type(), profile::platform_type(16400, false));
        assert_eq!(
            (p.mkhi_platform_type() >> 12) & 0xF,
            BRAND_STANDARD_MANAGEABILITY
        );
    }

    #[test]
    fn an_unknown_rule_answers_a_failure_result() {
        let fw = Firmware::from_profile_name(None).unwrap();
        let h = fw.connect(guid::MKHI).unwrap();
        h.write(&[0x03, 0x02, 0x00, 0x00, 0x07, 0, 0, 0]).unwrap();
        let r = h
            .read(Some(Instant::now() + Duration::from_secs(1)), false)
            .unwrap();
        assert_eq!(r, [0x03, 0x82, 0x00, 0x01]);
    }
}
