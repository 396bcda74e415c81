//! rpc-go v3's profile (`config.Configuration`, rpc-go.md §8.5) converted to ours, recording for
//! every converted part the path it had in the rpc-go file, so problems are reported where the
//! user wrote them (`configuration.amtSpecific.adminPassword`). Keys rpc-go has but this agent
//! does not apply (user accounts, Enterprise Assistant, BMC/DASH/Redfish, general settings) are
//! warnings, never silently dropped.

use serde_json::{json, Map, Value};

use super::check::{Problem, Severity};

struct Conv {
    origins: Vec<(String, String)>,
    problems: Vec<Problem>,
}

impl Conv {
    fn origin(&mut self, ours: &str, theirs: &str) {
        self.origins.push((ours.to_string(), theirs.to_string()));
    }

    fn problem(&mut self, severity: Severity, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            severity,
            path: path.to_string(),
            message: message.into(),
            help: None,
            exit: crate::error::ExitCode::Success,
        });
    }

    fn obj<'a>(&mut self, v: Option<&'a Value>, path: &str) -> Option<&'a Map<String, Value>> {
        match v {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m),
            Some(_) => {
                self.problem(Severity::Error, path, "expected a mapping");
                None
            }
        }
    }

    fn string(&mut self, m: &Map<String, Value>, key: &str, path: &str) -> Option<String> {
        match m.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(_) => {
                self.problem(
                    Severity::Error,
                    &format!("{path}.{key}"),
                    "expected a string",
                );
                None
            }
        }
    }

    fn boolean(&mut self, m: &Map<String, Value>, key: &str, path: &str) -> Option<bool> {
        match m.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                self.problem(
                    Severity::Error,
                    &format!("{path}.{key}"),
                    "expected true or false",
                );
                None
            }
        }
    }

    fn int(&mut self, m: &Map<String, Value>, key: &str, path: &str) -> Option<i64> {
        match m.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.is_i64() => n.as_i64(),
            Some(Value::String(s)) if s.parse::<i64>().is_ok() => s.parse().ok(),
            Some(_) => {
                self.problem(
                    Severity::Error,
                    &format!("{path}.{key}"),
                    "expected a whole number",
                );
                None
            }
        }
    }

    /// Keys of `m` other than `known`: rpc-go ignores unknown keys (Go's yaml.Unmarshal), so do
    /// we, with a warning.
    fn unknown(&mut self, m: &Map<String, Value>, known: &[&str], path: &str) {
        for k in m.keys() {
            if !known.contains(&k.as_str()) {
                self.problem(
                    Severity::Warning,
                    &format!("{path}.{k}"),
                    "not a key of rpc-go v3's profile: ignored",
                );
            }
        }
    }

    fn not_applied(&mut self, m: &Map<String, Value>, key: &str, path: &str, why: &str) {
        if let Some(v) = m.get(key) {
            let empty = match v {
                Value::Null => true,
                Value::Object(o) => o.values().all(|x| {
                    matches!(x, Value::Null)
                        || x.as_str() == Some("")
                        || x.as_array().is_some_and(|a| a.is_empty())
                }),
                Value::Array(a) => a.is_empty(),
                Value::String(s) => s.is_empty(),
                _ => false,
            };
            if !empty {
                self.problem(
                    Severity::Warning,
                    &format!("{path}.{key}"),
                    format!("not applied by amt-agent: {why}"),
                );
            }
        }
    }
}

