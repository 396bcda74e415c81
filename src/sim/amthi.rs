//! The simulated AMTHI client: checks each request the way firmware does and answers byte for byte
//! in the layouts of transport.md §4.3 (variable-length code versions and hash lists, status-only
//! replies on error).

use std::time::Instant;

use super::{ClientSession, FirmwareCore, Outgoing};
use crate::amthi::codec::{unhex, Reader};
use crate::amthi::messages::*;
use crate::amthi::{encode_reply, Command, Header, PtStatus, HEADER_LEN};

pub struct AmthiSession;

impl ClientSession for AmthiSession {
    fn on_message(
        &mut self,
        fw: &mut FirmwareCore,
        msg: &[u8],
        now: Instant,
        out: &mut Vec<Outgoing>,
    ) {
        let mut r = Reader::new(msg);
        let Ok(header) = Header::decode(&mut r) else {
            tracing::warn!(
                len = msg.len(),
                "AMTHI: message shorter than a header; ignored"
            );
            return;
        };
        let command = Command::from_u32(header.command);
        let fault = fw.faults.for_reply(command.name());
        let (status, body) =
            if header.major != 1 || header.length as usize != msg.len() - HEADER_LEN {
                (PtStatus::InvalidMessageLength, Vec::new())
            } else if let Some(s) = fault.status {
                (PtStatus::from_u32(s), Vec::new())
            } else if fw.profile.not_ready_ms > 0
                && now.duration_since(fw.started).as_millis() < fw.profile.not_ready_ms as u128
            {
                (PtStatus::NotReady, Vec::new())
            } else {
                answer(fw, command, &msg[HEADER_LEN..])
            };
        tracing::debug!(command = command.name(), status = %status, "AMTHI");
        if fault.hang {
            tracing::debug!(command = command.name(), "fault: not answering");
            return;
        }
        // A non-success status carries no payload (transport.md §4.1, UNCONFIRMED for all firmware).
        let body = if status == PtStatus::Success {
            body
        } else {
            Vec::new()
        };
        let mut reply = encode_reply(header.command & !crate::amthi::RESPONSE_BIT, status, &body);
        if fault.truncate && reply.len() > 13 {
            reply.truncate(reply.len() - 3);
        }
        if fault.oversize {
            reply.resize(8192 + reply.len(), 0);
        }
        out.push(Outgoing {
            at: now + fault.delay,
            bytes: reply,
        });
    }
}

fn lan(l: &super::profile::Lan) -> LanInterfaceSettings {
    let mac = unhex(&l.mac.replace(':', "")).unwrap_or_default();
    let mut m = [0u8; 6];
    if mac.len() == 6 {
        m.copy_from_slice(&mac);
    }
    LanInterfaceSettings {
        enabled: l.enabled,
        ipv4: l
            .ipv4
            .parse::<std::net::Ipv4Addr>()
            .map(u32::from)
            .unwrap_or(0),
        dhcp_enabled: l.dhcp_enabled,
        dhcp_ip_mode: l.dhcp_mode,
        link_status: l.link_up as u8,
        mac: m,
    }
}

fn hash_entry(e: &super::profile::HashEntry) -> CertHashEntry {
    let mut hash = [0u8; 64];
    let raw = unhex(&e.hash).unwrap_or_default();
    let n = raw.len().min(64);
    hash[..n].copy_from_slice(&raw[..n]);
    let algorithm = HashAlgorithm::parse(&e.algorithm)
        .or_else(|| e.algorithm.parse::<u8>().ok().map(HashAlgorithm::from_u8))
        .unwrap_or(HashAlgorithm::Sha256);
    CertHashEntry {
        is_default: e.is_default,
        is_active: e.is_active,
        hash,
        algorithm,
        name: e.name.clone(),
    }
}

