//! The simulated ME clients other than AMTHI: watchdog (state independence), MKHI, and LME.
//! Facts: transport.md §3.2–3.3, mei-clients.md.

use std::time::Instant;

use super::{ClientSession, FirmwareCore, Outgoing};

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
                let status: u32 = if fw.profile.new_interface {
                    fw.profile.amt_enabled = *state != 0;
                    fw.changed();
                    0
                } else {
                    // Only ME 16.1+ ("new interface") supports it.
                    3
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
