//! rpc-go v2 spellings: Go's `flag` package takes `-name`, `-name value` and `-name=value`. Users and
//! scripts arrive with those, so the known set is translated to our long options before clap parses.

use std::ffi::OsString;

/// v2 name → our long option (without the leading `--`).
const V2_FLAGS: &[(&str, &str)] = &[
    ("ver", "ver"),
    ("bld", "bld"),
    ("sku", "sku"),
    ("uuid", "uuid"),
    ("mode", "mode"),
    ("dns", "dns"),
    ("hostname", "hostname"),
    ("lan", "lan"),
    ("ras", "ras"),
    ("cert", "cert"),
    ("userCert", "user-cert"),
    ("all", "all"),
    ("json", "json"),
    ("operationalState", "operational-state"),
    ("provisioningState", "provisioning-state"),
    ("password", "password"),
    ("profile", "profile"),
    ("local", "local"),
    ("ccm", "ccm"),
    ("acm", "acm"),
    ("name", "name"),
    ("tenant", "tenant"),
    ("token", "token"),
    ("skipamtcertcheck", "skip-amt-cert-check"),
    ("amtPassword", "password"),
    ("provisioningCert", "provisioning-cert"),
    ("provisioningCertPwd", "provisioning-cert-password"),
    ("mebxpassword", "mebx-password"),
    ("stopConfig", "stop-config"),
    ("device", "device"),
    // Remote (RPS) flags: activate/deactivate/maintenance (rpc-go.md §1.1).
    ("staticip", "static-ip"),
    ("netmask", "netmask"),
    ("gateway", "gateway"),
    ("primarydns", "primary-dns"),
    ("secondarydns", "secondary-dns"),
    ("proxy", "proxy"),
    // configure (rpc-go.md §1.1): amtfeatures, amtpassword, mebx, proxy.
    ("userConsent", "user-consent"),
    ("kvm", "kvm"),
    ("sol", "sol"),
    ("ider", "ider"),
    ("disableAll", "disable-all"),
    ("newamtpassword", "new-amt-password"),
    ("list", "list"),
    ("delete", "delete"),
    ("address", "address"),
    ("port", "port"),
    ("networkdnssuffix", "network-dns-suffix"),
    // configure tls and the RPS TLS tunnel.
    ("delay", "delay"),
    ("tls-tunnel", "tls-tunnel"),
    // configure wired / wireless / 802.1X (rpc-go.md §1.1).
    ("dhcp", "dhcp"),
    ("static", "static"),
    ("ipsync", "ip-sync"),
    ("ipaddress", "ip-address"),
    ("subnetmask", "subnet-mask"),
    ("profileName", "profile-name"),
    ("ssid", "ssid"),
    ("priority", "priority"),
    ("authenticationMethod", "authentication-method"),
    ("encryptionMethod", "encryption-method"),
    ("pskPassphrase", "psk-passphrase"),
    ("purge", "purge"),
    ("ieee8021xProfileName", "ieee8021x-profile-name"),
    ("username", "ieee8021x-username"),
    ("ieee8021xPassword", "ieee8021x-password"),
    (
        "authenticationProtocol",
        "ieee8021x-authentication-protocol",
    ),
    ("clientCert", "ieee8021x-client-cert"),
    ("caCert", "ieee8021x-ca-cert"),
    ("privateKey", "ieee8021x-private-key"),
    ("oswifisync", "os-wifi-sync"),
    ("uefiwifisync", "uefi-wifi-sync"),
    // configure cira (rpc-go.md §1.1, §1.2).
    ("mpsaddress", "mps-address"),
    ("mpscert", "mps-cert"),
    ("mpspassword", "mps-password"),
    ("envdetection", "env-detection"),
    ("generateRandomPassword", "generate-random-password"),
    ("help", "help"),
    ("version", "version"),
];

const LOG_LEVELS: &[&str] = &["panic", "fatal", "error", "warn", "info", "debug", "trace"];