fn u32_body(v: u32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// Handles of the hash table: stable small integers, as firmware hands them out.
fn handle_of(index: usize) -> u32 {
    index as u32
}

fn answer(fw: &mut FirmwareCore, command: Command, body: &[u8]) -> (PtStatus, Vec<u8>) {
    let p = &fw.profile;
    let expect_len = |n: usize| body.len() == n;
    match command {
        Command::GetCodeVersions if expect_len(0) => {
            let cv = CodeVersions {
                bios_version: p.bios_version.clone(),
                versions: p
                    .code_versions
                    .iter()
                    .map(|(d, v)| VersionEntry {
                        description: d.clone(),
                        version: v.clone(),
                    })
                    .collect(),
            };
            (PtStatus::Success, cv.encode())
        }
        Command::GetUuid if expect_len(0) => match AmtUuid::parse(&p.uuid) {
            Some(u) => (PtStatus::Success, u.0.to_vec()),
            None => (PtStatus::InternalError, Vec::new()),
        },
        Command::GetControlMode if expect_len(0) => (PtStatus::Success, u32_body(p.control_mode)),
        Command::GetProvisioningState if expect_len(0) => {
            (PtStatus::Success, u32_body(p.provisioning_state))
        }
        Command::GetPkiFqdnSuffix if expect_len(0) => {
            (PtStatus::Success, encode_ansi(&p.pki_dns_suffix))
        }
        Command::GetLocalSystemAccount if expect_len(40) => {
            if p.control_mode != 0 {
                // The local system account exists for host-based setup only; once activated the
                // firmware refuses it (UNCONFIRMED which status; rpc-go never asks then).
                return (PtStatus::NotPermitted, Vec::new());
            }
            let lsa = LocalSystemAccount {
                username: p.lsa_username.clone(),
                password: crate::secret::Secret::new(p.lsa_password.clone()),
            };
            (PtStatus::Success, lsa.encode())
        }
        Command::GetLanInterfaceSettings if expect_len(4) => {
            let i = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
            match i {
                0 => (PtStatus::Success, lan(&p.wired).encode()),
                1 => (PtStatus::Success, lan(&p.wireless).encode()),
                _ => (PtStatus::InvalidParameter, Vec::new()),
            }
        }
        Command::GetRemoteAccessConnectionStatus if expect_len(0) => {
            // Once CIRA configured an MPS, the answer follows the WS-MAN model (network status
            // from environment detection, the MPS's name); before, the profile's values.
            let (network_status, mps_hostname) = super::amt::remote_access_status(p)
                .unwrap_or((p.ras.network_status, p.ras.mps_hostname.clone()));
            let r = RemoteAccessStatus {
                network_status,
                remote_status: p.ras.remote_status,
                remote_trigger: p.ras.remote_trigger,
                mps_hostname,
            };
            (PtStatus::Success, r.encode())
        }
        Command::EnumerateHashHandles if expect_len(0) => {
            let handles: Vec<u32> = (0..p.cert_hashes.len()).map(handle_of).collect();
            (PtStatus::Success, encode_hash_handles(&handles))
        }
        Command::GetCertHashEntry if expect_len(4) => {
            let h = u32::from_le_bytes([body[0], body[1], body[2], body[3]]) as usize;
            match p.cert_hashes.get(h) {
                Some(e) => (PtStatus::Success, hash_entry(e).encode()),
                None => (PtStatus::InvalidHandle, Vec::new()),
            }
        }
        Command::Unprovision if expect_len(4) => match p.control_mode {
            // Over AMTHI only CCM can be unprovisioned; ACM needs WS-MAN (rpc-go pkg/pthi comment).
            1 => {
                super::amt::unprovision(&mut fw.profile);
                fw.changed();
                (PtStatus::Success, Vec::new())
            }
            2 => (PtStatus::InvalidPtMode, Vec::new()),
            _ => (PtStatus::InvalidProvisioningState, Vec::new()),
        },
        Command::StartConfigurationHBased => start_configuration_hbased(fw, body),
        Command::StopConfiguration if expect_len(0) => {
            if p.provisioning_state == 1 {
                // Rolls the unfinished configuration back to pre-provisioning.
                super::amt::unprovision(&mut fw.profile);
                fw.changed();
                (PtStatus::Success, Vec::new())
            } else {
                (PtStatus::InvalidProvisioningState, Vec::new())
            }
        }
        Command::SetHostFqdn => {
            // MicroLMS: u16 length + char[256].
            let mut r = Reader::new(body);
            match r.ansi_string("fqdn") {
                Ok(s) => {
                    fw.profile.host_fqdn = s;
                    (PtStatus::Success, Vec::new())
                }
                Err(_) => (PtStatus::InvalidMessageLength, Vec::new()),
            }
        }
        Command::GetProvisioningMode if expect_len(0) => {
            let mut v = u32_body(if p.control_mode == 0 { 0 } else { 1 });
            v.extend_from_slice(&0u32.to_le_bytes());
            (PtStatus::Success, v)
        }
        Command::GetZeroTouchEnabled if expect_len(0) => (PtStatus::Success, u32_body(1)),
        Command::GetEhbcState if expect_len(0) => (PtStatus::Success, u32_body(1)),
        // A known command with the wrong request length.
        Command::GetCodeVersions
        | Command::GetUuid
        | Command::GetControlMode
        | Command::GetProvisioningState
        | Command::GetPkiFqdnSuffix
        | Command::GetLocalSystemAccount
        | Command::GetLanInterfaceSettings
        | Command::GetRemoteAccessConnectionStatus
        | Command::EnumerateHashHandles
        | Command::GetCertHashEntry
        | Command::Unprovision
        | Command::StopConfiguration
        | Command::GetProvisioningMode
        | Command::GetZeroTouchEnabled
        | Command::GetEhbcState => (PtStatus::InvalidMessageLength, Vec::new()),
        // What firmware answers to a command it does not implement is UNCONFIRMED; UNSUPPORTED says
        // so without pretending to be another error.
        _ => (PtStatus::Unsupported, Vec::new()),
    }
}

/// START_CONFIGURATION_HBASED (rpc-go.md §5.4 step 2, provisioning.md §3.6): on a TLS-enforced
/// (AMT 19+) device in pre-provisioning, records the provisioning certificate's leaf hash, moves to
/// provisioning state 1 ("in") and answers the hash of AMT's own TLS leaf, the certificate port
/// 16993 then presents (the simulator's On-Die-CA-shaped chain).
///
/// UNCONFIRMED firmware behaviour, chosen here and kept visible:
/// * devices without TLS enforcement: the reference gives no status for firmware that predates the
///   command, so they answer UNSUPPORTED, as for any command the simulator does not implement;
/// * outside pre-provisioning (activated, or a configuration already in progress) the answer is
///   INVALID_PROVISIONING_STATE: an "in provisioning" half-state is left with STOP_CONFIGURATION
///   (user-pains.md failure mode 1);
/// * a ServerHashAlgorithm other than 2 (SHA256) or 3 (SHA384), the only ones rpc-go sends, is
///   INVALID_PARAMETER.
fn start_configuration_hbased(fw: &mut FirmwareCore, body: &[u8]) -> (PtStatus, Vec<u8>) {
    if !fw.profile.tls_enforced {
        return (PtStatus::Unsupported, Vec::new());
    }
    let (req, layout) = match StartConfigurationHBased::decode(body) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "START_CONFIGURATION_HBASED: bad request");
            return (PtStatus::InvalidMessageLength, Vec::new());
        }
    };
    tracing::debug!(
        ?layout,
        algorithm = req.server_hash_algorithm,
        dns_suffixes = req.dns_suffixes.len(),
        "START_CONFIGURATION_HBASED"
    );
    if fw.profile.control_mode != 0 || fw.profile.provisioning_state != 0 {
        return (PtStatus::InvalidProvisioningState, Vec::new());
    }
    let len = match req.server_hash_algorithm {
        2 => 32,
        3 => 48,
        _ => return (PtStatus::InvalidParameter, Vec::new()),
    };
    fw.profile.hbased_server_cert_hash = crate::amthi::codec::hex(&req.server_cert_hash[..len]);
    fw.profile.hbased_server_hash_algorithm = req.server_hash_algorithm;
    fw.profile.provisioning_state = 1;
    fw.changed();
    let reply = super::tls::odca_chain().hbased_reply(req.server_hash_algorithm);
    (PtStatus::Success, reply.encode())
}

