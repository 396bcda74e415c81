//! AMTHI replies: `decode_reply` for a command chosen by the first byte, then that command's typed
//! body decoder and the text accessors the agent prints. Input: `[command index][reply bytes]`.
#![no_main]

use amt_agent::amthi::{self, Command};
use libfuzzer_sys::fuzz_target;

/// The commands whose replies the agent decodes (src/amthi/client.rs), in a fixed order: the seed
/// maker (examples/fuzz_seeds.rs) writes the same index.
const COMMANDS: [Command; 13] = [
    Command::GetCodeVersions,
    Command::GetUuid,
    Command::GetControlMode,
    Command::GetProvisioningState,
    Command::GetPkiFqdnSuffix,
    Command::GetLocalSystemAccount,
    Command::GetLanInterfaceSettings,
    Command::GetRemoteAccessConnectionStatus,
    Command::EnumerateHashHandles,
    Command::GetCertHashEntry,
    Command::StartConfigurationHBased,
    Command::GetAmtState,
    Command::Unprovision,
];

fn typed(command: Command, body: &[u8]) {
    match command {
        Command::GetCodeVersions => {
            if let Ok(v) = amthi::CodeVersions::decode(body) {
                let _ = v.get("AMT");
                let _ = v.encode();
            }
        }
        Command::GetUuid => {
            if let Ok(u) = amthi::AmtUuid::decode(body) {
                let _ = amthi::AmtUuid::parse(&u.text());
            }
        }
        Command::GetControlMode => {
            if let Ok(m) = amthi::ControlMode::decode(body) {
                let _ = m.text();
            }
        }
        Command::GetProvisioningState => {
            if let Ok(s) = amthi::ProvisioningState::decode(body) {
                let _ = s.text();
            }
        }
        Command::GetPkiFqdnSuffix => {
            let _ = amthi::decode_ansi(body, "GET_PKI_FQDN_SUFFIX");
        }
        Command::GetLocalSystemAccount => {
            if let Ok(a) = amthi::LocalSystemAccount::decode(body) {
                let _ = a.encode();
            }
        }
        Command::GetLanInterfaceSettings => {
            if let Ok(s) = amthi::LanInterfaceSettings::decode(body) {
                let _ = (s.ip_text(), s.mac_text());
                assert_eq!(amthi::LanInterfaceSettings::decode(&s.encode()), Ok(s));
            }
        }
        Command::GetRemoteAccessConnectionStatus => {
            if let Ok(s) = amthi::RemoteAccessStatus::decode(body) {
                let _ = (s.network_text(), s.remote_text(), s.trigger_text());
            }
        }
        Command::EnumerateHashHandles => {
            if let Ok(h) = amthi::decode_hash_handles(body) {
                assert_eq!(amthi::encode_hash_handles(&h), body);
            }
        }
        Command::GetCertHashEntry => {
            if let Ok(e) = amthi::CertHashEntry::decode(body) {
                let _ = (e.hash_hex(), e.algorithm.name(), e.encode());
            }
        }
        Command::StartConfigurationHBased => {
            if let Ok(r) = amthi::HBasedReply::decode(body) {
                assert_eq!(r.encode(), body);
            }
            // The simulator decodes the request side of the same command from host bytes.
            if let Ok((req, _)) = amthi::StartConfigurationHBased::decode(body) {
                let _ = req.encode();
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&i, msg)) = data.split_first() else {
        return;
    };
    let command = COMMANDS[i as usize % COMMANDS.len()];
    match amthi::decode_reply(command, msg) {
        Ok(reply) => {
            let _ = (reply.status.code(), reply.status.to_string());
            typed(command, reply.body);
        }
        // A reply the header check refuses still reaches nothing else, but the typed decoders
        // must hold on their own: feed them what would have been the body.
        Err(e) => {
            let _ = e.to_string();
            typed(command, msg.get(amthi::HEADER_LEN + 4..).unwrap_or(&[]));
        }
    }
});
