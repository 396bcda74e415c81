//! End to end: `amt-agent amtinfo` prints what rpc-go v2 prints, for every simulator profile.
//!
//! The expected output lives in `tests/fixtures/amtinfo-v2/` (see its README): written by an
//! independent model of rpc-go v2 from each profile's firmware values, never from the agent's
//! output. Text must match line for line (certificate hashes in any order, as v2's come from a Go
//! map); JSON must match byte for byte once the keys the agent adds are taken out. The values that
//! come from this machine rather than the firmware (host name, OS DNS suffix) are placeholders in
//! the fixtures, filled here from the test's own reading of the OS.
// The tests drive Linux processes (amt-sim, its Unix socket, signals); the Windows build is
// tested by tests/windows.rs, the .exe under Wine.
#![cfg(unix)]

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// Keys the agent adds to v2's JSON (README, docs/amtinfo.schema.json).
const ADDED_KEYS: &[&str] = &[
    "heciAvailable",
    "provisioningState",
    "simulated",
    "tlsEnforced",
    "upid",
];

/// Profile files beside the fixtures: firmware states no built-in profile has.
const PROFILE_FILES: &[&str] = &["activated-cira"];

struct OsFacts {
    hostname: String,
    dns_suffix: String,
}

/// This machine's host name and DNS suffix, read without the agent's code: the kernel's host name
/// from /proc, the canonical name from `getent ahosts` (glibc's getaddrinfo with AI_CANONNAME),
/// else /etc/resolv.conf.
fn os_facts() -> OsFacts {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("/proc/sys/kernel/hostname")
        .trim_end_matches('\n')
        .to_string();
    let after_first_label = |n: &str| {
        n.trim_end_matches('.')
            .split_once('.')
            .map(|(_, d)| d.to_string())
            .unwrap_or_default()
    };
    if hostname.contains('.') {
        let dns_suffix = after_first_label(&hostname);
        return OsFacts {
            hostname,
            dns_suffix,
        };
    }
    let started = Instant::now();
    let canonical = run_with_deadline(
        Command::new("getent").args(["ahosts", &hostname]),
        Duration::from_secs(20),
    );
    // The agent gives the name service 2 s; a slower answer is one it does not wait for.
    let in_time = started.elapsed() < Duration::from_millis(1500);
    let first = stdout(&canonical);
    let canonical_name = first
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(2))
        .filter(|_| canonical.status.success() && in_time)
        .map(str::to_string);
    let dns_suffix = match canonical_name {
        Some(c) => after_first_label(&c),
        None => {
            let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            let word = |key: &str| {
                conf.lines()
                    .filter_map(|l| {
                        let mut w = l.split_whitespace();
                        (w.next() == Some(key)).then(|| w.next()).flatten()
                    })
                    .next()
                    .map(|d| d.trim_end_matches('.').to_string())
            };
            word("domain")
                .or_else(|| word("search"))
                .unwrap_or_default()
        }
    };
    OsFacts {
        hostname,
        dns_suffix,
    }
}

/// A fixture with this machine's values in place of its placeholders.
fn golden(file: &str, os: &OsFacts) -> String {
    let raw = std::fs::read_to_string(repo_file(&format!("tests/fixtures/amtinfo-v2/{file}")))
        .unwrap_or_else(|e| panic!("fixture {file}: {e}"));
    let json = file.ends_with(".json");
    let fill = |v: &str| {
        if json {
            let quoted = serde_json::to_string(v).unwrap();
            quoted[1..quoted.len() - 1].to_string()
        } else {
            v.to_string()
        }
    };
    raw.replace("{{hostnameOS}}", &fill(&os.hostname))
        .replace("{{dnsSuffixOS}}", &fill(&os.dns_suffix))
}

fn is_cert_header(l: &str) -> bool {
    l == "---Certificate Hashes---" || l == "---No Certificate Hashes Found---"
}

