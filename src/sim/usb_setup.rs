//! USB provisioning as MEBx does it at POST (provisioning.md §5.5): read setup.bin, pick the next
//! record, authenticate with the current MEBx password, and apply the variables the simulator
//! models to the device profile.
//!
//! Modelled: 1.1/1.2 (MEBx password), 1.3 (AMT on/off), 2.3 (PKI DNS suffix), 2.6 (factory hashes
//! on/off), 2.7 = 2 (delete user hashes), 2.8 (add a root hash, IsDefault=0, IsActive=1).
//! Other catalogue variables are accepted and not modelled.
//!
//! UNCONFIRMED MEBx behaviours (chosen here, not documented by Intel):
//! - a format violation (§5 rules, see `SetupBin::check`) refuses the whole file rather than
//!   skipping the bad variable;
//! - once the MEBx password was changed, the simulator (which keeps no MEBx password) cannot check
//!   1.1 and accepts it with a warning; a real MEBx compares it;
//! - the MEBx password strength rule (8–32, upper, lower, digit, symbol) is applied to 1.2 as
//!   SetMEBxPassword applies it;
//! - a hash already present is not added twice (the entry is re-activated and renamed);
//! - a device that is not pre-provisioned ignores USB provisioning (here: refused with an error);
//! - SHA-1 hashes (algorithm 1) are refused from AMT 16 on;
//! - 2.7 = 2 ("Delete") removes every user-added hash before 2.8 adds any;
//! - for a consumable file the BIOS increments DataRecordsConsumed on the stick.

use crate::amthi::codec::hex;
use crate::amthi::HashAlgorithm;
use crate::provisioning::setupbin::{mebx_password_problem, SetupBin, Value};

use super::profile::{DeviceProfile, HashEntry};

/// What consuming the file did, for the log.
#[derive(Debug, Default)]
pub struct Consumed {
    /// The record used (1-based).
    pub record: usize,
    pub notes: Vec<String>,
    /// The file with DataRecordsConsumed incremented, when the header lets records be consumed.
    pub updated_file: Option<SetupBin>,
}