/// An rpc-go 802.1X block as one of our `network.ieee8021x` entries named `name`.
fn dot1x(c: &mut Conv, m: &Map<String, Value>, path: &str, name: &str, ours: &str) -> Value {
    c.unknown(
        m,
        &[
            "username",
            "password",
            "authenticationProtocol",
            "clientCert",
            "caCert",
            "privateKey",
            "pxeTimeout",
            "profileName",
            "wiredInterface",
            "tenantId",
        ],
        path,
    );
    c.origin(ours, path);
    let mut o = Map::new();
    o.insert("name".into(), name.into());
    let protocol = match c.int(m, "authenticationProtocol", path) {
        Some(0) | None => "eap-tls".to_string(),
        Some(2) => "peap-mschapv2".to_string(),
        Some(n) => {
            c.problem(
                Severity::Error,
                &format!("{path}.authenticationProtocol"),
                format!("{n} is not 0 (EAP-TLS) or 2 (PEAPv0/EAP-MSCHAPv2), the ones AMT takes"),
            );
            "eap-tls".to_string()
        }
    };
    c.origin(
        &format!("{ours}.protocol"),
        &format!("{path}.authenticationProtocol"),
    );
    o.insert("protocol".into(), protocol.into());
    for (theirs, mine) in [
        ("username", "username"),
        ("password", "password"),
        ("clientCert", "clientCertificate"),
        ("caCert", "caCertificate"),
        ("privateKey", "privateKey"),
    ] {
        if let Some(v) = c.string(m, theirs, path) {
            let v = if matches!(theirs, "clientCert" | "caCert") {
                as_pem(&v)
            } else {
                v
            };
            o.insert(mine.into(), v.into());
            c.origin(&format!("{ours}.{mine}"), &format!("{path}.{theirs}"));
        }
    }
    c.not_applied(
        m,
        "pxeTimeout",
        path,
        "AMT's PXE timeout is not set locally",
    );
    Value::Object(o)
}

/// RPS keeps certificates as base64 DER; ours takes a path or PEM text.
fn as_pem(v: &str) -> String {
    if v.contains("-----BEGIN") {
        return v.to_string();
    }
    let body: String = v.chars().filter(|c| !c.is_whitespace()).collect();
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

fn wifi_auth(v: &Value) -> Option<&'static str> {
    let s = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.to_ascii_uppercase().replace(['-', '_', ' '], ""),
        _ => return None,
    };
    Some(match s.as_str() {
        "4" | "WPAPSK" => "wpa-psk",
        "5" | "WPAIEEE8021X" => "wpa-ieee8021x",
        "6" | "WPA2PSK" => "wpa2-psk",
        "7" | "WPA2IEEE8021X" => "wpa2-ieee8021x",
        _ => return None,
    })
}

fn wifi_encryption(v: &Value) -> Option<&'static str> {
    let s = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.to_ascii_uppercase(),
        _ => return None,
    };
    Some(match s.as_str() {
        "3" | "TKIP" => "tkip",
        "4" | "CCMP" => "ccmp",
        _ => return None,
    })
}