/// Text compared line for line, except the certificate hash entries (name line + hash line),
/// which v2 prints in a random order and are compared as a set.
fn assert_text_is_v2(ours: &str, want: &str, what: &str) {
    let split = |t: &str| -> (String, Vec<String>) {
        let lines: Vec<&str> = t.lines().collect();
        match lines.iter().position(|l| is_cert_header(l)) {
            None => (t.to_string(), Vec::new()),
            Some(i) => {
                let head = lines[..=i].iter().map(|l| format!("{l}\n")).collect();
                let mut entries: Vec<String> =
                    lines[i + 1..].chunks(2).map(|c| c.join("\n")).collect();
                entries.sort();
                (head, entries)
            }
        }
    };
    let (ours_head, ours_hashes) = split(ours);
    let (want_head, want_hashes) = split(want);
    assert_eq!(
        ours_head, want_head,
        "{what}: text differs from rpc-go v2's"
    );
    assert_eq!(
        ours_hashes, want_hashes,
        "{what}: certificate hash entries differ"
    );
    assert!(
        ours.ends_with('\n') || ours.is_empty(),
        "{what}: unterminated last line"
    );
}

/// The top-level entries of an object Go's `json.MarshalIndent(v, "", "  ")` printed: each key
/// with its value's text (without the separating comma).
fn entries(json: &str) -> Vec<(String, String)> {
    let body = json
        .strip_prefix("{\n")
        .and_then(|b| b.strip_suffix("}\n"))
        .unwrap_or_else(|| panic!("not a multi-line JSON object: {json:?}"));
    let mut out: Vec<(String, Vec<&str>)> = Vec::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("  \"") {
            let key = rest.split("\": ").next().unwrap().to_string();
            out.push((key, vec![line]));
        } else {
            out.last_mut().expect("a key first").1.push(line);
        }
    }
    out.into_iter()
        .map(|(k, lines)| {
            let text = lines.join("\n");
            (k, text.strip_suffix(',').unwrap_or(&text).to_string())
        })
        .collect()
}

fn assemble(entries: &[(String, String)]) -> String {
    if entries.is_empty() {
        return "{}\n".into();
    }
    let body: Vec<&str> = entries.iter().map(|(_, t)| t.as_str()).collect();
    format!("{{\n{}\n}}\n", body.join(",\n"))
}

/// Our JSON, byte for byte v2's once the added keys are out; the added keys are documented ones.
fn assert_json_is_v2(ours: &str, want: &str, what: &str) {
    let ours_entries = entries(ours);
    assert_eq!(
        assemble(&ours_entries),
        ours,
        "{what}: not Go's MarshalIndent layout"
    );
    let added: BTreeSet<&str> = ours_entries
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| ADDED_KEYS.contains(k))
        .collect();
    assert!(
        added.contains("heciAvailable"),
        "{what}: heciAvailable is always added"
    );
    let v2_part: Vec<(String, String)> = ours_entries
        .into_iter()
        .filter(|(k, _)| !ADDED_KEYS.contains(&k.as_str()))
        .collect();
    assert_eq!(
        assemble(&v2_part),
        want,
        "{what}: JSON differs from rpc-go v2's"
    );
    let keys: Vec<String> = entries(ours).into_iter().map(|(k, _)| k).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "{what}: a Go map's keys come sorted");
}

/// How to reach a profile: the in-process simulator for built-in ones, `amt-sim serve` for files.
enum Target {
    InProcess(String),
    Served(Sim),
}

impl Target {
    fn of(name: &str) -> Target {
        if PROFILE_FILES.contains(&name) {
            let file = repo_file(&format!("tests/fixtures/amtinfo-v2/{name}.profile.json"));
            Target::Served(Sim::start(&["--device-profile", file.to_str().unwrap()]))
        } else {
            Target::InProcess(format!("sim:profile={name}"))
        }
    }

    fn amtinfo(&self, args: &[&str]) -> std::process::Output {
        let dev = match self {
            Target::InProcess(d) => d.clone(),
            Target::Served(s) => s.device(),
        };
        let mut all = vec!["--device", dev.as_str(), "amtinfo"];
        all.extend_from_slice(args);
        agent(&all)
    }
}

fn all_profiles() -> Vec<String> {
    let mut names = profile_names();
    names.extend(PROFILE_FILES.iter().map(|s| s.to_string()));
    names
}

fn profile_json(name: &str) -> serde_json::Value {
    if PROFILE_FILES.contains(&name) {
        let file = repo_file(&format!("tests/fixtures/amtinfo-v2/{name}.profile.json"));
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
    } else {
        profile(name)
    }
}

