//! The CIRA classes of the simulated firmware, driven with the agent's typed calls over real
//! HTTP bytes (render → Digest → the web server → decode). Intel's wsman-messages drives the same
//! classes in tests/peer and through the RPS peer, so these rules are not only checked against
//! the agent's own requests.

use base64::Engine as _;

use super::tests::{activated, send as run};
use crate::secret::Secret;
use crate::sim::Firmware;
use crate::wsman::calls::{self, Instance, WsmanError};
use crate::wsman::classes::cira::{self, AppliesToMps, MpsServer, PolicyRule, Trigger};
use crate::wsman::classes::public_key_management as pkm;
use crate::wsman::digest::DigestClient;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const SERVER0: &str = "Intel(r) AMT:Management Presence Server 0";

fn items(f: &Firmware, c: &mut DigestClient, class: &str) -> Vec<Instance> {
    let ctx = run(f, c, cira::enumerate(class)).unwrap();
    run(f, c, cira::pull(class, &ctx)).unwrap().items
}

fn cert_b64(name: &str) -> String {
    let pem = std::fs::read(format!(
        "{}/tests/fixtures/cira/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    B64.encode(x509_parser::pem::parse_x509_pem(&pem).unwrap().1.contents)
}

fn return_value<T: std::fmt::Debug>(r: Result<T, WsmanError>) -> u32 {
    match r {
        Err(WsmanError::ReturnValue { value, .. }) => value,
        other => panic!("expected a ReturnValue, got {other:?}"),
    }
}

fn fault<T: std::fmt::Debug>(r: Result<T, WsmanError>) -> String {
    match r {
        Err(WsmanError::Fault(f)) => f.subcode.map(|s| s.local).unwrap_or_default(),
        other => panic!("expected a fault, got {other:?}"),
    }
}

fn add_server(f: &Firmware, c: &mut DigestClient, address: &str) -> Result<String, WsmanError> {
    run(
        f,
        c,
        cira::add_mp_server(address, 4433, "admin", &Secret::new("P@ssw0rd1")),
    )
}

#[test]
fn rpc_gos_cira_sequence_configures_the_firmware_and_amthi_reports_the_mps() {
    let (f, mut c) = activated(1);
    // The MPS root: a CA, added once (a second copy is a duplicate).
    run(
        &f,
        &mut c,
        pkm::add_trusted_root_certificate(&cert_b64("mps-root.pem")),
    )
    .unwrap();
    assert_eq!(
        return_value(run(
            &f,
            &mut c,
            pkm::add_trusted_root_certificate(&cert_b64("mps-root.pem"))
        )),
        2058
    );
    assert_eq!(add_server(&f, &mut c, "mps.example.com").unwrap(), SERVER0);
    let rule = run(
        &f,
        &mut c,
        cira::add_remote_access_policy_rule(Trigger::Periodic, 0, "AAAAAAAAABk=", SERVER0),
    )
    .unwrap();
    assert_eq!(rule, "Periodic");
    run(
        &f,
        &mut c,
        cira::add_remote_access_policy_rule(Trigger::UserInitiated, 300, "", SERVER0),
    )
    .unwrap();
    let applies: Vec<AppliesToMps> = items(&f, &mut c, cira::APPLIES)
        .iter()
        .map(AppliesToMps::from_instance)
        .collect();
    assert_eq!(applies.len(), 2);
    assert!(applies
        .iter()
        .all(|a| a.server == SERVER0 && a.mps_type == 0));
    for a in &applies {
        run(&f, &mut c, cira::put_applies_to_mps(a, 2, 0)).unwrap();
    }
    assert!(items(&f, &mut c, cira::APPLIES)
        .iter()
        .all(|i| AppliesToMps::from_instance(i).mps_type == 2));
    run(&f, &mut c, cira::user_initiated_request_state_change(32771)).unwrap();
    let env = run(&f, &mut c, cira::get_environment_detection()).unwrap();
    run(
        &f,
        &mut c,
        cira::put_environment_detection(&env, &["4f0c.example.com".into()]),
    )
    .unwrap();

    let saps = items(&f, &mut c, cira::SAP);
    let s = MpsServer::from_instance(&saps[0]);
    assert_eq!(
        (s.address.as_str(), s.port, s.info_format),
        ("mps.example.com", 4433, 201)
    );
    let creds = items(&f, &mut c, cira::CREDENTIAL);
    assert_eq!(creds.len(), 1);
    assert_eq!(creds[0].get("RemoteID"), Some("admin"));
    // The password is kept, never returned.
    assert!(!creds[0]
        .properties
        .iter()
        .any(|p| p.name.contains("Secret")));
    let core = f.lock();
    let held = &core.profile.instances["AMT_MPSUsernamePassword"][0];
    assert!(held
        .iter()
        .any(|(_, v)| *v == super::secret_digest("P@ssw0rd1")));
    // GET_REMOTE_ACCESS_CONNECTION_STATUS now follows: outside the enterprise (the DHCP domain
    // is not a detection domain), the MPS by name.
    assert_eq!(
        super::remote_access_status(&core.profile),
        Some((2, "mps.example.com".to_string()))
    );
}

#[test]
fn the_firmware_refuses_what_rules_forbid() {
    let (f, mut c) = activated(1);
    // The address must be written as its format says; an IP address needs a CN.
    let bad_format =
        cira::add_mp_server("mps.example.com", 4433, "admin", &Secret::new("x")).args(vec![]);
    let mut wrong = bad_format.clone();
    wrong.args[1] = calls::Arg::text("InfoFormat", 3);
    assert_eq!(return_value(run(&f, &mut c, wrong)), 36);
    let mut no_cn = cira::add_mp_server("10.0.0.5", 4433, "admin", &Secret::new("x"));
    no_cn.args[6] = calls::Arg::text("CN", "");
    assert_eq!(return_value(run(&f, &mut c, no_cn)), 36);
    // Port 0, a user name that is not alphanumeric, a password over 16 characters.
    assert_eq!(
        return_value(run(
            &f,
            &mut c,
            cira::add_mp_server("10.0.0.5", 0, "admin", &Secret::new("x"))
        )),
        36
    );
    assert_eq!(
        return_value(run(
            &f,
            &mut c,
            cira::add_mp_server("10.0.0.5", 4433, "ad min", &Secret::new("x"))
        )),
        36
    );
    assert_eq!(
        return_value(run(
            &f,
            &mut c,
            cira::add_mp_server("10.0.0.5", 4433, "admin", &Secret::new("12345678901234567"))
        )),
        36
    );
    // The same server twice is a duplicate; six servers at most.
    add_server(&f, &mut c, "10.0.0.5").unwrap();
    assert_eq!(return_value(add_server(&f, &mut c, "10.0.0.5")), 2058);
    for n in 1..6 {
        add_server(&f, &mut c, &format!("mps{n}.example.com")).unwrap();
    }
    assert_eq!(return_value(add_server(&f, &mut c, "mps9.example.com")), 23);
    // Rules: one per trigger, periodic data that decodes, an existing server, no trigger 3.
    let periodic = |data: &str, server: &str| {
        cira::add_remote_access_policy_rule(Trigger::Periodic, 0, data, server)
    };
    assert_eq!(return_value(run(&f, &mut c, periodic("AAAA", SERVER0))), 36);
    assert_eq!(
        return_value(run(
            &f,
            &mut c,
            periodic("AAAAAAAAABk=", "Intel(r) AMT:Management Presence Server 9")
        )),
        36
    );
    run(&f, &mut c, periodic("AAAAAAAAABk=", SERVER0)).unwrap();
    assert_eq!(
        return_value(run(&f, &mut c, periodic("AAAAAAAAABk=", SERVER0))),
        2058
    );
    let mut home = cira::add_remote_access_policy_rule(Trigger::Alert, 0, "", SERVER0);
    home.args[0] = calls::Arg::text("Trigger", 3);
    assert_eq!(return_value(run(&f, &mut c, home)), 36);
    // A server a rule applies to stays until the rule goes; then its credential goes with it.
    assert_eq!(
        fault(run(&f, &mut c, cira::delete_server(SERVER0))),
        "AccessDenied"
    );
    run(&f, &mut c, cira::delete_rule("Periodic")).unwrap();
    assert!(items(&f, &mut c, cira::APPLIES).is_empty());
    run(&f, &mut c, cira::delete_server(SERVER0)).unwrap();
    assert_eq!(items(&f, &mut c, cira::CREDENTIAL).len(), 5);
    // Deleting a rule that is not there is a fault (rps-protocol.md §9), the one rpc-go tolerates.
    assert_eq!(
        fault(run(&f, &mut c, cira::delete_rule("Alert"))),
        "DestinationUnreachable"
    );
    // User-initiated connections: 32768–32771 only.
    assert_eq!(
        return_value(run(
            &f,
            &mut c,
            cira::user_initiated_request_state_change(2)
        )),
        36
    );
    // Environment detection: DNS domains, five at most.
    let env = run(&f, &mut c, cira::get_environment_detection()).unwrap();
    let six: Vec<String> = (0..6).map(|n| format!("d{n}.example.com")).collect();
    assert_eq!(
        fault(run(&f, &mut c, cira::put_environment_detection(&env, &six))),
        "InvalidRepresentation"
    );
    assert_eq!(
        fault(run(
            &f,
            &mut c,
            cira::put_environment_detection(&env, &["not a domain".into()])
        )),
        "InvalidRepresentation"
    );
}

#[test]
fn a_server_certificate_is_no_root_and_a_rule_reads_back_as_added() {
    let (f, mut c) = activated(1);
    assert_eq!(
        return_value(run(
            &f,
            &mut c,
            pkm::add_trusted_root_certificate(&cert_b64("mps-server.pem"))
        )),
        2063
    );
    add_server(&f, &mut c, "192.168.0.208").unwrap();
    run(
        &f,
        &mut c,
        cira::add_remote_access_policy_rule(
            Trigger::Periodic,
            0,
            &cira::periodic_interval_data(3600),
            SERVER0,
        ),
    )
    .unwrap();
    let rules: Vec<PolicyRule> = items(&f, &mut c, cira::RULE)
        .iter()
        .map(PolicyRule::from_instance)
        .collect();
    assert_eq!(rules.len(), 1);
    assert_eq!(cira::periodic_interval(&rules[0].extended_data), Some(3600));
    let s = MpsServer::from_instance(&items(&f, &mut c, cira::SAP)[0]);
    assert_eq!((s.info_format, s.cn.as_str()), (3, "192.168.0.208"));
    // No detection domain: inside the enterprise. With the link down, AMTHI names no MPS
    // (rpc-go issue #1140).
    let mut core = f.lock();
    assert_eq!(
        super::remote_access_status(&core.profile),
        Some((0, "192.168.0.208".to_string()))
    );
    core.profile.wired.link_up = false;
    core.profile.wireless.link_up = false;
    assert_eq!(
        super::remote_access_status(&core.profile),
        Some((0, String::new()))
    );
}