/// Rewrites v2 single-dash long flags to `--kebab-case`; everything else passes through unchanged.
pub fn translate_v2(args: Vec<OsString>) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut iter = args.into_iter();
    if let Some(exe) = iter.next() {
        out.push(exe);
    }
    let mut rest_verbatim = false;
    for arg in iter {
        if rest_verbatim {
            out.push(arg);
            continue;
        }
        let Some(s) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if s == "--" {
            rest_verbatim = true;
            out.push(arg);
            continue;
        }
        if s.starts_with('-') && !s.starts_with("--") && s.len() > 2 {
            let body = &s[1..];
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            if let Some((_, long)) = V2_FLAGS.iter().find(|(v2, _)| *v2 == name) {
                match value {
                    Some(v) => out.push(format!("--{long}={v}").into()),
                    None => out.push(format!("--{long}").into()),
                }
                continue;
            }
        }
        out.push(arg);
    }
    // v2's `-l LEVEL` is the log level (v3 reuses -l for --local/--lan), so `-l` becomes
    // `--log-level` only when a level word follows.
    let is_activate = out.iter().skip(1).any(|a| a == "activate");
    let mut fixed = Vec::with_capacity(out.len());
    let mut i = 0;
    while i < out.len() {
        if out[i] == "-l" {
            if let Some(next) = out.get(i + 1).and_then(|n| n.to_str()) {
                if LOG_LEVELS.contains(&next) {
                    fixed.push(OsString::from("--log-level"));
                    fixed.push(OsString::from(match next {
                        "panic" | "fatal" => "error",
                        l => l,
                    }));
                    i += 2;
                    continue;
                }
            }
        }
        // v2's `activate -h HOST` is the host name sent to RPS; v3 (and clap) read `-h` as help.
        // A value after it decides: `-h` alone, or before another flag, stays help.
        if out[i] == "-h" && is_activate {
            if let Some(host) = out.get(i + 1).and_then(|n| n.to_str()) {
                if !host.starts_with('-') {
                    fixed.push(OsString::from(format!("--hostname={host}")));
                    i += 2;
                    continue;
                }
            }
        }
        fixed.push(out[i].clone());
        i += 1;
    }
    fixed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(args: &[&str]) -> Vec<String> {
        translate_v2(args.iter().map(OsString::from).collect())
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect()
    }

    #[test]
    fn v2_single_dash_flags_become_long_options() {
        assert_eq!(
            t(&["rpc", "amtinfo", "-cert", "-json", "-operationalState"]),
            ["rpc", "amtinfo", "--cert", "--json", "--operational-state"]
        );
        assert_eq!(
            t(&["rpc", "activate", "-u", "wss://x", "-profile", "p1"]),
            ["rpc", "activate", "-u", "wss://x", "--profile", "p1"]
        );
        assert_eq!(t(&["rpc", "-profile=p1"]), ["rpc", "--profile=p1"]);
        assert_eq!(
            t(&["rpc", "configure", "tls", "-mode", "Mutual", "-delay=5"]),
            ["rpc", "configure", "tls", "--mode", "Mutual", "--delay=5"]
        );
        assert_eq!(
            t(&["rpc", "activate", "-tls-tunnel", "-profile", "p"]),
            ["rpc", "activate", "--tls-tunnel", "--profile", "p"]
        );
    }

    #[test]
    fn v2_configure_network_flags_become_long_options() {
        assert_eq!(
            t(&[
                "rpc",
                "configure",
                "wired",
                "-static",
                "-ipaddress",
                "10.1.1.5",
                "-subnetmask=255.255.255.0"
            ]),
            [
                "rpc",
                "configure",
                "wired",
                "--static",
                "--ip-address",
                "10.1.1.5",
                "--subnet-mask=255.255.255.0"
            ]
        );
        assert_eq!(
            t(&[
                "rpc",
                "configure",
                "wireless",
                "-profileName",
                "p",
                "-authenticationMethod",
                "WPA2PSK",
                "-clientCert",
                "c.pem",
                "-username",
                "u"
            ]),
            [
                "rpc",
                "configure",
                "wireless",
                "--profile-name",
                "p",
                "--authentication-method",
                "WPA2PSK",
                "--ieee8021x-client-cert",
                "c.pem",
                "--ieee8021x-username",
                "u"
            ]
        );
    }

    #[test]
    fn short_flags_unknown_words_and_after_double_dash_are_untouched() {
        assert_eq!(
            t(&["rpc", "amtinfo", "-vvv", "-n"]),
            ["rpc", "amtinfo", "-vvv", "-n"]
        );
        assert_eq!(t(&["rpc", "-bogus"]), ["rpc", "-bogus"]);
        assert_eq!(t(&["rpc", "--", "-cert"]), ["rpc", "--", "-cert"]);
    }

    #[test]
    fn v2_activate_h_host_is_the_hostname_and_h_alone_is_help() {
        assert_eq!(
            t(&["rpc", "activate", "-u", "ws://x", "-h", "pc-17", "-profile", "p"]),
            [
                "rpc",
                "activate",
                "-u",
                "ws://x",
                "--hostname=pc-17",
                "--profile",
                "p"
            ]
        );
        assert_eq!(t(&["rpc", "activate", "-h"]), ["rpc", "activate", "-h"]);
        assert_eq!(
            t(&["rpc", "activate", "-h", "--local"]),
            ["rpc", "activate", "-h", "--local"]
        );
        assert_eq!(t(&["rpc", "amtinfo", "-h"]), ["rpc", "amtinfo", "-h"]);
    }

    #[test]
    fn v2_log_level_flag_is_translated_only_before_a_level() {
        assert_eq!(
            t(&["rpc", "amtinfo", "-l", "trace"]),
            ["rpc", "amtinfo", "--log-level", "trace"]
        );
        assert_eq!(t(&["rpc", "-l", "fatal"]), ["rpc", "--log-level", "error"]);
    }
}
