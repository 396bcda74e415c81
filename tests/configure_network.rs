//! End to end: `amt-agent configure wired | wireless | wi-fi-sync | enablewifiport` against a
//! running `amt-sim` (socket, LME/APF), with its state persisted (`--state`) and every WS-MAN
//! request logged (`--wsman-log`): what was written, that a second run writes nothing, that
//! `--dry-run` writes nothing, and that a refusal comes before any request.
// The tests drive Linux processes (amt-sim, its Unix socket, signals); the Windows build is
// tested by tests/windows.rs, the .exe under Wine.
#![cfg(unix)]

mod common;

use common::*;
use serde_json::Value;

const PW: &str = "N3w-Admin!pw";

/// A simulator with a state file and a WS-MAN log, activated in CCM by the agent.
struct Amt {
    sim: Sim,
    keys: tempfile::TempDir,
}

impl Amt {
    /// `profile` (built-in name), with a wireless adapter when `wifi`; activated when `activate`.
    fn start(profile_name: &str, wifi: bool, activate: bool) -> Amt {
        let dir = tempfile::tempdir().unwrap();
        let pfile = write_profile(dir.path(), profile_name, |p| {
            if wifi {
                with_wifi(p)
            }
        });
        let socket = dir.path().join("sim.sock");
        let (st, log) = (
            dir.path().join("state.json").display().to_string(),
            dir.path().join("wsman.log").display().to_string(),
        );
        let sim = Sim::start_in(
            dir,
            socket,
            &[
                "--device-profile",
                &pfile,
                "--state",
                &st,
                "--wsman-log",
                &log,
            ],
        );
        let amt = Amt {
            sim,
            keys: tempfile::tempdir().unwrap(),
        };
        if activate {
            let o = agent_env(
                &["--device", &amt.dev(), "activate", "--local", "--ccm"],
                &[("AMT_PASSWORD", PW)],
            );
            assert_eq!(code(&o), 0, "activate: {}", stderr(&o));
        }
        amt
    }

    fn dev(&self) -> String {
        self.sim.device()
    }

    fn state(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.sim.path("state.json")).unwrap())
            .unwrap()
    }

    /// Every instance of `class` in the state file, as maps (hidden properties included).
    fn instances(&self, class: &str) -> Vec<serde_json::Map<String, Value>> {
        self.state()["instances"][class]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|i| {
                i.as_array()
                    .unwrap()
                    .iter()
                    .map(|kv| (kv[0].as_str().unwrap().to_string(), kv[1].clone()))
                    .collect()
            })
            .collect()
    }

    fn log(&self) -> Vec<(String, String, String)> {
        std::fs::read_to_string(self.sim.path("wsman.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                (f[1].into(), f[2].into(), f[3].into())
            })
            .collect()
    }

    /// `Class.Operation` of every request that can change AMT, from request `from` on.
    fn writes_since(&self, from: usize) -> Vec<String> {
        const READS: &[&str] = &["Get", "Enumerate", "Pull"];
        self.log()[from..]
            .iter()
            .filter(|(_, op, _)| !READS.contains(&op.as_str()))
            .map(|(c, op, _)| format!("{c}.{op}"))
            .collect()
    }

    fn configure_env(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let dev = self.dev();
        let mut a = vec!["--device", &dev, "configure"];
        a.extend_from_slice(args);
        let mut e = vec![("AMT_PASSWORD", PW)];
        e.extend_from_slice(env);
        agent_env(&a, &e)
    }

    fn configure(&self, args: &[&str]) -> std::process::Output {
        self.configure_env(args, &[])
    }

    /// A fixture key copied with mode 600 (git keeps no modes; the agent refuses readable keys).
    fn key(&self, name: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let to = self.keys.path().join(name);
        std::fs::copy(fixture(name), &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
        to.display().to_string()
    }
}

fn fixture(name: &str) -> String {
    repo_file(&format!("tests/fixtures/ieee8021x/{name}"))
        .display()
        .to_string()
}

fn json_out(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(o), stderr(o)))
}

fn prop<'a>(i: &'a serde_json::Map<String, Value>, k: &str) -> &'a str {
    i.get(k).and_then(Value::as_str).unwrap_or("")
}

const STATIC: &[&str] = &[
    "wired",
    "--ip-address",
    "192.168.7.50",
    "--subnet-mask",
    "255.255.255.0",
    "--gateway",
    "192.168.7.1",
    "--primary-dns",
    "192.168.7.2",
];

