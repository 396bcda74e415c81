//! The provisioning-certificate doctor against the simulated firmware: every rule has a
//! certificate that trips it and one that passes (made here with the openssl CLI), and for each
//! tripping chain the doctor's prediction (`cert check` against a running `amt-sim`) and the
//! simulated firmware's answer (`activate --local --acm --force`) agree. Plus successful local ACM
//! (with and without an intermediate), the CCM → ACM upgrade, PKCS#12 encodings, and `cert hash`.
//! And the domain trap (issue 11): the domain AMT trusts is read from the firmware, `-d` never
//! overrides it, and a leaf outside it is refused before anything is sent — on AMT 16, in a
//! CCM → ACM upgrade and on AMT 19 — until setup.bin enrols the certificate's domain.
// The tests drive Linux processes (amt-sim, its Unix socket, signals); the Windows build is
// tested by tests/windows.rs, the .exe under Wine.
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use amt_agent::provisioning::{
    self as prov, rules, FirmwareDomains, Machine, Outcome, TrustedHash,
};
use common::*;

const PFX_PASSWORD: &str = "Pfx-p4ss";
const AMT_PASSWORD: &str = "P@ssw0rd!";
const SUFFIX: &str = "example.com";

const CA_EXT: &str = "basicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\nsubjectKeyIdentifier = hash\n";
const LEAF_EXT: &str = "basicConstraints = CA:FALSE\nkeyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth, 2.16.840.1.113741.1.2.3\n";

/// Makes keys, certificates and PFX files with the openssl CLI in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    n: std::cell::Cell<u32>,
}

#[derive(Clone)]
struct Cert {
    crt: PathBuf,
    key: PathBuf,
    subject: String,
}