/// The fixtures say `Not Found` for every non-zero MAC: true only where no interface here has it.
fn assert_no_local_interface_has_the_profiles_macs(name: &str) {
    let p = profile_json(name);
    let local: BTreeSet<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_to_string(e.path().join("address")).ok())
                .map(|a| a.trim().to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default();
    for side in ["wired", "wireless"] {
        let mac = p[side]["mac"].as_str().unwrap().to_ascii_lowercase();
        assert!(
            mac == "00:00:00:00:00:00" || !local.contains(&mac),
            "{name}: an interface on this machine has the {side} MAC {mac}; the fixtures' \
             `Not Found` does not hold here"
        );
    }
}

#[test]
fn amtinfo_is_rpc_go_v2_for_every_profile() {
    let os = os_facts();
    for name in all_profiles() {
        assert_no_local_interface_has_the_profiles_macs(&name);
        let target = Target::of(&name);
        for (suffix, flags) in [("", &[][..]), (".all", &["--all"][..])] {
            let text = target.amtinfo(flags);
            let mut json_flags = flags.to_vec();
            json_flags.push("--json");
            let json = target.amtinfo(&json_flags);
            let want_text = golden(&format!("{name}{suffix}.txt"), &os);
            let want_json = golden(&format!("{name}{suffix}.json"), &os);
            let what = format!("{name} amtinfo {}", flags.join(" "));
            if want_text.is_empty() {
                // No AMT: v2 prints nothing; ours says why (AmtNotDetected) on stderr, and with
                // --json as the agent's error object on stdout, as every command does.
                assert_eq!(want_json, "");
                assert_eq!(code(&text), 3, "{what}: {}", stderr(&text));
                assert_eq!(stdout(&text), "", "{what}");
                assert!(
                    stderr(&text).contains("help: "),
                    "{what}: {}",
                    stderr(&text)
                );
                assert_eq!(code(&json), 3, "{what} --json: {}", stderr(&json));
                let err: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
                assert_eq!(err["exitName"], "AmtNotDetected", "{what} --json");
                continue;
            }
            assert_eq!(code(&text), 0, "{what}: {}", stderr(&text));
            assert_eq!(code(&json), 0, "{what} --json: {}", stderr(&json));
            assert_text_is_v2(&stdout(&text), &want_text, &what);
            assert_json_is_v2(&stdout(&json), &want_json, &format!("{what} --json"));
        }
    }
}

/// Which v2 flag selects a line of the `-all` text.
fn flag_of_line(line: &str, in_block: Option<&'static str>) -> &'static str {
    if let Some(b) = in_block {
        return b;
    }
    for (prefix, flag) in [
        ("Version\t", "--ver"),
        ("Build Number\t", "--bld"),
        ("SKU\t", "--sku"),
        ("Features\t", "features"),
        ("UUID\t", "--uuid"),
        ("Control Mode\t", "--mode"),
        ("Operational State\t", "--operational-state"),
        ("DNS Suffix", "--dns"),
        ("Hostname (OS)\t", "--hostname"),
        ("RAS ", "--ras"),
    ] {
        if line.starts_with(prefix) {
            return flag;
        }
    }
    panic!("a line v2's -all does not have: {line:?}")
}

/// The `-all` text split by the flag that selects each line, in order.
fn lines_by_flag(all: &str) -> Vec<(&'static str, String)> {
    let mut block = None;
    all.lines()
        .map(|l| {
            if l.starts_with("---Wired") || l.starts_with("---Wireless") {
                block = Some("--lan");
            }
            if is_cert_header(l) {
                block = Some("--cert");
            }
            (flag_of_line(l, block), format!("{l}\n"))
        })
        .collect()
}

/// The JSON keys each v2 flag selects.
fn keys_of_flag(flag: &str) -> &'static [&'static str] {
    match flag {
        "--ver" => &["amt"],
        "--bld" => &["buildNumber"],
        "--sku" => &["sku"],
        "--uuid" => &["uuid"],
        "--mode" => &["controlMode"],
        "--operational-state" => &["operationalState"],
        "--dns" => &["dnsSuffix", "dnsSuffixOS"],
        "--hostname" => &["hostnameOS"],
        "--ras" => &["ras"],
        "--lan" => &["wiredAdapter", "wirelessAdapter"],
        "--cert" => &["certificateHashes"],
        _ => &[],
    }
}