/// Applies the next record of `file` to `p`, or says why MEBx would refuse the file. The
/// profile is only changed when the whole record is acceptable.
pub fn consume(p: &mut DeviceProfile, file: &SetupBin) -> Result<Consumed, String> {
    let fatal: Vec<String> = file
        .check()
        .into_iter()
        .filter(|i| i.fatal)
        .map(|i| i.message)
        .collect();
    if !fatal.is_empty() {
        return Err(fatal.join("; "));
    }
    if p.provisioning_state != 0 {
        return Err(format!(
            "the device is not pre-provisioned (provisioning state {}); MEBx only takes USB provisioning on a pre-provisioned device",
            p.provisioning_state
        ));
    }
    let index = if file.header.do_not_consume() {
        0
    } else {
        file.header.data_records_consumed as usize
    };
    let rec = file
        .next_record()
        .ok_or_else(|| "no record left to consume".to_string())?;
    if !rec.valid() {
        return Err(format!("record {} is not marked valid", index + 1));
    }

    let mut next = p.clone();
    let mut out = Consumed {
        record: index + 1,
        ..Default::default()
    };
    let major: u16 = next
        .amt_version()
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);

    // MEBx authenticates first (§5.5).
    let current = match rec.get(1, 1).map(|v| &v.value) {
        Some(Value::Secret(s)) => s.expose().to_string(),
        _ => return Err("1.1 Current MEBx Password is missing".into()),
    };
    if !next.mebx_password_set {
        if current != "admin" {
            return Err(
                "1.1 Current MEBx Password does not match the device's (factory default: admin)"
                    .into(),
            );
        }
    } else {
        out.notes.push(
            "the MEBx password was already changed; the simulator cannot check 1.1 (UNCONFIRMED what MEBx does)"
                .into(),
        );
    }
    match rec.get(1, 2).map(|v| &v.value) {
        Some(Value::Secret(s)) => {
            if let Some(why) = mebx_password_problem(s.expose()) {
                return Err(format!("1.2 New MEBx Password is too weak: {why}"));
            }
            next.mebx_password_set = true;
            out.notes.push("MEBx password changed".into());
        }
        _ if current == "admin" && !next.mebx_password_set => {
            return Err(
                "1.2 New MEBx Password is required while the current one is the factory default"
                    .into(),
            )
        }
        _ => {}
    }

    for v in &rec.variables {
        match (v.module, v.id, &v.value) {
            (1, 1 | 2, _) => {}
            (1, 3, val) => {
                next.amt_enabled = val.as_u32() == Some(1);
                out.notes.push(format!("AMT enabled: {}", next.amt_enabled));
            }
            (2, 3, Value::Text(s)) => {
                next.pki_dns_suffix = s.clone();
                out.notes.push(format!("PKI DNS suffix set to {s}"));
            }
            (2, 6, val) => {
                let on = val.as_u32() == Some(1);
                for e in next.cert_hashes.iter_mut().filter(|e| e.is_default) {
                    e.is_active = on;
                }
                out.notes.push(format!(
                    "factory root hashes {}",
                    if on { "activated" } else { "deactivated" }
                ));
            }
            (2, 7, val) if val.as_u32() == Some(2) => {
                next.cert_hashes.retain(|e| e.is_default);
                out.notes.push("user-defined root hashes deleted".into());
            }
            (2, 8, Value::CertHash(c)) => {
                if c.algorithm == HashAlgorithm::Sha1 && major >= 16 {
                    return Err(format!(
                        "2.8 User Defined Certificate Addition: SHA-1 hashes are refused from AMT 16 on (this device runs {})",
                        next.amt_version()
                    ));
                }
                let hash = hex(&c.hash);
                let algorithm = c.algorithm.name().to_string();
                match next
                    .cert_hashes
                    .iter_mut()
                    .find(|e| e.hash.eq_ignore_ascii_case(&hash) && e.algorithm == algorithm)
                {
                    Some(e) => {
                        e.is_active = true;
                        if !e.is_default {
                            e.name = c.name.clone();
                        }
                    }
                    None => next.cert_hashes.push(HashEntry {
                        name: c.name.clone(),
                        algorithm: algorithm.clone(),
                        hash: hash.clone(),
                        is_default: false,
                        is_active: true,
                    }),
                }
                out.notes
                    .push(format!("root hash {algorithm} {hash} ({}) added", c.name));
            }
            _ => out
                .notes
                .push(format!("{} accepted, not modelled", v.label())),
        }
    }

    if !file.header.do_not_consume() {
        let mut f = file.clone();
        f.header.data_records_consumed += 1;
        out.updated_file = Some(f);
    }
    *p = next;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provisioning::setupbin::{CertHash, RootEnrolment};
    use crate::secret::Secret;

    fn enrolment(current: &str, new: Option<&str>) -> RootEnrolment {
        RootEnrolment {
            current_mebx_password: Secret::new(current),
            new_mebx_password: new.map(Secret::new),
            pki_dns_suffix: Some("corp.example.com".into()),
            deactivate_default_hashes: true,
            hash: CertHash {
                algorithm: HashAlgorithm::Sha256,
                hash: vec![0xab; 32],
                name: "Example Root".into(),
            },
        }
    }

    fn device() -> DeviceProfile {
        super::super::profile::builtin(super::super::profile::DEFAULT_PROFILE).unwrap()
    }

    #[test]
    fn a_root_enrolment_adds_an_active_user_hash_and_the_suffix() {
        let mut p = device();
        let defaults = p.cert_hashes.len();
        let c = consume(&mut p, &enrolment("admin", Some("N3w-P@ssword")).file()).unwrap();
        assert_eq!(c.record, 1);
        assert!(c.updated_file.is_none(), "a reusable file is not consumed");
        assert_eq!(p.cert_hashes.len(), defaults + 1);
        let e = p.cert_hashes.last().unwrap();
        assert_eq!(e.name, "Example Root");
        assert_eq!(e.algorithm, "SHA256");
        assert_eq!(e.hash, "ab".repeat(32));
        assert!(e.is_active && !e.is_default);
        assert!(p.cert_hashes[..defaults].iter().all(|e| !e.is_active));
        assert_eq!(p.pki_dns_suffix, "corp.example.com");
        assert!(p.mebx_password_set);
        // Consuming it again (a restart with --state) does not duplicate the hash.
        consume(&mut p, &enrolment("admin", Some("N3w-P@ssword")).file()).unwrap();
        assert_eq!(p.cert_hashes.len(), defaults + 1);
    }

    #[test]
    fn mebx_refusals_name_the_variable_and_change_nothing() {
        let before = device();
        let mut p = before.clone();
        let e = consume(&mut p, &enrolment("wrong", Some("N3w-P@ssword")).file()).unwrap_err();
        assert!(e.contains("1.1 Current MEBx Password"), "{e}");
        let e = consume(&mut p, &enrolment("admin", None).file()).unwrap_err();
        assert!(e.contains("1.2 New MEBx Password is required"), "{e}");
        let e = consume(&mut p, &enrolment("admin", Some("weak")).file()).unwrap_err();
        assert!(e.contains("too weak"), "{e}");
        assert_eq!(p, before);
    }

    #[test]
    fn a_consumable_file_advances_its_counter() {
        let mut f = enrolment("admin", Some("N3w-P@ssword")).file();
        f.header.flags = 0;
        let mut p = device();
        let c = consume(&mut p, &f).unwrap();
        assert_eq!(c.updated_file.unwrap().header.data_records_consumed, 1);
    }
}