fn openssl(args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl CLI");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

impl Pki {
    fn new() -> Pki {
        Pki {
            dir: tempfile::tempdir().unwrap(),
            n: std::cell::Cell::new(0),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn fresh(&self, stem: &str) -> String {
        self.n.set(self.n.get() + 1);
        format!("{stem}{}", self.n.get())
    }

    fn key(&self, spec: &str) -> PathBuf {
        let k = self.path(&format!("{}.key", self.fresh("k")));
        match spec {
            "ec" => openssl(&[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                k.to_str().unwrap(),
            ]),
            bits => openssl(&[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                &format!("rsa_keygen_bits:{bits}"),
                "-out",
                k.to_str().unwrap(),
            ]),
        }
        k
    }

    /// A certificate for `subject` with extensions `ext`, signed by `issuer` (self-signed when
    /// `None`), with the digest and validity days given.
    fn issue(
        &self,
        subject: &str,
        key: &Path,
        ext: &str,
        issuer: Option<&Cert>,
        md: &str,
        days: &str,
    ) -> Cert {
        let stem = self.fresh("c");
        let csr = self.path(&format!("{stem}.csr"));
        let crt = self.path(&format!("{stem}.crt"));
        let conf = self.path(&format!("{stem}.ext"));
        std::fs::write(&conf, ext).unwrap();
        openssl(&[
            "req",
            "-new",
            "-key",
            key.to_str().unwrap(),
            "-subj",
            subject,
            "-out",
            csr.to_str().unwrap(),
        ]);
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            csr.to_str().unwrap(),
            md,
            "-days",
            days,
            "-set_serial",
            "7",
        ];
        let (ca, cakey);
        match issuer {
            Some(i) => {
                ca = i.crt.to_str().unwrap().to_string();
                cakey = i.key.to_str().unwrap().to_string();
                args.extend(["-CA", &ca, "-CAkey", &cakey]);
            }
            None => args.extend(["-signkey", key.to_str().unwrap()]),
        }
        if !ext.is_empty() {
            args.extend(["-extfile", conf.to_str().unwrap()]);
        }
        args.extend(["-out", crt.to_str().unwrap()]);
        openssl(&args);
        Cert {
            crt,
            key: key.to_path_buf(),
            subject: subject.trim_start_matches('/').replace('/', ", "),
        }
    }

    fn root(&self, cn: &str) -> Cert {
        let k = self.key("2048");
        self.issue(&format!("/CN={cn}"), &k, CA_EXT, None, "-sha256", "365")
    }

    fn leaf(&self, cn: &str, issuer: &Cert) -> Cert {
        let k = self.key("2048");
        self.issue(
            &format!("/CN={cn}"),
            &k,
            LEAF_EXT,
            Some(issuer),
            "-sha256",
            "365",
        )
    }

    /// PKCS#12 of `leaf` (with its key) and `others`; `legacy` picks 3DES/SHA-1 MAC.
    fn pfx(&self, leaf: &Cert, others: &[&Cert], legacy: bool) -> PathBuf {
        let stem = self.fresh("p");
        let bundle = self.path(&format!("{stem}.chain"));
        let mut text = String::new();
        for o in others {
            text += &std::fs::read_to_string(&o.crt).unwrap();
        }
        std::fs::write(&bundle, text).unwrap();
        let out = self.path(&format!("{stem}.pfx"));
        let pass = format!("pass:{PFX_PASSWORD}");
        let mut args = vec![
            "pkcs12",
            "-export",
            "-inkey",
            leaf.key.to_str().unwrap(),
            "-in",
            leaf.crt.to_str().unwrap(),
            "-passout",
            &pass,
            "-out",
            out.to_str().unwrap(),
        ];
        if !others.is_empty() {
            args.extend(["-certfile", bundle.to_str().unwrap()]);
        }
        if legacy {
            args.extend([
                "-certpbe",
                "PBE-SHA1-3DES",
                "-keypbe",
                "PBE-SHA1-3DES",
                "-macalg",
                "sha1",
            ]);
        }
        openssl(&args);
        out
    }

    /// A PEM file: the certificates, then `key`.
    fn pem(&self, certs: &[&Cert], key: &Path) -> PathBuf {
        let out = self.path(&format!("{}.pem", self.fresh("b")));
        let mut text = String::new();
        for c in certs {
            text += &std::fs::read_to_string(&c.crt).unwrap();
        }
        text += &std::fs::read_to_string(key).unwrap();
        std::fs::write(&out, text).unwrap();
        out
    }
}

fn der(c: &Cert) -> Vec<u8> {
    let pem = std::fs::read(&c.crt).unwrap();
    let p = x509_parser::pem::parse_x509_pem(&pem).unwrap().1;
    p.contents
}

fn sha256_hex(c: &Cert) -> String {
    prov::load::fingerprints(&der(c))[1].1.clone()
}

/// The common fixture: a trusted root, an intermediate under it, a root whose hash AMT has but
/// inactive, and a root AMT does not know.
struct World {
    pki: Pki,
    root: Cert,
    inter: Cert,
    inactive_root: Cert,
    unknown_root: Cert,
}

fn world() -> World {
    let pki = Pki::new();
    let root = pki.root("Test Root");
    let k = pki.key("2048");
    let inter = pki.issue(
        "/CN=Test Intermediate",
        &k,
        CA_EXT,
        Some(&root),
        "-sha256",
        "365",
    );
    let inactive_root = pki.root("Inactive Root");
    let unknown_root = pki.root("Unknown Root");
    World {
        pki,
        root,
        inter,
        inactive_root,
        unknown_root,
    }
}

/// One tripping case: the file, the rule it must trip, and what the firmware answers.
struct Case {
    rule: &'static str,
    file: PathBuf,
    subject: String,
    firmware: &'static str,
}

const CVF: &str = "AddNextCertInChain returned CERT_VERIFY_FAILED (4)";
const AUTH: &str = "AdminSetup returned AUTH_FAILED (5)";

fn tripping_cases(w: &World) -> Vec<Case> {
    let p = &w.pki;
    let mut v = Vec::new();
    let cn = format!("/CN=amt.{SUFFIX}");

    // No root in the file.
    let leaf = p.leaf(&format!("amt.{SUFFIX}"), &w.inter);
    v.push(Case {
        rule: "AMT-CHAIN-ROOT",
        file: p.pfx(&leaf, &[&w.inter], false),
        subject: w.inter.subject.clone(),
        firmware: CVF,
    });
    // Intermediate missing between leaf and root.
    v.push(Case {
        rule: "AMT-CHAIN-COMPLETE",
        file: p.pfx(&leaf, &[&w.root], false),
        subject: leaf.subject.clone(),
        firmware: CVF,
    });
    // Five certificates.
    let mut chain = vec![w.root.clone()];
    for i in 0..3 {
        let k = p.key("2048");
        let c = p.issue(
            &format!("/CN=Deep {i}"),
            &k,
            CA_EXT,
            Some(chain.last().unwrap()),
            "-sha256",
            "365",
        );
        chain.push(c);
    }
    let deep = p.leaf(&format!("deep.{SUFFIX}"), chain.last().unwrap());
    let others: Vec<&Cert> = chain.iter().rev().collect();
    v.push(Case {
        rule: "AMT-CHAIN-LENGTH",
        file: p.pfx(&deep, &others, false),
        subject: deep.subject.clone(),
        firmware: "AddNextCertInChain returned CERT_CHAIN_LENGTH_EXCEEDED (5)",
    });
    // Expired leaf.
    let k = p.key("2048");
    let expired = p.issue(&cn, &k, LEAF_EXT, Some(&w.root), "-sha256", "-1");
    v.push(Case {
        rule: "AMT-VALIDITY",
        file: p.pfx(&expired, &[&w.root], false),
        subject: expired.subject.clone(),
        firmware: CVF,
    });
    // EC leaf.
    let k = p.key("ec");
    let ec = p.issue(&cn, &k, LEAF_EXT, Some(&w.root), "-sha256", "365");
    v.push(Case {
        rule: "AMT-KEY-RSA",
        file: p.pfx(&ec, &[&w.root], false),
        subject: ec.subject.clone(),
        firmware: CVF,
    });
    // 1024-bit intermediate.
    let k = p.key("1024");
    let small = p.issue(
        "/CN=Small Intermediate",
        &k,
        CA_EXT,
        Some(&w.root),
        "-sha256",
        "365",
    );
    let under_small = p.leaf(&format!("amt.{SUFFIX}"), &small);
    v.push(Case {
        rule: "AMT-KEY-SIZE",
        file: p.pfx(&under_small, &[&small, &w.root], false),
        subject: small.subject.clone(),
        firmware: CVF,
    });
    // SHA-1 signed leaf.
    let k = p.key("2048");
    let sha1 = p.issue(&cn, &k, LEAF_EXT, Some(&w.root), "-sha1", "365");
    v.push(Case {
        rule: "AMT-SIG-SHA1",
        file: p.pfx(&sha1, &[&w.root], false),
        subject: sha1.subject.clone(),
        firmware: CVF,
    });
    // Intermediate without basicConstraints.
    let k = p.key("2048");
    let not_ca = p.issue(
        "/CN=Not A CA",
        &k,
        "subjectKeyIdentifier = hash\n",
        Some(&w.root),
        "-sha256",
        "365",
    );
    let l = p.leaf(&format!("amt.{SUFFIX}"), &not_ca);
    v.push(Case {
        rule: "AMT-ISSUER-CA",
        file: p.pfx(&l, &[&not_ca, &w.root], false),
        subject: not_ca.subject.clone(),
        firmware: CVF,
    });
    // Intermediate whose keyUsage lacks keyCertSign.
    let k = p.key("2048");
    let no_kcs = p.issue(
        "/CN=No KeyCertSign",
        &k,
        "basicConstraints = critical, CA:TRUE\nkeyUsage = critical, digitalSignature\n",
        Some(&w.root),
        "-sha256",
        "365",
    );
    let l = p.leaf(&format!("amt.{SUFFIX}"), &no_kcs);
    v.push(Case {
        rule: "AMT-ISSUER-KEYCERTSIGN",
        file: p.pfx(&l, &[&no_kcs, &w.root], false),
        subject: no_kcs.subject.clone(),
        firmware: CVF,
    });
    // Roots AMT does not trust (unknown; known but inactive).
    let l = p.leaf(&format!("amt.{SUFFIX}"), &w.unknown_root);
    v.push(Case {
        rule: "AMT-ROOT-HASH",
        file: p.pfx(&l, &[&w.unknown_root], false),
        subject: w.unknown_root.subject.clone(),
        firmware: CVF,
    });
    let l = p.leaf(&format!("amt.{SUFFIX}"), &w.inactive_root);
    v.push(Case {
        rule: "AMT-ROOT-HASH",
        file: p.pfx(&l, &[&w.inactive_root], false),
        subject: w.inactive_root.subject.clone(),
        firmware: CVF,
    });
    // `openssl x509 -req` without -extfile.
    let k = p.key("2048");
    let bare = p.issue(&cn, &k, "", Some(&w.root), "-sha256", "365");
    v.push(Case {
        rule: "AMT-LEAF-NO-EXTENSIONS",
        file: p.pfx(&bare, &[&w.root], false),
        subject: bare.subject.clone(),
        firmware: AUTH,
    });
    // serverAuth only, no AMT OID, no OU.
    let k = p.key("2048");
    let web = p.issue(
        &cn,
        &k,
        "basicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n",
        Some(&w.root),
        "-sha256",
        "365",
    );
    v.push(Case {
        rule: "AMT-LEAF-AMT-USAGE",
        file: p.pfx(&web, &[&w.root], false),
        subject: web.subject.clone(),
        firmware: AUTH,
    });
    // Someone else's key.
    let good = p.leaf(&format!("amt.{SUFFIX}"), &w.root);
    let other = p.key("2048");
    v.push(Case {
        rule: "AMT-KEY-MATCH",
        file: p.pem(&[&good, &w.root], &other),
        subject: good.subject.clone(),
        firmware: AUTH,
    });
    // CN in another domain.
    let foreign = p.leaf("amt.other.org", &w.root);
    v.push(Case {
        rule: "AMT-LEAF-DOMAIN",
        file: p.pfx(&foreign, &[&w.root], false),
        subject: foreign.subject.clone(),
        firmware: AUTH,
    });
    v
}

fn machine(w: &World) -> Machine {
    let entry = |c: &Cert, active: bool| TrustedHash {
        name: c.subject.clone(),
        algorithm: amt_agent::amthi::HashAlgorithm::Sha256,
        hash: prov::load::fingerprints(&der(c))[1]
            .1
            .as_bytes()
            .chunks(2)
            .map(|h| u8::from_str_radix(std::str::from_utf8(h).unwrap(), 16).unwrap())
            .collect(),
        is_active: active,
        is_default: false,
    };
    Machine {
        amt_version: Some((16, 1)),
        hashes: Some(vec![entry(&w.root, true), entry(&w.inactive_root, false)]),
        domains: Some(FirmwareDomains {
            pki_dns_suffix: SUFFIX.into(),
            wsman: Err("not read".into()),
        }),
        ..Machine::default()
    }
}

fn check_lib(file: &Path, m: &Machine) -> Vec<(String, Outcome, String)> {
    let pw = || Ok(amt_agent::secret::Secret::new(PFX_PASSWORD));
    let cert = prov::load::load(file.to_str().unwrap(), &pw).unwrap();
    rules::run(&rules::Input {
        cert: &cert,
        machine: m,
        now: prov::now(),
    })
    .into_iter()
    .map(|f| (f.rule.id.to_string(), f.outcome, f.certificate))
    .collect()
}

/// The fix the library gives for `rule` on `file` and machine `m`.
fn fix_of(file: &Path, m: &Machine, rule: &str) -> String {
    let pw = || Ok(amt_agent::secret::Secret::new(PFX_PASSWORD));
    let cert = prov::load::load(file.to_str().unwrap(), &pw).unwrap();
    rules::run(&rules::Input {
        cert: &cert,
        machine: m,
        now: prov::now(),
    })
    .into_iter()
    .find(|f| f.rule.id == rule && f.outcome == Outcome::Error)
    .map(|f| f.fix().to_string())
    .unwrap_or_else(|| panic!("{rule} does not fail"))
}

#[test]
fn every_rule_has_a_certificate_that_trips_it_and_one_that_passes() {
    let w = world();
    let m = machine(&w);
    let good = w.pki.leaf(&format!("amt.{SUFFIX}"), &w.inter);
    let good_file = w.pki.pfx(&good, &[&w.inter, &w.root], false);
    let passing = check_lib(&good_file, &m);
    for r in rules::RULES {
        assert!(
            passing
                .iter()
                .any(|(id, o, _)| id == r.id && *o == Outcome::Pass),
            "{} does not pass on a good chain: {passing:?}",
            r.id
        );
    }
    assert!(
        passing.iter().all(|(_, o, _)| *o == Outcome::Pass),
        "{passing:?}"
    );

    let mut tripped = std::collections::HashSet::new();
    for case in tripping_cases(&w) {
        let res = check_lib(&case.file, &m);
        let first_error = res.iter().find(|(_, o, _)| *o == Outcome::Error);
        assert_eq!(
            first_error.map(|(id, _, c)| (id.as_str(), c.as_str())),
            Some((case.rule, case.subject.as_str())),
            "{}: {res:?}",
            case.rule
        );
        tripped.insert(case.rule);
    }

    // The warnings: a CA-flagged leaf without serverAuth, issued under a pathlen:0 intermediate.
    let p = &w.pki;
    let k = p.key("2048");
    let pl0 = p.issue("/CN=Pathlen Zero", &k, "basicConstraints = critical, CA:TRUE, pathlen:0\nkeyUsage = critical, keyCertSign, cRLSign\n", Some(&w.root), "-sha256", "365");
    let k = p.key("2048");
    let mid = p.issue(
        "/CN=Below Pathlen Zero",
        &k,
        CA_EXT,
        Some(&pl0),
        "-sha256",
        "365",
    );
    let k = p.key("2048");
    let odd = p.issue(
        &format!("/CN=amt.{SUFFIX}"),
        &k,
        "basicConstraints = CA:TRUE\nextendedKeyUsage = clientAuth, 2.16.840.1.113741.1.2.3\n",
        Some(&mid),
        "-sha256",
        "365",
    );
    let res = check_lib(&p.pfx(&odd, &[&mid, &pl0, &w.root], false), &m);
    for (rule, subject) in [
        ("AMT-ISSUER-PATHLEN", "CN=Pathlen Zero"),
        ("AMT-LEAF-SERVERAUTH", "CN=amt.example.com"),
        ("AMT-LEAF-NOT-CA", "CN=amt.example.com"),
    ] {
        assert!(
            res.iter()
                .any(|(id, o, c)| id == rule && *o == Outcome::Warn && c == subject),
            "{rule}: {res:?}"
        );
        tripped.insert(rule);
    }
    assert!(res.iter().all(|(_, o, _)| *o != Outcome::Error), "{res:?}");

    // The OU stands in for the OID (and a leaf with only the OU has no extension to miss).
    let k = p.key("2048");
    let ou = p.issue(
        &format!("/OU=Intel(R) Client Setup Certificate/CN=amt.{SUFFIX}"),
        &k,
        "",
        Some(&w.root),
        "-sha256",
        "365",
    );
    let res = check_lib(&p.pfx(&ou, &[&w.root], false), &m);
    assert!(res.iter().all(|(_, o, _)| *o != Outcome::Error), "{res:?}");

    for r in rules::RULES {
        assert!(tripped.contains(r.id), "no certificate trips {}", r.id);
    }

    // Rules for newer firmware are not applicable to older: SHA-1 on AMT 11.
    let sha1 = tripping_cases(&w)
        .into_iter()
        .find(|c| c.rule == "AMT-SIG-SHA1")
        .unwrap();
    let old = Machine {
        amt_version: Some((11, 8)),
        ..machine(&w)
    };
    let res = check_lib(&sha1.file, &old);
    assert!(res
        .iter()
        .any(|(id, o, _)| id == "AMT-SIG-SHA1" && *o == Outcome::NotApplicable));
    assert!(res.iter().all(|(_, o, _)| *o != Outcome::Error), "{res:?}");
}

/// A firmware state: profile `base` whose hash list has the test root (active) and the inactive
/// root, whose PKI DNS suffix is `pki` and whose DHCP lease gave `dhcp` (option 15);
/// `control_mode` 1 makes it a CCM device with `AMT_PASSWORD`.
fn firmware(w: &World, base: &str, control_mode: u32, pki: &str, dhcp: &str) -> serde_json::Value {
    let mut p = profile(base);
    let hashes = p["cert_hashes"].as_array_mut().unwrap();
    for (c, active) in [(&w.root, true), (&w.inactive_root, false)] {
        hashes.push(serde_json::json!({
            "name": c.subject, "algorithm": "SHA256", "hash": sha256_hex(c),
            "is_default": false, "is_active": active,
        }));
    }
    p["pki_dns_suffix"] = pki.into();
    p["dhcp_dns_suffix"] = dhcp.into();
    if control_mode == 1 {
        use md5::Digest as _;
        let realm = "Digest:0123456789ABCDEF0123456789ABCDEF";
        p["digest_realm"] = realm.into();
        let ha1 = md5::Md5::digest(format!("admin:{realm}:{AMT_PASSWORD}").as_bytes());
        p["admin_ha1"] = ha1
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .into();
        p["control_mode"] = 1.into();
        p["provisioning_state"] = 2.into();
    }
    p
}

/// A simulator running `state` (kept in its directory as state.json), with `extra` arguments.
fn sim_of(state: &serde_json::Value, extra: &[&str]) -> Sim {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(&path, serde_json::to_string(state).unwrap()).unwrap();
    let socket = dir.path().join("sim.sock");
    let mut args = vec!["--state", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    Sim::start_in(dir, socket, &args)
}

/// A simulator whose hash list has the test root (active) and the inactive root, and whose PKI
/// DNS suffix is example.com; `control_mode` 1 makes it a CCM device with `AMT_PASSWORD`.
fn sim(w: &World, control_mode: u32) -> Sim {
    sim_of(
        &firmware(w, "amt16.1", control_mode, SUFFIX, "corp.example.com"),
        &[],
    )
}

fn env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("PROVISIONING_CERT_PASSWORD", PFX_PASSWORD),
        ("AMT_PASSWORD", AMT_PASSWORD),
    ]
}

fn activate(sim: &Sim, file: &Path, extra: &[&str]) -> std::process::Output {
    let dev = sim.device();
    let mut args = vec![
        "--device",
        &dev,
        "activate",
        "--local",
        "--acm",
        "--provisioning-cert",
        file.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    // The simulator frees the LME client when it notices the previous run's socket closed; on a
    // loaded machine that can outlast the agent's bounded EBUSY retries, so retry the run (bounded).
    for _ in 0..3 {
        let o = agent_env(&args, &env());
        if !stderr(&o).contains("is busy (EBUSY)") {
            return o;
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    agent_env(&args, &env())
}

fn cert_check(sim: &Sim, file: &Path) -> std::process::Output {
    let dev = sim.device();
    agent_env(
        &["--device", &dev, "cert", "check", file.to_str().unwrap()],
        &env(),
    )
}

/// The control mode `amtinfo --mode` prints, in rpc-go v2's words.
fn mode(sim: &Sim) -> String {
    let dev = sim.device();
    let out = stdout(&agent(&["--device", &dev, "amtinfo", "--mode"]));
    out.strip_prefix("Control Mode\t\t: ")
        .and_then(|m| m.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("not one Control Mode line: {out:?}"))
        .to_string()
}

#[test]
fn the_doctor_and_the_simulated_firmware_agree_on_every_broken_chain() {
    let w = world();
    let s = sim(&w, 0);
    for case in tripping_cases(&w) {
        // The prediction, against the machine (hashes and suffix read over AMTHI).
        let check = cert_check(&s, &case.file);
        let text = stdout(&check);
        assert_ne!(code(&check), 0, "{}: cert check passed:\n{text}", case.rule);
        assert!(
            text.contains(&format!("error[{}]", case.rule)),
            "{}:\n{text}",
            case.rule
        );
        let predicted = case.firmware.replace(" returned ", " returns ");
        assert!(
            text.contains(&format!(
                "result: activation would fail: {predicted} ({}",
                case.rule
            )),
            "{}:\n{text}",
            case.rule
        );

        // Without --force the doomed activation is refused, with the rule's exit code.
        let refused = activate(&s, &case.file, &[]);
        let rule = rules::RULES.iter().find(|r| r.id == case.rule).unwrap();
        assert_eq!(
            code(&refused),
            rule.exit.code() as i32,
            "{}: {}",
            case.rule,
            stderr(&refused)
        );
        assert!(
            stderr(&refused).contains("refusing to activate"),
            "{}",
            stderr(&refused)
        );

        // The simulated firmware's answer.
        let forced = activate(&s, &case.file, &["--force"]);
        let err = stderr(&forced);
        assert_ne!(
            code(&forced),
            0,
            "{}: activation succeeded:\n{err}",
            case.rule
        );
        let msg = err.lines().find(|l| l.starts_with("error: ")).unwrap_or("");
        assert!(
            msg.contains(case.firmware),
            "{}: firmware said: {msg}\n{err}",
            case.rule
        );
        // Every failure names the certificate, the rule, the firmware answer and the fix.
        assert!(
            err.contains(&format!("--> certificate: {}", case.subject)),
            "{}:\n{err}",
            case.rule
        );
        assert!(
            err.contains(&format!("[{}] {}", case.rule, case.subject)),
            "{}:\n{err}",
            case.rule
        );
        // The fix for this machine (the domain rule's names AMT's suffix), as the library says.
        let fix = fix_of(&case.file, &machine(&w), case.rule);
        assert!(
            err.contains(&format!("help: {fix}")),
            "{}:\n{err}",
            case.rule
        );
        assert_eq!(mode(&s), "pre-provisioning state");
    }
}

#[test]
fn local_acm_succeeds_with_and_without_an_intermediate_and_in_both_pkcs12_encodings() {
    let w = world();
    let direct = w.pki.leaf(&format!("amt.{SUFFIX}"), &w.root);
    let via = w.pki.leaf(&format!("amt.{SUFFIX}"), &w.inter);
    for file in [
        w.pki.pfx(&direct, &[&w.root], false),
        w.pki.pfx(&via, &[&w.root, &w.inter], true),
    ] {
        let s = sim(&w, 0);
        let check = cert_check(&s, &file);
        assert_eq!(code(&check), 0, "{}", stdout(&check));
        let o = activate(&s, &file, &[]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert!(stdout(&o).contains("activated in admin control mode"));
        assert_eq!(mode(&s), "activated in admin control mode");
        // Now in ACM: a second activation is refused.
        assert_eq!(code(&activate(&s, &file, &[])), 111);
    }
}

#[test]
fn a_ccm_device_is_upgraded_to_acm() {
    let w = world();
    let s = sim(&w, 1);
    assert_eq!(mode(&s), "activated in client control mode");
    let leaf = w.pki.leaf(&format!("amt.{SUFFIX}"), &w.root);
    let file = w.pki.pfx(&leaf, &[&w.root], false);
    let dev = s.device();
    let o = agent_env(
        &[
            "--device",
            &dev,
            "--json",
            "activate",
            "--local",
            "--acm",
            "--provisioning-cert",
            file.to_str().unwrap(),
        ],
        &env(),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["upgradedFromCcm"], true);
    assert_eq!(mode(&s), "activated in admin control mode");
}

/// The upgrade reads the current AMT password once (a second read would prompt twice at a
/// terminal): given as a flag, its warning is printed once.
#[test]
fn a_ccm_to_acm_upgrade_reads_the_amt_password_once() {
    let w = world();
    let s = sim(&w, 1);
    let leaf = w.pki.leaf(&format!("amt.{SUFFIX}"), &w.root);
    let file = w.pki.pfx(&leaf, &[&w.root], false);
    let dev = s.device();
    let o = agent_env(
        &[
            "--device",
            &dev,
            "activate",
            "--local",
            "--acm",
            "--provisioning-cert",
            file.to_str().unwrap(),
            "--password",
            AMT_PASSWORD,
        ],
        &[("PROVISIONING_CERT_PASSWORD", PFX_PASSWORD)],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(mode(&s), "activated in admin control mode");
    let warned = stderr(&o)
        .matches("AMT password was given on the command line")
        .count();
    assert_eq!(warned, 1, "{}", stderr(&o));
}

#[test]
fn pem_and_base64_load_like_pfx_and_a_wrong_password_is_exit_122() {
    let w = world();
    let leaf = w.pki.leaf(&format!("amt.{SUFFIX}"), &w.inter);
    // Out of order on purpose: the loader orders leaf → root.
    let pem = w.pki.pem(&[&w.root, &leaf, &w.inter], &leaf.key);
    let o = agent(&[
        "cert",
        "check",
        "--offline",
        "-d",
        SUFFIX,
        "--json",
        pem.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let subjects: Vec<&str> = v["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        ["CN=amt.example.com", "CN=Test Intermediate", "CN=Test Root"]
    );

    let pfx = w.pki.pfx(&leaf, &[&w.inter, &w.root], true);
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&pfx).unwrap());
    let o = agent_env(&["cert", "check", "--offline", "-d", SUFFIX, &b64], &env());
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let o = agent_env(
        &["cert", "check", "--offline", pfx.to_str().unwrap()],
        &[("PROVISIONING_CERT_PASSWORD", "wrong")],
    );
    assert_eq!(code(&o), 122, "{}", stderr(&o));
}

#[test]
fn cert_hash_prints_amt_style_fingerprints() {
    let w = world();
    let o = agent(&["cert", "hash", w.root.crt.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    let sha256 = sha256_hex(&w.root);
    assert!(text.contains(&sha256), "{text}");
    let colons: Vec<String> = sha256
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into())
        .collect();
    assert!(text.contains(&colons.join(":")), "{text}");
    // The same as openssl's SHA-1 fingerprint.
    let out = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-fingerprint",
            "-sha1",
            "-in",
            w.root.crt.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let fp = String::from_utf8_lossy(&out.stdout);
    let fp = fp.trim().rsplit('=').next().unwrap();
    assert!(text.contains(fp), "{text}\n{fp}");
}

/// An AMT 19 simulator (TLS enforced on the local ports, no AdminSetup) with the world's hashes
/// and suffix; its TLS root goes to a file the agent trusts with --amt-ca-file.
fn sim19(w: &World, extra: &[&str]) -> (Sim, String) {
    sim19_of(&firmware(w, "amt19", 0, SUFFIX, "corp.example.com"), extra)
}

/// An AMT 19 simulator running `state`; its TLS root goes to a file for --amt-ca-file.
fn sim19_of(state: &serde_json::Value, extra: &[&str]) -> (Sim, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(&path, serde_json::to_string(state).unwrap()).unwrap();
    let root = dir
        .path()
        .join("sim-root.pem")
        .to_str()
        .unwrap()
        .to_string();
    let socket = dir.path().join("sim.sock");
    let mut args = vec!["--state", path.to_str().unwrap(), "--tls-root-out", &root];
    args.extend_from_slice(extra);
    let sim = Sim::start_in(dir, socket, &args);
    (sim, root)
}

fn state19(sim: &Sim) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(sim.path("state.json")).unwrap()).unwrap()
}

fn modes(s: &serde_json::Value) -> (serde_json::Value, serde_json::Value) {
    (s["control_mode"].clone(), s["provisioning_state"].clone())
}

#[test]
fn local_acm_on_amt19_goes_through_secure_host_based_configuration() {
    let w = world();
    let leaf = w.pki.leaf(&format!("amt.{SUFFIX}"), &w.inter);
    let file = w.pki.pfx(&leaf, &[&w.root, &w.inter], false);
    let (s, root) = sim19(&w, &[]);
    let o = activate(
        &s,
        &file,
        &[
            "-vvv",
            "--amt-ca-file",
            &root,
            "--mebx-password",
            "Mebx-P4ssw0rd!",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("secure host-based configuration"),
        "{}",
        stdout(&o)
    );
    // Even at trace level no secret reaches the log.
    let lsa = state19(&s)["lsa_password"].as_str().unwrap().to_string();
    for secret in [AMT_PASSWORD, "Mebx-P4ssw0rd!", PFX_PASSWORD, lsa.as_str()] {
        assert!(!stderr(&o).contains(secret), "a secret in the trace");
    }
    assert!(stderr(&o).contains("SetAdminAclEntryEx"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("UPID binding checked"),
        "AMT's chain was bound to the UPID CSME id: {}",
        stderr(&o)
    );
    let st = state19(&s);
    assert_eq!(modes(&st), (2.into(), 2.into()));
    use md5::Digest as _;
    let realm = st["digest_realm"].as_str().unwrap();
    let ha1: String = md5::Md5::digest(format!("admin:{realm}:{AMT_PASSWORD}").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(st["admin_ha1"], ha1.as_str());
    assert_eq!(st["mebx_password_set"], true);
    assert_eq!(mode(&s), "activated in admin control mode");
}

#[test]
fn local_acm_on_amt19_with_a_sha384_leaf_announces_a_sha384_hash() {
    let w = world();
    let k = w.pki.key("2048");
    let leaf = w.pki.issue(
        &format!("/CN=amt.{SUFFIX}"),
        &k,
        LEAF_EXT,
        Some(&w.root),
        "-sha384",
        "365",
    );
    let file = w.pki.pfx(&leaf, &[&w.root], false);
    let (s, root) = sim19(&w, &[]);
    let o = activate(
        &s,
        &file,
        &[
            "--amt-ca-file",
            &root,
            "--mebx-password",
            "Mebx-P4ssw0rd!",
            "--json",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["leafHashAlgorithm"], 3);
    assert_eq!(modes(&state19(&s)), (2.into(), 2.into()));
}

#[test]
fn local_acm_on_amt19_without_a_mebx_password_is_rolled_back() {
    let w = world();
    let leaf = w.pki.leaf(&format!("amt.{SUFFIX}"), &w.root);
    let file = w.pki.pfx(&leaf, &[&w.root], false);
    let (s, root) = sim19(&w, &[]);
    let o = activate(&s, &file, &["--amt-ca-file", &root]);
    let err = stderr(&o);
    assert_eq!(code(&o), 102, "{err}");
    assert!(err.contains("2057"), "{err}");
    assert!(err.contains("rolled back"), "{err}");
    assert!(err.contains("MEBX_PASSWORD"), "{err}");
    // No half-configured device: pre-provisioning, no admin password, no open configuration.
    let st = state19(&s);
    assert_eq!(modes(&st), (0.into(), 0.into()));
    assert_eq!(st["admin_ha1"], "");
    assert_eq!(st["hbased_server_cert_hash"], "");
}

#[test]
fn local_acm_on_amt19_with_an_untrusted_root_changes_nothing() {
    let w = world();
    let leaf = w.pki.leaf(&format!("amt.{SUFFIX}"), &w.unknown_root);
    let file = w.pki.pfx(&leaf, &[&w.unknown_root], false);
    let (s, root) = sim19(&w, &[]);
    let mebx = [
        "--amt-ca-file",
        root.as_str(),
        "--mebx-password",
        "Mebx-P4ssw0rd!",
    ];
    // The doctor refuses before anything is sent.
    let refused = activate(&s, &file, &mebx);
    assert_eq!(code(&refused), 128, "{}", stderr(&refused));
    assert!(stderr(&refused).contains("refusing to activate"));
    assert_eq!(modes(&state19(&s)), (0.into(), 0.into()));
    // With --force the firmware refuses the client certificate; the agent stops the configuration.
    let mut forced_args = mebx.to_vec();
    forced_args.push("--force");
    let forced = activate(&s, &file, &forced_args);
    let err = stderr(&forced);
    assert_eq!(code(&forced), 102, "{err}");
    assert!(err.contains("rolled back"), "{err}");
    assert!(err.contains("TLS client certificate"), "{err}");
    let st = state19(&s);
    assert_eq!(modes(&st), (0.into(), 0.into()));
    assert_eq!(st["admin_ha1"], "");
    assert_eq!(st["hbased_server_cert_hash"], "");
}

#[test]
fn local_acm_on_amt19_refuses_an_amt_chain_bound_to_another_csme_and_rolls_back() {
    let w = world();
    let leaf = w.pki.leaf(&format!("amt.{SUFFIX}"), &w.root);
    let file = w.pki.pfx(&leaf, &[&w.root], false);
    let (s, root) = sim19(&w, &["--fault", "upid-mismatch"]);
    let o = activate(
        &s,
        &file,
        &["--amt-ca-file", &root, "--mebx-password", "Mebx-P4ssw0rd!"],
    );
    let err = stderr(&o);
    // As every failure after START_CONFIGURATION_HBASED: rolled back, exit 102.
    assert_eq!(code(&o), 102, "{err}");
    assert!(
        err.contains("the CSME ROM CA certificate does not match the UPID CSME id"),
        "{err}"
    );
    assert!(err.contains("rolled back"), "{err}");
    let st = state19(&s);
    assert_eq!(modes(&st), (0.into(), 0.into()));
    assert_eq!(st["admin_ha1"], "");
    assert_eq!(st["hbased_server_cert_hash"], "");
}

#[test]
fn local_acm_on_amt19_survives_the_connection_dropped_by_commit_changes() {
    let w = world();
    let leaf = w.pki.leaf(&format!("amt.{SUFFIX}"), &w.root);
    let file = w.pki.pfx(&leaf, &[&w.root], false);
    let (s, root) = sim19(&w, &["--fault", "drop-after=CommitChanges"]);
    let o = activate(
        &s,
        &file,
        &["--amt-ca-file", &root, "--mebx-password", "Mebx-P4ssw0rd!"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(modes(&state19(&s)), (2.into(), 2.into()));
}

/// The whole custom-root story: the root's hash enrolled with a setup.bin (the step that used to
/// need a Windows-only tool), consumed by the simulated MEBx at boot, then local ACM with that root.
#[test]
fn setup_bin_enrolment_then_acm_with_the_custom_root() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let setup = dir.path().join("setup.bin");
    let o = agent_env(
        &[
            "setup-bin",
            "create",
            "--root-cert",
            w.root.crt.to_str().unwrap(),
            "--name",
            "Corp Root",
            "--pki-dns-suffix",
            SUFFIX,
            "-o",
            setup.to_str().unwrap(),
        ],
        &[("MEBX_PASSWORD", "N3w-MEBx!pass")],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // A factory-fresh amt16.1: the custom root is unknown until MEBx consumes the file.
    let state = dir.path().join("state.json");
    std::fs::write(&state, serde_json::to_string(&profile("amt16.1")).unwrap()).unwrap();
    let socket = dir.path().join("sim.sock");
    let s = Sim::start_in(
        dir,
        socket,
        &[
            "--state",
            state.to_str().unwrap(),
            "--usb-setup",
            setup.to_str().unwrap(),
        ],
    );
    let hashes = agent(&["--device", &s.device(), "--json", "amtinfo", "--cert"]);
    let v: serde_json::Value = serde_json::from_slice(&hashes.stdout).unwrap();
    assert_eq!(
        v["certificateHashes"]["Corp Root"]["Hash"],
        sha256_hex(&w.root).to_ascii_lowercase()
    );
    assert_eq!(v["certificateHashes"]["Corp Root"]["IsActive"], true);
    let leaf = w.pki.leaf(&format!("amt.{SUFFIX}"), &w.root);
    let file = w.pki.pfx(&leaf, &[&w.root], false);
    let check = cert_check(&s, &file);
    assert_eq!(code(&check), 0, "{}", stdout(&check));
    let o = activate(&s, &file, &[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(mode(&s), "activated in admin control mode");
}

/// With no PKI DNS suffix in MEBx, the domain AMT trusts is the DHCP option-15 one it saw; the
/// doctor reads it from AMT (WS-MAN) rather than guessing from the OS.
#[test]
fn the_doctor_checks_the_leaf_against_the_dhcp_domain_amt_saw() {
    let w = world();
    let leaf = w.pki.leaf(&format!("amt.{SUFFIX}"), &w.root);
    let file = w.pki.pfx(&leaf, &[&w.root], false);
    for (dhcp, want) in [(SUFFIX, 0), ("other.org", 135)] {
        let dir = tempfile::tempdir().unwrap();
        let mut p = profile("amt16.1");
        p["cert_hashes"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "name": "Test Root", "algorithm": "SHA256", "hash": sha256_hex(&w.root),
                "is_default": false, "is_active": true,
            }));
        p["pki_dns_suffix"] = "".into();
        p["dhcp_dns_suffix"] = dhcp.into();
        let state = dir.path().join("state.json");
        std::fs::write(&state, serde_json::to_string(&p).unwrap()).unwrap();
        let socket = dir.path().join("sim.sock");
        let s = Sim::start_in(dir, socket, &["--state", state.to_str().unwrap()]);
        let o = agent_env(
            &[
                "--device",
                &s.device(),
                "--json",
                "cert",
                "check",
                file.to_str().unwrap(),
            ],
            &env(),
        );
        assert_eq!(code(&o), want, "DHCP domain {dhcp}: {}", stdout(&o));
        if want != 0 {
            assert!(stdout(&o).contains("AMT-LEAF-DOMAIN"), "{}", stdout(&o));
        }
    }
}

/// The trap of issue 11: the domain AMT trusts is its own (here the DHCP option 15 domain, no
/// PKI DNS suffix), whatever `-d` says.
const TRAP_CN: &str = "amt.holdout.test";
const DHCP: &str = "corp.example.com";

/// Writes a setup.bin enrolling the test root, with `suffix` as PKI DNS suffix when given; the
/// MEBx password goes from `admin` (or `current`) to `new`.
fn setup_bin(w: &World, out: &Path, suffix: Option<&str>, current: Option<&str>, new: &str) {
    let mut args = vec![
        "setup-bin",
        "create",
        "--root-cert",
        w.root.crt.to_str().unwrap(),
        "--name",
        "Corp Root",
        "-o",
        out.to_str().unwrap(),
    ];
    if let Some(s) = suffix {
        args.extend(["--pki-dns-suffix", s]);
    }
    let mut env = vec![("MEBX_PASSWORD", new)];
    if let Some(c) = current {
        env.push(("MEBX_CURRENT_PASSWORD", c));
    }
    let o = agent_env(&args, &env);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

/// A factory-fresh amt16.1 (no PKI DNS suffix, DHCP option 15 corp.example.com) whose state is
/// kept in `state`, booted with the USB stick `usb` (MEBx consumes it).
fn boot_with_usb(state: &Path, usb: &Path) -> Sim {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("sim.sock");
    Sim::start_in(
        dir,
        socket,
        &[
            "--state",
            state.to_str().unwrap(),
            "--usb-setup",
            usb.to_str().unwrap(),
        ],
    )
}

/// The one-line error, every `caused by:` and the `help:` of a failed run.
fn error_block(err: &str) -> (String, Vec<String>, String) {
    let line = |p: &str| {
        err.lines()
            .filter(|l| l.starts_with(p))
            .map(|l| l[p.len()..].to_string())
            .collect::<Vec<_>>()
    };
    (
        line("error: ").last().cloned().unwrap_or_default(),
        line("caused by: "),
        line("help: ").last().cloned().unwrap_or_default(),
    )
}

#[test]
fn the_domain_trap_is_refused_up_front_and_a_setup_bin_suffix_then_activates() {
    let w = world();
    let keep = tempfile::tempdir().unwrap();
    let state = keep.path().join("state.json");
    let mut p = profile("amt16.1");
    p["dhcp_dns_suffix"] = DHCP.into();
    std::fs::write(&state, serde_json::to_string(&p).unwrap()).unwrap();
    // The root enrolled by setup.bin without a PKI DNS suffix; a certificate for another domain.
    let usb1 = keep.path().join("setup-1.bin");
    setup_bin(&w, &usb1, None, None, "N3w-MEBx!pass");
    let mut s = boot_with_usb(&state, &usb1);
    let leaf = w.pki.leaf(TRAP_CN, &w.root);
    let file = w.pki.pfx(&leaf, &[&w.root], false);
    let dev = s.device();

    // cert check reads the firmware's suffixes; -d does not override them online.
    for extra in [&[][..], &["-d", TRAP_CN][..]] {
        let mut args = vec!["--device", &dev, "cert", "check", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        let o = agent_env(&args, &env());
        let text = stdout(&o);
        assert_eq!(code(&o), 135, "{extra:?}:\n{text}");
        assert!(
            text.contains(&format!(
                "trusted domain: {DHCP}, the DHCP option 15 domain"
            )),
            "{text}"
        );
        assert!(text.contains("error[AMT-LEAF-DOMAIN]"), "{text}");
    }
    // Offline, -d is all there is: it stands in (and is said to).
    let o = agent_env(
        &[
            "cert",
            "check",
            "--offline",
            "-d",
            TRAP_CN,
            file.to_str().unwrap(),
        ],
        &env(),
    );
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(stdout(&o).contains("-d, standing in"), "{}", stdout(&o));

    // activate: refused before anything is sent, naming AMT's suffix, its source and the fixes.
    let o = activate(&s, &file, &["-d", TRAP_CN, "-vvv"]);
    let err = stderr(&o);
    assert_eq!(code(&o), 135, "{err}");
    let (msg, causes, help) = error_block(&err);
    assert!(msg.starts_with("refusing to activate"), "{msg}");
    assert!(msg.contains("AMT-LEAF-DOMAIN"), "{msg}");
    assert!(
        causes[0].contains(&format!(
            "CN {TRAP_CN} does not match {DHCP}, the DHCP option 15 domain AMT received"
        )),
        "{causes:?}"
    );
    for fix in [
        "CN=amt.corp.example.com",
        &format!("setup-bin create --root-cert ROOT.pem --pki-dns-suffix {TRAP_CN}"),
        "MEBx → Remote Setup and Configuration → TLS PKI → PKI DNS Suffix",
        &format!("hand out {TRAP_CN} as DHCP option 15"),
        "--force",
    ] {
        assert!(help.contains(fix), "{fix}: {help}");
    }
    assert!(
        err.contains(&format!("-d {TRAP_CN} is not used: AMT trusts {DHCP}")),
        "{err}"
    );
    // The firmware was asked (WS-MAN, as the local system account), and nothing was sent.
    assert!(err.contains("AMT_SetupAndConfigurationService"), "{err}");
    assert!(!err.contains("IPS_HostBasedSetupService"), "{err}");
    assert_eq!(mode(&s), "pre-provisioning state");

    // --force: the firmware answers AUTH_FAILED, explained by the domain first.
    let o = activate(&s, &file, &["-d", TRAP_CN, "--force"]);
    let err = stderr(&o);
    assert_eq!(code(&o), 135, "{err}");
    let (msg, causes, help) = error_block(&err);
    assert!(msg.contains("AdminSetup returned AUTH_FAILED (5)"), "{msg}");
    assert!(
        causes[0].starts_with(&format!(
            "[AMT-LEAF-DOMAIN] CN={TRAP_CN}: CN {TRAP_CN} does not match {DHCP}"
        )),
        "{causes:?}"
    );
    assert!(
        help.contains(&format!("--pki-dns-suffix {TRAP_CN}")),
        "{help}"
    );
    assert_eq!(mode(&s), "pre-provisioning state");

    // The fix the help names: the suffix enrolled with a second setup.bin (the MEBx password is
    // no longer admin), consumed at the next boot; then the same certificate activates.
    s.stop();
    drop(s);
    let usb2 = keep.path().join("setup-2.bin");
    setup_bin(
        &w,
        &usb2,
        Some(TRAP_CN),
        Some("N3w-MEBx!pass"),
        "N3w-MEBx!pass2",
    );
    let s = boot_with_usb(&state, &usb2);
    let check = cert_check(&s, &file);
    assert_eq!(code(&check), 0, "{}", stdout(&check));
    assert!(
        stdout(&check).contains(&format!("trusted domain: {TRAP_CN}, AMT's PKI DNS suffix")),
        "{}",
        stdout(&check)
    );
    let o = activate(&s, &file, &["-d", TRAP_CN]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(mode(&s), "activated in admin control mode");
}

/// CCM → ACM: WS-MAN needs the AMT password to read the DHCP domain; the same trap is refused
/// before UpgradeClientToAdmin, and forced it is explained by the domain first.
#[test]
fn the_domain_trap_is_refused_before_a_ccm_to_acm_upgrade() {
    let w = world();
    let s = sim_of(&firmware(&w, "amt16.1", 1, "", DHCP), &[]);
    let leaf = w.pki.leaf(TRAP_CN, &w.root);
    let file = w.pki.pfx(&leaf, &[&w.root], false);
    // cert check in CCM reads the DHCP domain as admin with AMT_PASSWORD.
    let check = cert_check(&s, &file);
    assert_eq!(code(&check), 135, "{}", stdout(&check));
    assert!(
        stdout(&check).contains(&format!("trusted domain: {DHCP}, the DHCP option 15")),
        "{}",
        stdout(&check)
    );

    let o = activate(&s, &file, &["-d", TRAP_CN]);
    let err = stderr(&o);
    assert_eq!(code(&o), 135, "{err}");
    let (msg, causes, _) = error_block(&err);
    assert!(msg.starts_with("refusing to activate"), "{msg}");
    assert!(causes[0].contains(DHCP), "{causes:?}");

    let o = activate(&s, &file, &["-d", TRAP_CN, "--force"]);
    let err = stderr(&o);
    assert_eq!(code(&o), 135, "{err}");
    let (msg, causes, _) = error_block(&err);
    assert!(
        msg.contains("UpgradeClientToAdmin returned AUTH_FAILED (5)"),
        "{msg}"
    );
    assert!(causes[0].starts_with("[AMT-LEAF-DOMAIN]"), "{causes:?}");
    assert_eq!(mode(&s), "activated in client control mode");

    // A certificate for the DHCP domain upgrades.
    let good = w.pki.leaf(&format!("amt.{DHCP}"), &w.root);
    let o = activate(&s, &w.pki.pfx(&good, &[&w.root], false), &["-d", TRAP_CN]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(mode(&s), "activated in admin control mode");
}

/// AMT 19+: the firmware's suffixes are read over TLS before START_CONFIGURATION_HBASED, so the
/// trap is refused with nothing opened; forced, the rollback names the domain first.
#[test]
fn the_domain_trap_is_refused_before_secure_host_based_configuration_on_amt19() {
    let w = world();
    let (s, root) = sim19_of(&firmware(&w, "amt19", 0, "", DHCP), &[]);
    let leaf = w.pki.leaf(TRAP_CN, &w.root);
    let file = w.pki.pfx(&leaf, &[&w.root], false);
    let base = [
        "-d",
        TRAP_CN,
        "--amt-ca-file",
        root.as_str(),
        "--mebx-password-file",
    ];
    let mebx = s.path("mebx");
    std::fs::write(&mebx, "Mebx-P4ssw0rd!\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&mebx, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut args = base.to_vec();
    args.push(mebx.to_str().unwrap());
    args.push("-vvv");

    let o = activate(&s, &file, &args);
    let err = stderr(&o);
    assert_eq!(code(&o), 135, "{err}");
    let (msg, causes, help) = error_block(&err);
    assert!(msg.starts_with("refusing to activate"), "{msg}");
    assert!(
        causes[0].contains(&format!("does not match {DHCP}, the DHCP option 15 domain")),
        "{causes:?}"
    );
    assert!(
        help.contains(&format!("--pki-dns-suffix {TRAP_CN}")),
        "{help}"
    );
    assert!(!err.contains("START_CONFIGURATION_HBASED"), "{err}");
    let st = state19(&s);
    assert_eq!(modes(&st), (0.into(), 0.into()));
    assert_eq!(st["hbased_server_cert_hash"], "");

    args.pop();
    args.push("--force");
    let o = activate(&s, &file, &args);
    let err = stderr(&o);
    assert_eq!(code(&o), 102, "{err}");
    let (msg, causes, help) = error_block(&err);
    assert!(msg.contains("rolled back"), "{msg}");
    let domain = causes
        .iter()
        .position(|c| c.starts_with("[AMT-LEAF-DOMAIN]"))
        .expect("the domain rule explains the refusal");
    assert!(
        causes[..domain].iter().all(|c| !c.starts_with('[')),
        "the domain comes first: {causes:?}"
    );
    assert!(help.contains(DHCP), "{help}");
    let st = state19(&s);
    assert_eq!(modes(&st), (0.into(), 0.into()));
    assert_eq!(st["hbased_server_cert_hash"], "");
}