/// Converts a parsed rpc-go v3 profile: our JSON shape, the origins of its parts, and the
/// problems met on the way.
pub fn convert(doc: &Value) -> (Value, Vec<(String, String)>, Vec<Problem>) {
    let mut c = Conv {
        origins: vec![(String::new(), "configuration".into())],
        problems: Vec::new(),
    };
    let mut out = Map::new();
    out.insert("version".into(), 1.into());
    c.origin("version", "configuration");
    let top = doc.as_object().cloned().unwrap_or_default();
    c.unknown(&top, &["id", "name", "tags", "configuration"], "");
    if let Some(n) = top.get("name").and_then(Value::as_str) {
        out.insert("name".into(), n.into());
        c.origin("name", "name");
    }
    let Some(cfg) = c.obj(top.get("configuration"), "configuration") else {
        return (Value::Object(out), c.origins, c.problems);
    };
    let p = "configuration";
    c.unknown(
        cfg,
        &[
            "generalSettings",
            "network",
            "tls",
            "redirection",
            "userAccounts",
            "enterpriseAssistant",
            "amtSpecific",
            "bmcSpecific",
            "dashSpecific",
            "redfishSpecific",
        ],
        p,
    );
    c.not_applied(
        cfg,
        "generalSettings",
        p,
        "AMT's general settings (shared FQDN, network interface, ping response) are not managed",
    );
    c.not_applied(
        cfg,
        "userAccounts",
        p,
        "AMT user accounts other than admin are not managed",
    );
    c.not_applied(cfg, "enterpriseAssistant", p, "Enterprise Assistant (certificates from a Microsoft CA) is not supported; certificates come from the profile");
    for k in ["bmcSpecific", "dashSpecific", "redfishSpecific"] {
        c.not_applied(cfg, k, p, "only Intel AMT is managed");
    }

    // amtSpecific: control mode, passwords, provisioning certificate, CIRA.
    let ap = format!("{p}.amtSpecific");
    if let Some(amt) = c.obj(cfg.get("amtSpecific"), &ap) {
        c.unknown(
            amt,
            &[
                "controlMode",
                "adminPassword",
                "generateRandomPassword",
                "provisioningCert",
                "provisioningCertPwd",
                "mebxPassword",
                "generateRandomMEBXPassword",
                "cira",
            ],
            &ap,
        );
        match c.string(amt, "controlMode", &ap).as_deref() {
            Some("acmactivate") => {
                out.insert("controlMode".into(), "acm".into());
            }
            Some("ccmactivate") => {
                out.insert("controlMode".into(), "ccm".into());
            }
            Some(other) => c.problem(
                Severity::Error,
                &format!("{ap}.controlMode"),
                format!("'{other}' is not acmactivate or ccmactivate"),
            ),
            None => {}
        }
        c.origin("controlMode", &format!("{ap}.controlMode"));
        let admin = if c.boolean(amt, "generateRandomPassword", &ap) == Some(true) {
            c.origin("adminPassword", &format!("{ap}.generateRandomPassword"));
            Some("generate".to_string())
        } else {
            c.origin("adminPassword", &format!("{ap}.adminPassword"));
            c.string(amt, "adminPassword", &ap)
        };
        if let Some(a) = admin {
            out.insert("adminPassword".into(), a.into());
        }
        if c.boolean(amt, "generateRandomMEBXPassword", &ap) == Some(true) {
            out.insert("mebxPassword".into(), "generate".into());
            c.origin("mebxPassword", &format!("{ap}.generateRandomMEBXPassword"));
        } else if let Some(m) = c.string(amt, "mebxPassword", &ap) {
            out.insert("mebxPassword".into(), m.into());
            c.origin("mebxPassword", &format!("{ap}.mebxPassword"));
        }
        if let Some(cert) = c.string(amt, "provisioningCert", &ap) {
            let mut pc = Map::new();
            pc.insert("base64".into(), cert.into());
            c.origin("provisioningCertificate", &format!("{ap}.provisioningCert"));
            if let Some(pw) = c.string(amt, "provisioningCertPwd", &ap) {
                pc.insert("password".into(), pw.into());
                c.origin(
                    "provisioningCertificate.password",
                    &format!("{ap}.provisioningCertPwd"),
                );
            }
            out.insert("provisioningCertificate".into(), Value::Object(pc));
        }
        let cp = format!("{ap}.cira");
        if let Some(cira) = c.obj(amt.get("cira"), &cp) {
            c.unknown(
                cira,
                &[
                    "mpsUsername",
                    "mpsPassword",
                    "mpsAddress",
                    "mpsPort",
                    "mpsCert",
                    "environmentDetection",
                    "generateRandomPassword",
                ],
                &cp,
            );
            if c.string(cira, "mpsAddress", &cp).is_some() {
                let mut o = Map::new();
                c.origin("cira", &cp);
                for (theirs, mine) in [
                    ("mpsAddress", "mpsAddress"),
                    ("mpsUsername", "mpsUsername"),
                    ("mpsCert", "mpsCertificate"),
                ] {
                    if let Some(v) = c.string(cira, theirs, &cp) {
                        let v = if theirs == "mpsCert" { as_pem(&v) } else { v };
                        o.insert(mine.into(), v.into());
                        c.origin(&format!("cira.{mine}"), &format!("{cp}.{theirs}"));
                    }
                }
                if let Some(port) = c.int(cira, "mpsPort", &cp) {
                    o.insert("mpsPort".into(), port.into());
                    c.origin("cira.mpsPort", &format!("{cp}.mpsPort"));
                }
                if c.boolean(cira, "generateRandomPassword", &cp) == Some(true) {
                    o.insert("mpsPassword".into(), "generate".into());
                    c.origin("cira.mpsPassword", &format!("{cp}.generateRandomPassword"));
                } else if let Some(pw) = c.string(cira, "mpsPassword", &cp) {
                    o.insert("mpsPassword".into(), pw.into());
                    c.origin("cira.mpsPassword", &format!("{cp}.mpsPassword"));
                }
                if let Some(Value::Array(a)) = cira.get("environmentDetection") {
                    o.insert("environmentDetection".into(), Value::Array(a.clone()));
                    c.origin(
                        "cira.environmentDetection",
                        &format!("{cp}.environmentDetection"),
                    );
                }
                out.insert("cira".into(), Value::Object(o));
            }
        }
    }

    // redirection → features.
    let rp = format!("{p}.redirection");
    if let Some(r) = c.obj(cfg.get("redirection"), &rp) {
        c.unknown(r, &["enabled", "services", "userConsent"], &rp);
        c.origin("features", &rp);
        let enabled = c.boolean(r, "enabled", &rp).unwrap_or(true);
        let sp = format!("{rp}.services");
        let services = c.obj(r.get("services"), &sp).cloned().unwrap_or_default();
        c.unknown(&services, &["kvm", "sol", "ider"], &sp);
        let mut f = Map::new();
        for k in ["kvm", "sol", "ider"] {
            let on = c.boolean(&services, k, &sp).unwrap_or(false) && enabled;
            f.insert(k.into(), on.into());
            c.origin(&format!("features.{k}"), &format!("{sp}.{k}"));
        }
        if let Some(u) = c.string(r, "userConsent", &rp) {
            f.insert("userConsent".into(), u.to_ascii_lowercase().into());
            c.origin("features.userConsent", &format!("{rp}.userConsent"));
        }
        out.insert("features".into(), Value::Object(f));
    }

    // network: wired, wireless, proxies.
    let np = format!("{p}.network");
    if let Some(n) = c.obj(cfg.get("network"), &np) {
        c.unknown(n, &["wired", "wireless", "proxy"], &np);
        let mut net = Map::new();
        let mut dot1x_list: Vec<Value> = Vec::new();
        let wp = format!("{np}.wired");
        if let Some(w) = c.obj(n.get("wired"), &wp) {
            c.unknown(
                w,
                &[
                    "dhcpEnabled",
                    "ipSyncEnabled",
                    "sharedStaticIP",
                    "ipAddress",
                    "subnetMask",
                    "defaultGateway",
                    "primaryDNS",
                    "secondaryDNS",
                    "authentication",
                    "ieee8021x",
                ],
                &wp,
            );
            c.origin("network.wired", &wp);
            let mut o = Map::new();
            for (theirs, mine) in [("dhcpEnabled", "dhcp"), ("ipSyncEnabled", "ipSync")] {
                if let Some(b) = c.boolean(w, theirs, &wp) {
                    o.insert(mine.into(), b.into());
                    c.origin(&format!("network.wired.{mine}"), &format!("{wp}.{theirs}"));
                }
            }
            for (theirs, mine) in [
                ("ipAddress", "ipAddress"),
                ("subnetMask", "subnetMask"),
                ("defaultGateway", "gateway"),
                ("primaryDNS", "primaryDns"),
                ("secondaryDNS", "secondaryDns"),
            ] {
                if let Some(v) = c.string(w, theirs, &wp) {
                    o.insert(mine.into(), v.into());
                    c.origin(&format!("network.wired.{mine}"), &format!("{wp}.{theirs}"));
                }
            }
            c.not_applied(
                w,
                "sharedStaticIP",
                &wp,
                "a static address is given per machine (ipAddress)",
            );
            let dp = format!("{wp}.ieee8021x");
            if let Some(d) = c.obj(w.get("ieee8021x"), &dp) {
                if d.get("username").is_some() {
                    let ours = format!("network.ieee8021x[{}]", dot1x_list.len());
                    dot1x_list.push(dot1x(&mut c, d, &dp, "wired_8021x", &ours));
                    o.insert("ieee8021x".into(), "wired_8021x".into());
                    c.origin("network.wired.ieee8021x", &dp);
                }
            }
            net.insert("wired".into(), Value::Object(o));
        }
        let wlp = format!("{np}.wireless");
        if let Some(w) = c.obj(n.get("wireless"), &wlp) {
            c.unknown(
                w,
                &["wifiSyncEnabled", "uefiWiFiSyncEnabled", "profiles"],
                &wlp,
            );
            c.origin("network.wireless", &wlp);
            let mut o = Map::new();
            for (theirs, mine) in [
                ("wifiSyncEnabled", "wifiSync"),
                ("uefiWiFiSyncEnabled", "uefiWifiSync"),
            ] {
                if let Some(b) = c.boolean(w, theirs, &wlp) {
                    o.insert(mine.into(), b.into());
                    c.origin(
                        &format!("network.wireless.{mine}"),
                        &format!("{wlp}.{theirs}"),
                    );
                }
            }
            if let Some(Value::Array(list)) = w.get("profiles") {
                let mut profiles = Vec::new();
                for (i, item) in list.iter().enumerate() {
                    let pp = format!("{wlp}.profiles[{i}]");
                    let ours = format!("network.wireless.profiles[{i}]");
                    let Some(m) = c.obj(Some(item), &pp) else {
                        continue;
                    };
                    c.unknown(
                        m,
                        &[
                            "profileName",
                            "ssid",
                            "password",
                            "authenticationMethod",
                            "encryptionMethod",
                            "priority",
                            "ieee8021x",
                        ],
                        &pp,
                    );
                    c.origin(&ours, &pp);
                    let mut o = Map::new();
                    let name = c.string(m, "profileName", &pp).unwrap_or_default();
                    o.insert("name".into(), name.clone().into());
                    c.origin(&format!("{ours}.name"), &format!("{pp}.profileName"));
                    if let Some(s) = c.string(m, "ssid", &pp) {
                        o.insert("ssid".into(), s.into());
                    }
                    if let Some(pr) = c.int(m, "priority", &pp) {
                        o.insert("priority".into(), pr.into());
                    }
                    if let Some(v) = m.get("authenticationMethod") {
                        c.origin(
                            &format!("{ours}.authentication"),
                            &format!("{pp}.authenticationMethod"),
                        );
                        match wifi_auth(v) {
                            Some(a) => {
                                o.insert("authentication".into(), a.into());
                            }
                            None => c.problem(
                                Severity::Error,
                                &format!("{pp}.authenticationMethod"),
                                format!("{v} is not one AMT takes: 4 WPA-PSK, 5 WPA-IEEE802.1x, 6 WPA2-PSK, 7 WPA2-IEEE802.1x"),
                            ),
                        }
                    }
                    if let Some(v) = m.get("encryptionMethod") {
                        c.origin(
                            &format!("{ours}.encryption"),
                            &format!("{pp}.encryptionMethod"),
                        );
                        match wifi_encryption(v) {
                            Some(e) => {
                                o.insert("encryption".into(), e.into());
                            }
                            None => c.problem(
                                Severity::Error,
                                &format!("{pp}.encryptionMethod"),
                                format!("{v} is not 3 (TKIP) or 4 (CCMP)"),
                            ),
                        }
                    }
                    if let Some(pw) = c.string(m, "password", &pp) {
                        o.insert("pskPassphrase".into(), pw.into());
                        c.origin(&format!("{ours}.pskPassphrase"), &format!("{pp}.password"));
                    }
                    let dp = format!("{pp}.ieee8021x");
                    if let Some(d) = c.obj(m.get("ieee8021x"), &dp) {
                        if d.get("username").is_some() {
                            // rpc-go names it <profileName>_8021x (rpc-go.md §8.5).
                            let dname = format!("{name}_8021x");
                            let dours = format!("network.ieee8021x[{}]", dot1x_list.len());
                            dot1x_list.push(dot1x(&mut c, d, &dp, &dname, &dours));
                            o.insert("ieee8021x".into(), dname.into());
                        }
                    }
                    profiles.push(Value::Object(o));
                }
                o.insert("profiles".into(), Value::Array(profiles));
            }
            net.insert("wireless".into(), Value::Object(o));
        }
        if !dot1x_list.is_empty() {
            net.insert("ieee8021x".into(), Value::Array(dot1x_list));
        }
        if !net.is_empty() {
            out.insert("network".into(), Value::Object(net));
        }
        if let Some(Value::Array(list)) = n.get("proxy") {
            let mut proxies = Vec::new();
            for (i, item) in list.iter().enumerate() {
                let pp = format!("{np}.proxy[{i}]");
                c.origin(&format!("proxies[{i}]"), &pp);
                let Some(m) = c.obj(Some(item), &pp) else {
                    continue;
                };
                c.unknown(m, &["address", "port", "networkDnsSuffix"], &pp);
                let mut o = Map::new();
                if let Some(a) = c.string(m, "address", &pp) {
                    o.insert("address".into(), a.into());
                }
                if let Some(port) = c.int(m, "port", &pp) {
                    o.insert("port".into(), port.into());
                }
                if let Some(s) = c.string(m, "networkDnsSuffix", &pp) {
                    o.insert("networkDnsSuffix".into(), s.into());
                }
                proxies.push(Value::Object(o));
            }
            out.insert("proxies".into(), Value::Array(proxies));
        }
    }

    // tls → mode.
    let tp = format!("{p}.tls");
    if let Some(t) = c.obj(cfg.get("tls"), &tp) {
        c.unknown(
            t,
            &[
                "signingAuthority",
                "mutualAuthentication",
                "enabled",
                "trustedCN",
                "allowNonTLS",
            ],
            &tp,
        );
        c.origin("tls", &tp);
        let enabled = c.boolean(t, "enabled", &tp).unwrap_or(false);
        let mutual = c.boolean(t, "mutualAuthentication", &tp).unwrap_or(false);
        let non_tls = c.boolean(t, "allowNonTLS", &tp).unwrap_or(false);
        let mode = match (enabled, mutual, non_tls) {
            (false, _, _) => "none",
            (true, false, false) => "server",
            (true, false, true) => "server-and-non-tls",
            (true, true, false) => "mutual",
            (true, true, true) => "mutual-and-non-tls",
        };
        c.origin("tls.mode", &format!("{tp}.enabled"));
        let mut o = json!({ "mode": mode });
        if let Some(Value::Array(cns)) = t.get("trustedCN") {
            if !cns.is_empty() {
                o["trustedCn"] = Value::Array(cns.clone());
                c.origin("tls.trustedCn", &format!("{tp}.trustedCN"));
            }
        }
        if let Some(sa) = c.string(t, "signingAuthority", &tp) {
            if !sa.eq_ignore_ascii_case("selfsigned") && enabled {
                c.problem(
                    Severity::Warning,
                    &format!("{tp}.signingAuthority"),
                    format!("{sa}: certificates from a Microsoft CA need Enterprise Assistant, which amt-agent does not use; AMT's certificate is self-signed"),
                );
            }
        }
        out.insert("tls".into(), o);
    }
    (Value::Object(out), c.origins, c.problems)
}