#[test]
fn wired_static_then_dhcp_is_written_once_and_amtinfo_follows() {
    let amt = Amt::start("amt16.1", false, true);
    // --dry-run: the call, nothing written.
    let n = amt.log().len();
    let mut dry = STATIC.to_vec();
    dry.push("--dry-run");
    let o = amt.configure(&dry);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("AMT_EthernetPortSettings.Put("),
        "{}",
        stdout(&o)
    );
    assert!(amt.writes_since(n).is_empty());

    let n = amt.log().len();
    let o = amt.configure(STATIC);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(amt.writes_since(n), ["AMT_EthernetPortSettings.Put"]);
    let port = &amt.instances("AMT_EthernetPortSettings")[0];
    assert_eq!(
        (
            prop(port, "DHCPEnabled"),
            prop(port, "IpSyncEnabled"),
            prop(port, "SharedStaticIp")
        ),
        ("false", "false", "false")
    );
    assert_eq!(prop(port, "IPAddress"), "192.168.7.50");
    assert_eq!(prop(port, "DefaultGateway"), "192.168.7.1");
    // The ME's own view (AMTHI GetLANInterfaceSettings) follows.
    let info = agent(&["--device", &amt.dev(), "amtinfo", "--lan"]);
    assert!(
        stdout(&info).contains("AMT IP Address\t\t: 192.168.7.50"),
        "{}",
        stdout(&info)
    );
    assert!(
        stdout(&info).contains("DHCP Enabled \t\t: false"),
        "{}",
        stdout(&info)
    );

    // A second run writes nothing and says so.
    let n = amt.log().len();
    let o = amt.configure(STATIC);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("nothing to change"), "{}", stdout(&o));
    assert!(amt.writes_since(n).is_empty(), "{:?}", amt.writes_since(n));

    // Host-synchronised static, then DHCP again, with --json.
    let o = amt.configure(&["wired", "--static", "--ip-sync"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let port = &amt.instances("AMT_EthernetPortSettings")[0];
    assert_eq!(
        (
            prop(port, "DHCPEnabled"),
            prop(port, "IpSyncEnabled"),
            prop(port, "SharedStaticIp")
        ),
        ("false", "true", "true")
    );
    let o = amt.configure(&["--json", "wired", "--dhcp"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j = json_out(&o);
    assert_eq!(j["command"], "wired");
    assert_eq!(j["status"], "changed");
    assert_eq!(j["settings"]["wired"]["dhcpEnabled"], true);
    assert_eq!(j["settings"]["wired"]["ipAddress"], "10.0.0.42");
    assert_eq!(j["changes"][0]["setting"], "wired addressing");
}

#[test]
fn bad_addresses_are_refused_with_rpc_go_codes_before_any_request() {
    let amt = Amt::start("amt16.1", false, true);
    let n = amt.log().len();
    let with = |i: usize, v: &str| {
        let mut a: Vec<String> = STATIC.iter().map(|s| s.to_string()).collect();
        a[i] = v.into();
        a
    };
    let cases: Vec<(Vec<String>, i32)> = vec![
        (with(2, "192.168.7.300"), 27),
        (with(4, "255.0.255.0"), 29),
        (with(6, "10.9.9.9"), 30),
        (with(8, "8.8.8"), 31),
        (
            [
                STATIC.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                vec!["--secondary-dns".into(), "224.0.0.9".into()],
            ]
            .concat(),
            32,
        ),
        (
            [
                STATIC.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                vec!["--dhcp".into()],
            ]
            .concat(),
            33,
        ),
    ];
    for (args, want) in cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = amt.configure(&a);
        assert_eq!(code(&o), want, "{a:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("error:") && err.contains("help:"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // Refused before anything went to AMT: no request at all.
    assert_eq!(amt.log().len(), n);
    // JSON errors carry the code.
    let o = amt.configure(&["--json", "wired", "--ip-address", "0.0.0.0"]);
    assert_eq!(code(&o), 27);
    assert_eq!(json_out(&o)["exitCode"], 27);
}

#[test]
fn not_activated_is_115_and_no_wired_port_is_137() {
    let amt = Amt::start("amt16.1", false, false);
    let o = amt.configure(&["wired", "--dhcp"]);
    assert_eq!(code(&o), 115, "{}", stderr(&o));
    let o = amt.configure(&["wireless", "--purge"]);
    assert_eq!(code(&o), 115, "{}", stderr(&o));
    let o = amt.configure(&["wifisync"]);
    assert_eq!(code(&o), 115, "{}", stderr(&o));
    assert!(amt.log().is_empty(), "a refusal sent requests");

    // A wireless-only machine: no wired port to configure.
    let dir = tempfile::tempdir().unwrap();
    let pfile = write_profile(dir.path(), "amt16.1", |p| {
        p["wired"]["mac"] = "00:00:00:00:00:00".into();
        with_wifi(p);
    });
    let socket = dir.path().join("sim.sock");
    let sim = Sim::start_in(dir, socket, &["--device-profile", &pfile]);
    let dev = sim.device();
    let o = agent_env(
        &["--device", &dev, "activate", "--local", "--ccm"],
        &[("AMT_PASSWORD", PW)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = agent_env(
        &["--device", &dev, "configure", "wired", "--dhcp"],
        &[("AMT_PASSWORD", PW)],
    );
    assert_eq!(code(&o), 137, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("help: configure the wireless port"),
        "{}",
        stderr(&o)
    );
}

fn eap_tls(amt: &Amt) -> Vec<String> {
    vec![
        "wired".into(),
        "--dhcp".into(),
        "--ieee8021x-profile-name".into(),
        "wiredTls".into(),
        "--ieee8021x-username".into(),
        "amt-client".into(),
        "--ieee8021x-client-cert".into(),
        fixture("client.pem"),
        "--ieee8021x-private-key".into(),
        amt.key("client.key"),
        "--ieee8021x-ca-cert".into(),
        fixture("ca.pem"),
    ]
}

#[test]
fn wired_eap_tls_adds_what_amt_lacks_binds_it_and_turns_off_cleanly() {
    let amt = Amt::start("amt16.1", false, true);
    let args = eap_tls(&amt);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let n = amt.log().len();
    let o = amt.configure(&a);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        amt.writes_since(n),
        [
            "AMT_PublicKeyManagementService.AddKey",
            "AMT_PublicKeyManagementService.AddCertificate",
            "AMT_PublicKeyManagementService.AddTrustedRootCertificate",
            "IPS_IEEE8021xSettings.Put",
            "IPS_IEEE8021xSettings.SetCertificates",
        ]
    );
    let x = &amt.instances("IPS_IEEE8021xSettings")[0];
    assert_eq!(
        (prop(x, "Enabled"), prop(x, "AuthenticationProtocol")),
        ("2", "0")
    );
    assert_eq!(prop(x, "Username"), "amt-client");
    assert_eq!(amt.instances("IPS_8021xCredentialContext").len(), 2);
    assert_eq!(amt.instances("AMT_PublicKeyCertificate").len(), 2);
    assert_eq!(amt.instances("AMT_PublicPrivateKeyPair").len(), 1);

    // Again: nothing added twice, nothing written.
    let n = amt.log().len();
    let o = amt.configure(&a);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(amt.writes_since(n).is_empty(), "{:?}", amt.writes_since(n));

    // Another client certificate: the new key and certificate, a new binding; the CA is reused.
    let mut b = args.clone();
    b[7] = fixture("client2.pem");
    b[9] = amt.key("client2.key");
    let b: Vec<&str> = b.iter().map(String::as_str).collect();
    let n = amt.log().len();
    let o = amt.configure(&b);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        amt.writes_since(n),
        [
            "IPS_IEEE8021xSettings.Put", // off first, as rpc-go
            "AMT_PublicKeyManagementService.AddKey",
            "AMT_PublicKeyManagementService.AddCertificate",
            "IPS_IEEE8021xSettings.Put",
            "IPS_IEEE8021xSettings.SetCertificates",
        ]
    );

    // No 802.1X flags: turned off, and what it used deleted (rpc-go prunes the same way).
    let o = amt.configure(&["wired", "--dhcp"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        prop(&amt.instances("IPS_IEEE8021xSettings")[0], "Enabled"),
        "3"
    );
    assert!(amt.instances("IPS_8021xCredentialContext").is_empty());
    // client2, its key and the CA went; the first client certificate and key stay (unused).
    assert_eq!(amt.instances("AMT_PublicKeyCertificate").len(), 1);
    assert_eq!(amt.instances("AMT_PublicPrivateKeyPair").len(), 1);
}

#[test]
fn wired_peap_takes_its_password_from_the_environment_keeps_only_a_digest_and_needs_force_to_resend(
) {
    let amt = Amt::start("amt16.1", false, true);
    let peap = [
        "wired",
        "--ieee8021x-profile-name",
        "wiredPeap",
        "--ieee8021x-authentication-protocol",
        "2",
        "--ieee8021x-username",
        "alice",
    ];
    // No password and no terminal: 117, nothing written.
    let n = amt.log().len();
    let o = amt.configure(&peap);
    assert_eq!(code(&o), 117, "{}", stderr(&o));
    assert!(amt.writes_since(n).is_empty());

    let env = [("IEEE8021X_PASSWORD", "Radius-Pa55")];
    let o = amt.configure_env(&peap, &env);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let x = &amt.instances("IPS_IEEE8021xSettings")[0];
    assert_eq!(
        (prop(x, "Enabled"), prop(x, "AuthenticationProtocol")),
        ("2", "2")
    );
    assert!(!std::fs::read_to_string(amt.sim.path("state.json"))
        .unwrap()
        .contains("Radius-Pa55"));
    // AMT cannot tell the password: a second run keeps it, --force sends it again.
    let n = amt.log().len();
    let o = amt.configure_env(&[&["--json"][..], &peap[..]].concat(), &env);
    assert_eq!(code(&o), 0);
    let j = json_out(&o);
    assert_eq!(j["status"], "unchanged");
    assert!(j["unchanged"].to_string().contains("--force"), "{j}");
    assert!(amt.writes_since(n).is_empty());
    let mut forced = peap.to_vec();
    forced.push("--force");
    let o = amt.configure_env(&forced, &[("IEE8021X_PASSWORD", "Radius-Pa56")]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        amt.writes_since(n),
        ["IPS_IEEE8021xSettings.Put", "IPS_IEEE8021xSettings.Put"]
    );
}

#[test]
fn switching_from_eap_tls_to_peap_leaves_no_certificate_bound() {
    let amt = Amt::start("amt16.1", false, true);
    let args = eap_tls(&amt);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(code(&amt.configure(&a)), 0);
    assert_eq!(amt.instances("IPS_8021xCredentialContext").len(), 2);
    let o = amt.configure_env(
        &[
            "wired",
            "--ieee8021x-profile-name",
            "wiredPeap",
            "--ieee8021x-authentication-protocol",
            "PEAP-MSCHAPv2",
            "--ieee8021x-username",
            "alice",
        ],
        &[("IEEE8021X_PASSWORD", "Radius-Pa55")],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(amt.instances("IPS_8021xCredentialContext").is_empty());
    let x = &amt.instances("IPS_IEEE8021xSettings")[0];
    assert_eq!(
        (prop(x, "Enabled"), prop(x, "AuthenticationProtocol")),
        ("2", "2")
    );
}

#[test]
fn wired_8021x_input_is_checked_before_any_request() {
    let amt = Amt::start("amt16.1", false, true);
    let n = amt.log().len();
    let base = eap_tls(&amt);
    let run = |args: &[String]| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        amt.configure(&a)
    };
    // Without the CA: 117.
    let o = run(&base[..10]);
    assert_eq!(code(&o), 117, "{}", stderr(&o));
    assert!(stderr(&o).contains("--ieee8021x-ca-cert"), "{}", stderr(&o));
    // The other client's key: 35.
    let mut wrong = base.clone();
    wrong[9] = amt.key("client2.key");
    assert_eq!(code(&run(&wrong)), 35);
    // A key file others can read: 34.
    let mut open = base.clone();
    let readable = amt.keys.path().join("open.key");
    std::fs::copy(fixture("client.key"), &readable).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    open[9] = readable.display().to_string();
    let o = run(&open);
    assert_eq!(code(&o), 34, "{}", stderr(&o));
    assert!(stderr(&o).contains("chmod 600"), "{}", stderr(&o));
    // A key path that is not there: 34, the path named.
    let mut gone = base.clone();
    gone[9] = "/nonexistent/client.key".into();
    let o = run(&gone);
    assert_eq!(code(&o), 34, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("/nonexistent/client.key"),
        "{}",
        stderr(&o)
    );
    // A client certificate where the CA belongs: 35.
    let mut ca = base.clone();
    ca[11] = fixture("client.pem");
    assert_eq!(code(&run(&ca)), 35);
    // 802.1X flags without a profile name: 117.
    let o = amt.configure(&["wired", "--dhcp", "--ieee8021x-username", "x"]);
    assert_eq!(code(&o), 117);
    assert_eq!(amt.log().len(), n, "a refusal sent requests");
}

fn psk(name: &str, ssid: &str, priority: &str) -> Vec<String> {
    [
        "wireless",
        "--profile-name",
        name,
        "--ssid",
        ssid,
        "--priority",
        priority,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

const PSK: (&str, &str) = ("PSK_PASSPHRASE", "correct horse battery");

#[test]
fn wireless_profiles_are_added_kept_replaced_and_purged() {
    let amt = Amt::start("amt16.1", true, true);
    let run = |args: Vec<String>, env: &[(&str, &str)]| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        amt.configure_env(&a, env)
    };
    let n = amt.log().len();
    let o = run(psk("office", "CorpNet", "1"), &[PSK]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        amt.writes_since(n),
        ["AMT_WiFiPortConfigurationService.AddWiFiSettings"]
    );
    let p = &amt.instances("CIM_WiFiEndpointSettings")[0];
    assert_eq!(
        (
            prop(p, "ElementName"),
            prop(p, "SSID"),
            prop(p, "AuthenticationMethod")
        ),
        ("office", "CorpNet", "6")
    );
    assert!(!std::fs::read_to_string(amt.sim.path("state.json"))
        .unwrap()
        .contains("correct horse"));

    // The same profile: nothing written.
    let n = amt.log().len();
    let o = run(psk("office", "CorpNet", "1"), &[PSK]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(amt.writes_since(n).is_empty(), "{:?}", amt.writes_since(n));
    // Changed: replaced (delete, add).
    let o = run(psk("office", "CorpNet5G", "1"), &[PSK]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        amt.writes_since(n),
        [
            "CIM_WiFiEndpointSettings.Delete",
            "AMT_WiFiPortConfigurationService.AddWiFiSettings"
        ]
    );
    // A second profile with WPA3-SAE, given with v2's spellings.
    let o = amt.configure_env(
        &[
            "addwifisettings",
            "-profileName",
            "lab",
            "-ssid",
            "LabNet",
            "-priority",
            "2",
            "-authenticationMethod",
            "WPA3SAE",
        ],
        &[PSK],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(amt.instances("CIM_WiFiEndpointSettings").len(), 2);

    // Refusals before any write: a taken priority (106), a bad name (116), a short passphrase (35).
    let n = amt.log().len();
    let o = run(psk("guest", "Guest", "2"), &[PSK]);
    assert_eq!(code(&o), 106, "{}", stderr(&o));
    assert!(stderr(&o).contains("lab"), "{}", stderr(&o));
    assert_eq!(code(&run(psk("guest-net", "Guest", "3"), &[PSK])), 116);
    assert_eq!(
        code(&run(
            psk("guest", "Guest", "3"),
            &[("PSK_PASSPHRASE", "short")]
        )),
        35
    );
    assert!(amt.writes_since(n).is_empty());

    // --purge with a profile: the others go, this one is added.
    let mut only = psk("guest", "Guest", "2");
    only.push("--purge".into());
    let o = run(only, &[PSK]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let names: Vec<String> = amt
        .instances("CIM_WiFiEndpointSettings")
        .iter()
        .map(|p| prop(p, "ElementName").to_string())
        .collect();
    assert_eq!(names, ["guest"]);
    // --purge alone, then again (nothing left: nothing written).
    assert_eq!(code(&amt.configure(&["wireless", "--purge"])), 0);
    assert!(amt.instances("CIM_WiFiEndpointSettings").is_empty());
    let n = amt.log().len();
    let o = amt.configure(&["wireless", "--purge"]);
    assert_eq!(code(&o), 0);
    assert!(amt.writes_since(n).is_empty());
}

#[test]
fn a_wireless_8021x_profile_binds_its_certificates_once() {
    let amt = Amt::start("amt16.1", true, true);
    let key = amt.key("client.key");
    let args = [
        "wireless",
        "--profile-name",
        "corp",
        "--ssid",
        "Corp8021X",
        "--priority",
        "3",
        "--authentication-method",
        "7",
        "--ieee8021x-profile-name",
        "corpTls",
        "--ieee8021x-username",
        "amt-client",
        "--ieee8021x-client-cert",
        &fixture("client.pem"),
        "--ieee8021x-private-key",
        &key,
        "--ieee8021x-ca-cert",
        &fixture("ca.pem"),
    ];
    let n = amt.log().len();
    let o = amt.configure(&args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        amt.writes_since(n),
        [
            "AMT_PublicKeyManagementService.AddKey",
            "AMT_PublicKeyManagementService.AddCertificate",
            "AMT_PublicKeyManagementService.AddTrustedRootCertificate",
            "AMT_WiFiPortConfigurationService.AddWiFiSettings",
        ]
    );
    assert_eq!(amt.instances("CIM_IEEE8021xSettings").len(), 1);
    assert_eq!(amt.instances("CIM_CredentialContext").len(), 2);
    let n = amt.log().len();
    let o = amt.configure(&args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(amt.writes_since(n).is_empty(), "{:?}", amt.writes_since(n));
    // --json lists the profile with its 802.1X settings.
    let o = amt.configure(&[&["--json"][..], &args[..]].concat());
    let j = json_out(&o);
    assert_eq!(j["status"], "unchanged");
    assert_eq!(
        j["settings"]["profiles"][0]["ieee8021x"]["authenticationProtocol"],
        "EAP-TLS"
    );
}

#[test]
fn without_a_wireless_adapter_there_is_nothing_to_configure_and_exit_0() {
    let amt = Amt::start("amt16.1", false, true);
    let n = amt.log().len();
    let o = amt.configure_env(
        &psk("office", "CorpNet", "1")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        &[PSK],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("no wireless adapter"), "{}", stderr(&o));
    assert!(amt.writes_since(n).is_empty());
    let o = amt.configure(&["enablewifiport"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(amt.writes_since(n).is_empty());
}

#[test]
fn wifi_sync_and_enablewifiport_set_the_sync_and_the_port_once() {
    let amt = Amt::start("amt16.1", true, true);
    let n = amt.log().len();
    let o = amt.configure(&["enablewifiport"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        amt.writes_since(n),
        [
            "AMT_WiFiPortConfigurationService.Put",
            "CIM_WiFiPort.RequestStateChange"
        ]
    );
    let s = &amt.instances("AMT_WiFiPortConfigurationService")[0];
    assert_eq!(prop(s, "localProfileSynchronizationEnabled"), "3");
    assert_eq!(prop(s, "UEFIWiFiProfileShareEnabled"), "true");
    assert_eq!(
        prop(&amt.instances("CIM_WiFiPort")[0], "EnabledState"),
        "32769"
    );
    // v3's name with its defaults: the same state, nothing written.
    let n = amt.log().len();
    assert_eq!(code(&amt.configure(&["wi-fi-sync"])), 0);
    assert!(amt.writes_since(n).is_empty());
    // OS sync off (v3 `--oswifisync=false`).
    let o = amt.configure(&["wifisync", "--oswifisync=false"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        amt.writes_since(n),
        ["AMT_WiFiPortConfigurationService.Put"]
    );
    assert_eq!(
        prop(
            &amt.instances("AMT_WiFiPortConfigurationService")[0],
            "localProfileSynchronizationEnabled"
        ),
        "0"
    );

    // AMT 15: no UEFI profile sharing; the flag is moot and nothing is refused.
    let amt15 = Amt::start("amt15", true, true);
    let o = amt15.configure(&["--json", "wifisync"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let j = json_out(&o);
    assert_eq!(j["settings"]["uefiWiFiProfileShareSupported"], false);
    assert!(j["unchanged"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["value"] == "not supported by this platform"));
}

#[test]
fn a_firmware_failure_is_one_line_with_the_subcommands_code() {
    let dir = tempfile::tempdir().unwrap();
    let pf = write_profile(dir.path(), "amt16.1", with_wifi);
    let socket = dir.path().join("sim.sock");
    let sim = Sim::start_in(
        dir,
        socket,
        &[
            "--device-profile",
            &pf,
            "--fault",
            "http500=AMT_WiFiPortConfigurationService",
        ],
    );
    let o = agent_env(
        &["--device", &sim.device(), "activate", "--local", "--ccm"],
        &[("AMT_PASSWORD", PW)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = agent_env(
        &[
            "--device",
            &sim.device(),
            "configure",
            "wireless",
            "--profile-name",
            "office",
            "--ssid",
            "CorpNet",
        ],
        &[("AMT_PASSWORD", PW), PSK],
    );
    assert_eq!(code(&o), 106, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("AddWiFiSettings") && err.contains("help:"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