#[test]
fn every_selection_flag_prints_v2s_lines_and_keys_for_it() {
    let os = os_facts();
    let flags = [
        "--ver",
        "--bld",
        "--sku",
        "--uuid",
        "--mode",
        "--operational-state",
        "--dns",
        "--hostname",
        "--ras",
        "--lan",
        "--cert",
    ];
    for name in all_profiles() {
        let all_text = golden(&format!("{name}.all.txt"), &os);
        if all_text.is_empty() {
            continue;
        }
        let all_json = entries(&golden(&format!("{name}.all.json"), &os));
        let by_flag = lines_by_flag(&all_text);
        let target = Target::of(&name);
        let mut selections: Vec<Vec<&str>> = flags.iter().map(|f| vec![*f]).collect();
        // Features needs both; v2's order holds across a combination.
        selections.push(vec!["--ver", "--sku"]);
        selections.push(vec!["--uuid", "--lan", "--mode"]);
        for sel in selections {
            let want_text: String = by_flag
                .iter()
                .filter(|(f, _)| {
                    sel.contains(f)
                        || (*f == "features" && sel.contains(&"--ver") && sel.contains(&"--sku"))
                })
                .map(|(_, l)| l.as_str())
                .collect();
            let want_json: Vec<(String, String)> = all_json
                .iter()
                .filter(|(k, _)| {
                    sel.iter().any(|f| keys_of_flag(f).contains(&k.as_str()))
                        || (k == "features" && sel.contains(&"--ver") && sel.contains(&"--sku"))
                })
                .cloned()
                .collect();
            let what = format!("{name} amtinfo {}", sel.join(" "));
            let text = target.amtinfo(&sel);
            assert_eq!(code(&text), 0, "{what}: {}", stderr(&text));
            assert_text_is_v2(&stdout(&text), &want_text, &what);
            let mut with_json = sel.clone();
            with_json.push("--json");
            let json = target.amtinfo(&with_json);
            assert_eq!(code(&json), 0, "{what} --json: {}", stderr(&json));
            assert_json_is_v2(
                &stdout(&json),
                &assemble(&want_json),
                &format!("{what} --json"),
            );
        }
    }
}

