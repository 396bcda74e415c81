//! The firmware's classes, by area. Each area module seeds the factory instances of its classes
//! (`seed`), computes the instances that reflect live firmware state (`computed`), and implements
//! its methods (`invoke`); [`super::model`] does the generic operations on the instance store.

mod cira;
pub use cira::remote_access_status;
mod general;
pub use general::amt_fqdn;
pub mod keystore;
mod network;
mod redirection;
mod remote_access;
mod rules;
mod setup;
pub mod tls;
mod wifi;

use super::model::Instance;
use crate::sim::profile::DeviceProfile;
use crate::sim::FirmwareCore;
use crate::wsman::envelope::{Element, Param};

/// The MAC as firmware writes it in WS-MAN (`A4-BB-6D-12-34-56`).
pub(super) fn dashed_mac(mac: &str) -> String {
    mac.replace(':', "-").to_ascii_uppercase()
}

/// The classes a factory-fresh AMT answers for, with their default instances.
pub fn seed_instances(p: &mut DeviceProfile) {
    general::seed(p);
    network::seed(p);
    tls::seed(p);
    redirection::seed(p);
    remote_access::seed(p);
    keystore::seed(p);
    wifi::seed(p);
    cira::seed(p);
}

/// Computed classes: their instance reflects the firmware's state at each read.
/// `read`: the instance is being read (Get/Enumerate): only a read draws a new ConfigurationNonce,
/// so AddNextCertInChain and AdminSetup keep the nonce the caller read and signed.
pub(super) fn computed(fw: &mut FirmwareCore, class: &str, read: bool) -> Option<Instance> {
    setup::computed(fw, class, read)
        .or_else(|| general::computed(class))
        .or_else(|| remote_access::computed(class))
        .or_else(|| cira::computed(fw, class))
}

/// The class's Put rules ([`rules`]): `Err` is the fault the firmware answers instead of storing.
/// Classes without rules accept any Put of known instances.
pub(super) fn check_put(
    fw: &FirmwareCore,
    class: &str,
    current: &Instance,
    body: &Element,
) -> Result<(), rules::PutRefusal> {
    redirection::check_put(fw, class, current, body)
        .or_else(|| general::check_put(class, current, body))
        .or_else(|| network::check_put(class, current, body))
        .or_else(|| wifi::check_put(fw, class, current, body))
        .or_else(|| tls::check_put(&fw.profile, class, current, body))
        .or_else(|| cira::check_put(class, current, body))
        .unwrap_or(Ok(()))
}

/// A Put whose target the class finds from the body (an association named by its references);
/// `None` for the classes that go through [`check_put`] and the generic store. `Ok(Some(_))`:
/// the instance the PutResponse carries (TLS's credential context); `Ok(None)`: an empty
/// PutResponse (CIRA's policy association).
pub(super) fn put_by_body(
    fw: &mut FirmwareCore,
    class: &str,
    body: &Element,
) -> Option<Result<Option<Instance>, rules::PutRefusal>> {
    cira::put_by_body(fw, class, body)
        .map(|r| r.map(|()| None))
        .or_else(|| tls::put_context(&mut fw.profile, class, body).map(|r| r.map(Some)))
}

/// Hex SHA-256 of a secret the firmware keeps (the simulator's stand-in for holding it: a test
/// can check which password arrived without the state file holding it).
pub fn secret_digest(secret: &str) -> String {
    use sha2::Digest as _;
    crate::amthi::codec::hex(&sha2::Sha256::digest(secret.as_bytes()))
}

/// Write-only properties, by class: (property, the hidden name its digest is kept under, whether
/// the property still reads back, empty). Firmware never returns these secrets.
const WRITE_ONLY: &[(&str, &str, &str, bool)] = &[
    (network::IEEE8021X, "Password", "PasswordHash", false),
    (cira::CREDENTIAL, "Secret", "Secret", false),
    (
        "IPS_KVMRedirectionSettingData",
        "RFBPassword",
        "RFBPasswordHash",
        true,
    ),
];

/// After a Put stored `target` of `class`: each write-only secret it was given is replaced by
/// its digest, so neither a Get nor the state file holds it.
pub(super) fn keep_write_only(class: &str, target: &mut Instance) {
    for &(_, name, kept_as, shown) in WRITE_ONLY.iter().filter(|w| w.0 == class) {
        let Some(at) = target.iter().position(|(k, _)| k == name) else {
            continue;
        };
        let given = std::mem::take(&mut target[at].1);
        if !shown {
            target.remove(at);
        }
        if !given.is_empty() {
            super::model::set_prop(
                target,
                &super::model::hidden(kept_as),
                &secret_digest(&given),
            );
        }
    }
}

/// After a Put was stored (instance `at` of `class`): what the firmware derives from it.
pub(super) fn after_put(fw: &mut FirmwareCore, class: &str, at: usize) {
    network::after_put(fw, class, at);
    wifi::after_put(fw, class, at);
}

/// The class's Delete rules: `Err` is the fault the firmware answers instead of deleting.
pub(super) fn check_delete(
    fw: &FirmwareCore,
    class: &str,
    doomed: &Instance,
) -> Result<(), rules::PutRefusal> {
    keystore::check_delete(fw, class, doomed)
        .or_else(|| cira::check_delete(fw, class, doomed))
        .unwrap_or(Ok(()))
}

/// After instances were deleted: what goes with them.
pub(super) fn after_delete(fw: &mut FirmwareCore, class: &str, removed: &[Instance]) {
    wifi::after_delete(fw, class, removed);
    cira::after_delete(fw, class, removed);
}

type Invoke = fn(&mut FirmwareCore, &str, &str, Option<&Element>, &str) -> Option<Vec<Param>>;

/// Method invocation; `None` when the class has no such method.
pub(super) fn invoke(
    fw: &mut FirmwareCore,
    class: &str,
    method: &str,
    input: Option<&Element>,
    user: &str,
) -> Option<Vec<Param>> {
    const AREAS: &[Invoke] = &[
        setup::invoke,
        general::invoke,
        redirection::invoke,
        remote_access::invoke,
        network::invoke,
        wifi::invoke,
        keystore::invoke,
        cira::invoke,
    ];
    AREAS
        .iter()
        .find_map(|area| area(fw, class, method, input, user))
}

/// WS-Transfer Create: the `ResourceCreated` body, or the fault; `None` when the class cannot be
/// created (the caller answers ActionNotSupported).
pub(super) fn create(
    fw: &mut FirmwareCore,
    class: &str,
    body: &Element,
) -> Option<Result<String, rules::PutRefusal>> {
    let r = tls::create(&mut fw.profile, class, body)?;
    if r.is_ok() {
        fw.changed();
    }
    Some(r)
}

/// Full unprovision: back to factory settings, user hashes gone (provisioning.md §2.7).
pub fn unprovision(p: &mut DeviceProfile) {
    p.control_mode = 0;
    p.provisioning_state = 0;
    p.admin_ha1.clear();
    p.mebx_password_set = false;
    p.hbased_server_cert_hash.clear();
    p.hbased_server_hash_algorithm = 0;
    p.cert_hashes.retain(|h| h.is_default);
    p.instances.clear();
    seed_instances(p);
}
