//! A thin synchronous driver around the AMTHI codec: one connection, one request at a time, a
//! deadline on every read, bounded reconnects after an ME reset, and a trace of every exchange.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::codec::hex;
use super::messages::*;
use super::{decode_reply, Command, DecodeError, PtStatus};
use crate::heci::{self, guid, HeciError, MeiConnection, MeiDevice, RetryPolicy};

#[derive(Debug, Clone, thiserror::Error)]
pub enum AmthiError {
    #[error(transparent)]
    Heci(#[from] HeciError),
    #[error("{command} returned {status}: {}", status.meaning())]
    Status {
        command: &'static str,
        status: PtStatus,
    },
    #[error("malformed {command} reply: {error}")]
    Malformed {
        command: &'static str,
        error: DecodeError,
    },
}

impl AmthiError {
    pub fn status(&self) -> Option<PtStatus> {
        match self {
            AmthiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub struct AmthiClient {
    device: Arc<dyn MeiDevice>,
    conn: Option<Box<dyn MeiConnection>>,
    timeout: Duration,
    policy: RetryPolicy,
}

/// How long one AMTHI reply may take. rpc-go uses 3 s; some firmware takes longer on the first
/// command after boot, so the default leaves room.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

impl AmthiClient {
    pub fn new(device: Arc<dyn MeiDevice>) -> AmthiClient {
        AmthiClient {
            device,
            conn: None,
            timeout: DEFAULT_TIMEOUT,
            policy: RetryPolicy::default(),
        }
    }

    pub fn with_timeout(mut self, t: Duration) -> AmthiClient {
        self.timeout = t;
        self
    }

    pub fn device(&self) -> &Arc<dyn MeiDevice> {
        &self.device
    }

    fn connection(&mut self) -> Result<&dyn MeiConnection, HeciError> {
        if self.conn.is_none() {
            self.conn = Some(heci::connect(
                self.device.as_ref(),
                guid::AMTHI,
                &self.policy,
            )?);
        }
        Ok(self.conn.as_deref().expect("connected above"))
    }

    /// Sends one request and returns the checked reply body (status SUCCESS).
    pub fn call(&mut self, command: Command, request: &[u8]) -> Result<Vec<u8>, AmthiError> {
        let mut resets = 0;
        loop {
            match self.exchange(command, request) {
                Err(HeciError::Reset { .. }) if resets < self.policy.reset_attempts => {
                    // The ME reset: the handle is dead. Reopen and ask again (reads are idempotent;
                    // a state-changing command that the reset interrupted was not executed).
                    resets += 1;
                    self.conn = None;
                    tracing::debug!(
                        command = command.name(),
                        attempt = resets,
                        "ME reset during exchange; reconnecting"
                    );
                    std::thread::sleep(self.policy.reset_delay);
                }
                Err(HeciError::Reset { client, .. }) => {
                    self.conn = None;
                    return Err(HeciError::Reset {
                        client,
                        attempts: resets,
                    }
                    .into());
                }
                Err(HeciError::Timeout { client, .. }) => {
                    // A late reply would be read as the answer to the next request: drop the handle.
                    self.conn = None;
                    return Err(HeciError::Timeout {
                        client,
                        timeout_ms: self.timeout.as_millis() as u64,
                    }
                    .into());
                }
                Err(e) => {
                    self.conn = None;
                    return Err(e.into());
                }
                Ok(reply) => return self.check(command, &reply),
            }
        }
    }

    fn exchange(&mut self, command: Command, request: &[u8]) -> Result<Vec<u8>, HeciError> {
        let timeout = self.timeout;
        let conn = self.connection()?;
        tracing::trace!(client = "AMTHI", command = command.name(), len = request.len(), bytes = %hex(request), "→ request");
        conn.send(request)?;
        let reply = conn.recv(Instant::now() + timeout)?;
        tracing::trace!(client = "AMTHI", command = command.name(), len = reply.len(), bytes = %redacted_hex(command, &reply), "← reply");
        Ok(reply)
    }

    fn check(&self, command: Command, msg: &[u8]) -> Result<Vec<u8>, AmthiError> {
        let reply = decode_reply(command, msg).map_err(|error| AmthiError::Malformed {
            command: command.name(),
            error,
        })?;
        if reply.status != PtStatus::Success {
            tracing::debug!(command = command.name(), status = %reply.status, "non-success status");
            return Err(AmthiError::Status {
                command: command.name(),
                status: reply.status,
            });
        }
        Ok(reply.body.to_vec())
    }

    fn decode<T>(command: Command, r: Result<T, DecodeError>) -> Result<T, AmthiError> {
        match r {
            Ok(v) => Ok(v),
            Err(error) => Err(AmthiError::Malformed {
                command: command.name(),
                error,
            }),
        }
    }

    pub fn code_versions(&mut self) -> Result<CodeVersions, AmthiError> {
        let c = Command::GetCodeVersions;
        let b = self.call(c, &request(c))?;
        let v = Self::decode(c, CodeVersions::decode(&b))?;
        tracing::trace!(decoded = ?v, "GET_CODE_VERSIONS");
        Ok(v)
    }

    pub fn uuid(&mut self) -> Result<AmtUuid, AmthiError> {
        let c = Command::GetUuid;
        let b = self.call(c, &request(c))?;
        let v = Self::decode(c, AmtUuid::decode(&b))?;
        tracing::trace!(decoded = %v.text(), "GET_UUID");
        Ok(v)
    }

    pub fn control_mode(&mut self) -> Result<ControlMode, AmthiError> {
        let c = Command::GetControlMode;
        let b = self.call(c, &request(c))?;
        let v = Self::decode(c, ControlMode::decode(&b))?;
        tracing::trace!(decoded = ?v, "GET_CONTROL_MODE");
        Ok(v)
    }

    pub fn provisioning_state(&mut self) -> Result<ProvisioningState, AmthiError> {
        let c = Command::GetProvisioningState;
        let b = self.call(c, &request(c))?;
        let v = Self::decode(c, ProvisioningState::decode(&b))?;
        tracing::trace!(decoded = ?v, "GET_PROVISIONING_STATE");
        Ok(v)
    }

    pub fn pki_dns_suffix(&mut self) -> Result<String, AmthiError> {
        let c = Command::GetPkiFqdnSuffix;
        let b = self.call(c, &request(c))?;
        let v = Self::decode(c, decode_ansi(&b, "GET_PKI_FQDN_SUFFIX"))?;
        tracing::trace!(decoded = %v, "GET_PKI_FQDN_SUFFIX");
        Ok(v)
    }

    pub fn local_system_account(&mut self) -> Result<LocalSystemAccount, AmthiError> {
        let c = Command::GetLocalSystemAccount;
        let b = self.call(c, &request_local_system_account())?;
        let v = Self::decode(c, LocalSystemAccount::decode(&b))?;
        tracing::trace!(decoded = ?v, "GET_LOCAL_SYSTEM_ACCOUNT");
        Ok(v)
    }

    pub fn lan_interface(&mut self, i: LanInterface) -> Result<LanInterfaceSettings, AmthiError> {
        let c = Command::GetLanInterfaceSettings;
        let b = self.call(c, &request_lan_interface(i))?;
        let v = Self::decode(c, LanInterfaceSettings::decode(&b))?;
        tracing::trace!(interface = ?i, decoded = ?v, "GET_LAN_INTERFACE_SETTINGS");
        Ok(v)
    }

    pub fn remote_access_status(&mut self) -> Result<RemoteAccessStatus, AmthiError> {
        let c = Command::GetRemoteAccessConnectionStatus;
        let b = self.call(c, &request(c))?;
        let v = Self::decode(c, RemoteAccessStatus::decode(&b))?;
        tracing::trace!(decoded = ?v, "GET_REMOTE_ACCESS_CONNECTION_STATUS");
        Ok(v)
    }

    pub fn hash_handles(&mut self) -> Result<Vec<u32>, AmthiError> {
        let c = Command::EnumerateHashHandles;
        let b = self.call(c, &request(c))?;
        let v = Self::decode(c, decode_hash_handles(&b))?;
        tracing::trace!(decoded = ?v, "ENUMERATE_HASH_HANDLES");
        Ok(v)
    }

    pub fn cert_hash_entry(&mut self, handle: u32) -> Result<CertHashEntry, AmthiError> {
        let c = Command::GetCertHashEntry;
        let b = self.call(c, &request_cert_hash_entry(handle))?;
        let v = Self::decode(c, CertHashEntry::decode(&b))?;
        tracing::trace!(handle, name = %v.name, algorithm = v.algorithm.name(), hash = %v.hash_hex(), default = v.is_default, active = v.is_active, "GET_CERTHASH_ENTRY");
        Ok(v)
    }

    /// Every hash entry, however many the firmware has.
    pub fn cert_hashes(&mut self) -> Result<Vec<CertHashEntry>, AmthiError> {
        let handles = self.hash_handles()?;
        handles
            .into_iter()
            .map(|h| self.cert_hash_entry(h))
            .collect()
    }

    pub fn unprovision(&mut self) -> Result<(), AmthiError> {
        self.call(Command::Unprovision, &request_unprovision(0))?;
        Ok(())
    }

    pub fn stop_configuration(&mut self) -> Result<(), AmthiError> {
        let c = Command::StopConfiguration;
        self.call(c, &request(c))?;
        Ok(())
    }

    pub fn start_configuration_hbased(
        &mut self,
        req: &StartConfigurationHBased,
    ) -> Result<HBasedReply, AmthiError> {
        let c = Command::StartConfigurationHBased;
        let b = self.call(c, &req.encode())?;
        Self::decode(c, HBasedReply::decode(&b))
    }
}

/// Hex of a reply with any secret bytes masked (the local system account's password).
pub fn redacted_hex(command: Command, msg: &[u8]) -> String {
    if command == Command::GetLocalSystemAccount && msg.len() > 16 {
        let mut m = msg.to_vec();
        let start = 16 + LSA_PASSWORD_RANGE.start;
        let end = (16 + LSA_PASSWORD_RANGE.end).min(m.len());
        if start < end {
            m[start..end].fill(b'*');
        }
        return hex(&m);
    }
    hex(msg)
}

/// Reads the watchdog client's "is change to AMT enabled" flags byte.
pub fn amt_enabled_flags(
    device: &dyn MeiDevice,
    timeout: Duration,
) -> Result<watchdog::AmtEnabledFlags, HeciError> {
    let conn = heci::connect(device, guid::WATCHDOG, &RetryPolicy::default())?;
    tracing::trace!(client = "WATCHDOG", command = "IS_CHANGE_TO_AMT_ENABLED", bytes = %hex(&watchdog::IS_CHANGE_TO_AMT_ENABLED), "→ request");
    conn.send(&watchdog::IS_CHANGE_TO_AMT_ENABLED)?;
    let reply = conn.recv(Instant::now() + timeout)?;
    tracing::trace!(client = "WATCHDOG", command = "IS_CHANGE_TO_AMT_ENABLED", bytes = %hex(&reply), "← reply");
    match reply.first() {
        Some(&b) => Ok(watchdog::AmtEnabledFlags(b)),
        None => Err(HeciError::Closed {
            client: "WATCHDOG (empty reply)".into(),
        }),
    }
}

/// SetAmtOperationalState over the watchdog client: `05 03 53 10 <state>`, answered by a header
/// echo and a u32 status (rpc-go.md §6.5).
pub fn set_amt_operational_state(
    device: &dyn MeiDevice,
    enabled: bool,
    timeout: Duration,
) -> Result<(), AmthiError> {
    let conn = heci::connect(device, guid::WATCHDOG, &RetryPolicy::default())?;
    let req = watchdog::set_operational_state(enabled);
    tracing::trace!(client = "WATCHDOG", command = "SET_AMT_OPERATIONAL_STATE", bytes = %hex(&req), "→ request");
    conn.send(&req)?;
    let reply = conn.recv(Instant::now() + timeout)?;
    tracing::trace!(client = "WATCHDOG", command = "SET_AMT_OPERATIONAL_STATE", bytes = %hex(&reply), "← reply");
    let status = match reply.get(4..8) {
        Some(b) => PtStatus::from_u32(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        None => {
            return Err(AmthiError::Malformed {
                command: "SET_AMT_OPERATIONAL_STATE",
                error: DecodeError {
                    what: "SET_AMT_OPERATIONAL_STATE",
                    detail: format!("reply of {} bytes, expected 8", reply.len()),
                },
            })
        }
    };
    if status != PtStatus::Success {
        return Err(AmthiError::Status {
            command: "SET_AMT_OPERATIONAL_STATE",
            status,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsa_hex_dump_masks_the_password() {
        let lsa = LocalSystemAccount {
            username: "$$OsAdmin".into(),
            password: crate::secret::Secret::new("SECRETSECRETSECRETSECRETSECRET12"),
        };
        let msg = super::super::encode_reply(
            Command::GetLocalSystemAccount.code(),
            PtStatus::Success,
            &lsa.encode(),
        );
        let h = redacted_hex(Command::GetLocalSystemAccount, &msg);
        assert!(!h.contains(&hex(b"SECRET")));
        assert!(h.contains(&hex(b"$$OsAdmin")));
    }
}