#[test]
fn lines_v2_lacks_come_only_with_their_own_flags() {
    let os = os_facts();
    let amt19 = Target::of("amt19");
    // --all plus the added flags: v2's --all text with the added lines in their places.
    let o = amt19.amtinfo(&["--all", "--provisioning-state", "--tls-enforced", "--upid"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let ours = stdout(&o);
    let mut want = String::new();
    for line in golden("amt19.all.txt", &os).lines() {
        if line.starts_with("---Certificate Hashes---") {
            // The UPID section comes after the adapters.
            let upid = ours
                .lines()
                .skip_while(|l| *l != "---Intel UPID---")
                .take(4)
                .map(|l| format!("{l}\n"))
                .collect::<String>();
            assert!(upid.starts_with("---Intel UPID---\nPlatform ID Type\t: Not Set (0)\n"));
            want.push_str(&upid);
        }
        want.push_str(line);
        want.push('\n');
        if line.starts_with("Control Mode\t") {
            want.push_str("Provisioning State\t: pre-provisioning\n");
        }
        if line.starts_with("Operational State\t") {
            want.push_str("TLS Enforced\t\t: true\n");
        }
    }
    assert_text_is_v2(&ours, &want, "amt19 --all with the added flags");
    // Without them, none of those lines, and the UPID client is not even asked.
    let plain = amt19.amtinfo(&["--all"]);
    for added in ["Provisioning State", "TLS Enforced", "---Intel UPID---"] {
        assert!(!stdout(&plain).contains(added), "{added}");
    }
    let traced = agent(&["--device", "sim:profile=amt19", "-vvv", "amtinfo", "--all"]);
    assert!(
        !stderr(&traced).contains("UPID"),
        "no UPID read without --upid: {}",
        stderr(&traced)
    );
    assert!(stderr(&traced).contains("GET_UUID"), "the trace is on");
}

/// Runs `amt-agent --device sim amtinfo --dns --hostname` in new UTS and mount namespaces with a
/// host name and name-service files of the test's choosing. `None` where this machine cannot
/// (not root, no `unshare`).
fn amtinfo_in_namespace(
    hostname: &str,
    hosts: &str,
    nsswitch: &str,
    resolv: &str,
) -> Option<(std::process::Output, Duration)> {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<String> = [
        ("hosts", hosts),
        ("nsswitch.conf", nsswitch),
        ("resolv.conf", resolv),
    ]
    .iter()
    .map(|(n, t)| {
        let p = dir.path().join(n);
        std::fs::write(&p, t).unwrap();
        p.to_str().unwrap().to_string()
    })
    .collect();
    let script = "hostname \"$1\" && mount --bind \"$2\" /etc/hosts && \
                  mount --bind \"$3\" /etc/nsswitch.conf && mount --bind \"$4\" /etc/resolv.conf && \
                  exec \"$5\" --device sim amtinfo --dns --hostname";
    let started = Instant::now();
    let o = run_with_deadline(
        Command::new("unshare")
            .args(["--uts", "--mount", "--", "sh", "-c", script, "sh", hostname])
            .args(&files)
            .arg(AGENT),
        Duration::from_secs(30),
    );
    let took = started.elapsed();
    if !o.status.success() && !stdout(&o).contains("DNS Suffix") {
        eprintln!(
            "skipped: cannot set up UTS and mount namespaces here: {}",
            stderr(&o)
        );
        return None;
    }
    Some((o, took))
}

fn os_suffix_line(o: &std::process::Output) -> String {
    stdout(o)
        .lines()
        .find_map(|l| l.strip_prefix("DNS Suffix (OS)\t\t: "))
        .unwrap_or_else(|| panic!("no DNS Suffix (OS) line: {}", stdout(o)))
        .to_string()
}

#[test]
fn dns_suffix_os_is_what_the_system_resolver_says_within_a_deadline() {
    let files = "hosts: files\n";
    // The canonical name from the hosts file gives the suffix.
    let Some((o, _)) = amtinfo_in_namespace(
        "box",
        "127.0.0.1 localhost\n127.0.1.1 box.lab.example box\n",
        files,
        "search elsewhere.example\n",
    ) else {
        return;
    };
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(os_suffix_line(&o), "lab.example");
    assert!(stdout(&o).contains("Hostname (OS)\t\t: box\n"));
    // A canonical name without a dot: empty (rpc-go v2 prints the bare name; documented).
    let (o, _) = amtinfo_in_namespace(
        "box",
        "127.0.0.1 localhost\n127.0.1.1 box\n",
        files,
        "search elsewhere.example\n",
    )
    .unwrap();
    assert_eq!(os_suffix_line(&o), "");
    // A host name with a dot is its own answer.
    let (o, _) =
        amtinfo_in_namespace("wks-7.dotted.example", "127.0.0.1 localhost\n", files, "").unwrap();
    assert_eq!(os_suffix_line(&o), "dotted.example");
    assert!(stdout(&o).contains("Hostname (OS)\t\t: wks-7.dotted.example\n"));
    // A name service that does not know the host: /etc/resolv.conf, `domain` before `search`.
    let (o, _) = amtinfo_in_namespace(
        "box",
        "127.0.0.1 localhost\n",
        files,
        "search first.example second.example\ndomain corp.example\n",
    )
    .unwrap();
    assert_eq!(os_suffix_line(&o), "corp.example");

    // A DNS server that never answers (a socket on 127.0.0.1:53 that reads nothing): the resolver
    // would wait 2 × 5 s; amtinfo waits 2 s, then takes /etc/resolv.conf.
    let Ok(silent) = std::net::UdpSocket::bind("127.0.0.1:53") else {
        eprintln!("skipped the silent-DNS case: cannot bind 127.0.0.1:53");
        return;
    };
    let (o, took) = amtinfo_in_namespace(
        "box",
        "127.0.0.1 localhost\n",
        "hosts: files dns\n",
        "nameserver 127.0.0.1\noptions timeout:5 attempts:2\nsearch slow.example\n",
    )
    .unwrap();
    drop(silent);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(os_suffix_line(&o), "slow.example");
    assert!(
        took < Duration::from_secs(6),
        "amtinfo waited {took:?} for a silent DNS server"
    );
    assert!(
        took >= Duration::from_secs(2),
        "the name service had its 2 s: {took:?}"
    );
}