#[cfg(test)]
mod tests {
    use super::super::{faults::FaultPlan, profile, Firmware};
    use super::*;
    use crate::heci::{errno, guid};

    fn ask(fw: &Firmware, req: &[u8]) -> Vec<u8> {
        let h = fw.connect(guid::AMTHI).unwrap();
        h.write(req).unwrap();
        let r = h
            .read(
                Some(Instant::now() + std::time::Duration::from_secs(1)),
                false,
            )
            .unwrap();
        h.close();
        r
    }

    fn fw() -> Firmware {
        Firmware::new(
            profile::builtin("amt16.1").unwrap(),
            FaultPlan::new(vec![]),
            None,
        )
    }

    #[test]
    fn wrong_request_length_answers_invalid_message_length_with_no_payload() {
        let f = fw();
        let mut req = request(Command::GetUuid);
        req[8] = 4; // claims 4 more bytes that are not there
        let r = ask(&f, &req);
        assert_eq!(r.len(), 16);
        assert_eq!(&r[4..8], &(0x0400_005Cu32 | 0x0080_0000).to_le_bytes());
        assert_eq!(&r[8..12], &4u32.to_le_bytes());
        assert_eq!(&r[12..16], &4u32.to_le_bytes());
    }

    #[test]
    fn ccm_unprovisions_over_amthi_but_acm_answers_invalid_pt_mode() {
        let f = fw();
        f.lock().profile.control_mode = 2;
        let r = ask(&f, &request_unprovision(0));
        assert_eq!(&r[12..16], &3u32.to_le_bytes());
        f.lock().profile.control_mode = 1;
        let r = ask(&f, &request_unprovision(0));
        assert_eq!(&r[12..16], &0u32.to_le_bytes());
        assert_eq!(f.lock().profile.control_mode, 0);
    }

    #[test]
    fn a_second_handle_on_a_single_connection_client_gets_ebusy() {
        let f = fw();
        let a = f.connect(guid::AMTHI).unwrap();
        assert_eq!(f.connect(guid::AMTHI).err(), Some(errno::EBUSY));
        a.close();
        assert!(f.connect(guid::AMTHI).is_ok());
    }

    #[test]
    fn unknown_clients_answer_enotty() {
        let f = Firmware::new(
            profile::builtin("consumer").unwrap(),
            FaultPlan::new(vec![]),
            None,
        );
        assert_eq!(f.connect(guid::AMTHI).err(), Some(errno::ENOTTY));
        assert!(f.connect(guid::MKHI).is_ok());
    }
}
