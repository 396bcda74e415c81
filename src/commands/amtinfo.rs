//! `amtinfo`: what the ME says about AMT, with rpc-go's labels, order and JSON keys
//! (rpc-go.md §1.4, §6.9).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::amthi::client::amt_enabled_flags;
use crate::amthi::{
    AmthiClient, AmthiError, CertHashEntry, ControlMode, LanInterface, LanInterfaceSettings,
    ProvisioningState, PtStatus, RemoteAccessStatus,
};
use crate::cli::AmtinfoArgs;
use crate::error::{AgentError, ExitCode};
use crate::heci::MeiDevice;
use crate::upid::PlatformId;

/// Which fields to show. No flag at all shows everything but certificate hashes (as rpc-go does).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    pub ver: bool,
    pub bld: bool,
    pub sku: bool,
    pub uuid: bool,
    pub mode: bool,
    pub prov: bool,
    pub op_state: bool,
    pub dns: bool,
    pub hostname: bool,
    pub ras: bool,
    pub lan: bool,
    pub upid: bool,
    /// The UPID was not asked for by name (no flag, or `--all`): a platform without one is no error,
    /// as in rpc-go, which leaves the key out.
    pub upid_optional: bool,
    pub cert: bool,
}

impl Selection {
    pub fn from_args(a: &AmtinfoArgs) -> Selection {
        let any = a.ver
            || a.bld
            || a.sku
            || a.uuid
            || a.mode
            || a.provisioning_state
            || a.operational_state
            || a.dns
            || a.hostname
            || a.ras
            || a.lan
            || a.upid
            || a.cert;
        if a.all || !any {
            return Selection {
                ver: true,
                bld: true,
                sku: true,
                uuid: true,
                mode: true,
                prov: true,
                op_state: true,
                dns: true,
                hostname: true,
                ras: true,
                lan: true,
                upid: true,
                upid_optional: !a.upid,
                cert: a.all || a.cert,
            };
        }
        Selection {
            ver: a.ver,
            bld: a.bld,
            sku: a.sku,
            uuid: a.uuid,
            mode: a.mode,
            prov: a.provisioning_state,
            op_state: a.operational_state,
            dns: a.dns,
            hostname: a.hostname,
            ras: a.ras,
            lan: a.lan,
            upid: a.upid,
            upid_optional: false,
            cert: a.cert,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adapter {
    pub settings: LanInterfaceSettings,
    pub os_ip: Option<String>,
}

/// Everything amtinfo gathered; `None` where the field was not selected or could not be read.
#[derive(Clone, Debug, Default)]
pub struct AmtInfo {
    pub simulated: Option<String>,
    pub amt: Option<String>,
    pub build: Option<String>,
    pub sku: Option<String>,
    pub uuid: Option<String>,
    pub control_mode: Option<ControlMode>,
    pub provisioning_state: Option<ProvisioningState>,
    /// `Some(None)`: read, but the firmware is too old to report it.
    pub operational_state: Option<Option<bool>>,
    pub tls_enforced: Option<bool>,
    pub dns_suffix: Option<String>,
    pub dns_suffix_os: Option<String>,
    pub hostname_os: Option<String>,
    pub ras: Option<RemoteAccessStatus>,
    pub wired: Option<Adapter>,
    pub wireless: Option<Adapter>,
    pub upid: Option<PlatformId>,
    pub cert_hashes: Option<Vec<CertHashEntry>>,
}

impl AmtInfo {
    pub fn features(&self) -> Option<String> {
        Some(features(self.amt.as_deref()?, self.sku.as_deref()?))
    }

    fn amt_major(&self) -> Option<u32> {
        self.amt.as_deref()?.split('.').next()?.parse().ok()
    }
}

/// Decodes the features string from the AMT version and SKU (rpc-go.md §1.4).
pub fn features(version: &str, sku: &str) -> String {
    let mut parts = version.split('.');
    let (Some(maj), Some(min)) = (parts.next(), parts.next()) else {
        return "Invalid AMT version format".into();
    };
    let (Ok(major), Ok(minor)) = (maj.parse::<u32>(), min.parse::<u32>()) else {
        return "Invalid AMT version".into();
    };
    let sku_val = if let Some(h) = sku.strip_prefix("0x").or_else(|| sku.strip_prefix("0X")) {
        u32::from_str_radix(h, 16)
    } else {
        sku.parse::<u32>()
    };
    let Ok(s) = sku_val else {
        return "Invalid SKU".into();
    };
    if major < 2 || (major == 2 && minor <= 2) {
        return match s {
            0 => "AMT + ASF + iQST",
            1 => "ASF + iQST",
            2 => "iQST",
            _ => "Unknown",
        }
        .into();
    }
    let mut f: Vec<&str> = Vec::new();
    if major < 5 {
        for (bit, name) in [(0x02, "iQST"), (0x04, "ASF"), (0x08, "AMT")] {
            if s & bit != 0 {
                f.push(name);
            }
        }
    } else {
        let table: &[(u32, &str, u32)] = &[
            (0x02, "iQST", 7),
            (0x04, "ASF", 6),
            (0x08, "AMT Pro", u32::MAX),
            (0x10, "Intel Standard Manageability", u32::MAX),
            (0x20, "TPM", 6),
            (0x100, "Home IT", 6),
            (0x400, "WOX", 6),
            (0x2000, "AT-p", u32::MAX),
            (0x4000, "Corporate", u32::MAX),
            (0x8000, "L3 Mgt Upgrade", 8),
        ];
        for (bit, name, below) in table {
            if s & bit != 0 && major < *below {
                f.push(name);
            }
        }
    }
    f.join(" ")
}

/// Retries a read while the ME answers NOT_READY, until `deadline`.
fn when_ready<T>(
    deadline: Instant,
    mut f: impl FnMut() -> Result<T, AmthiError>,
) -> Result<T, AmthiError> {
    let mut delay = Duration::from_millis(250);
    loop {
        match f() {
            Err(e)
                if e.status() == Some(PtStatus::NotReady) && Instant::now() + delay < deadline =>
            {
                tracing::info!(
                    wait_ms = delay.as_millis() as u64,
                    "ME not ready yet; waiting"
                );
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

/// Reads the selected fields. Errors for individual fields are collected; what could be read is
/// still returned.
pub fn gather(
    device: Arc<dyn MeiDevice>,
    sel: &Selection,
    amt_timeout: Duration,
) -> (AmtInfo, Vec<AgentError>) {
    let deadline = Instant::now() + amt_timeout;
    let mut info = AmtInfo {
        simulated: device.simulated_profile(),
        ..AmtInfo::default()
    };
    let mut errors: Vec<AgentError> = Vec::new();
    let mut client = AmthiClient::new(device.clone());
    let note = |e: AmthiError, what: &str, errors: &mut Vec<AgentError>| {
        errors.push(AgentError::from(e).context(format!("could not read {what}")));
    };

    if sel.ver || sel.bld || sel.sku || sel.op_state {
        match when_ready(deadline, || client.code_versions()) {
            Ok(cv) => {
                info.amt = cv.get("AMT").map(str::to_string);
                info.build = cv.get("Build Number").map(str::to_string);
                info.sku = cv.get("Sku").map(str::to_string);
            }
            Err(e) => {
                // Nothing else will work if the client is absent or the device is missing.
                let fatal = matches!(&e, AmthiError::Heci(_));
                note(e, "the code versions", &mut errors);
                if fatal {
                    return (info, errors);
                }
            }
        }
    }
    if sel.uuid {
        match when_ready(deadline, || client.uuid()) {
            Ok(u) => info.uuid = Some(u.text()),
            Err(e) => note(e, "the UUID", &mut errors),
        }
    }
    if sel.mode {
        match when_ready(deadline, || client.control_mode()) {
            Ok(m) => info.control_mode = Some(m),
            Err(e) => note(e, "the control mode", &mut errors),
        }
    }
    if sel.prov {
        match when_ready(deadline, || client.provisioning_state()) {
            Ok(s) => info.provisioning_state = Some(s),
            Err(e) => note(e, "the provisioning state", &mut errors),
        }
    }
    if sel.dns {
        match when_ready(deadline, || client.pki_dns_suffix()) {
            Ok(s) => info.dns_suffix = Some(s),
            Err(e) => note(e, "the PKI DNS suffix", &mut errors),
        }
        info.dns_suffix_os = Some(crate::os::dns_suffix());
    }
    if sel.hostname {
        info.hostname_os = Some(crate::os::hostname());
    }
    if sel.ras {
        match when_ready(deadline, || client.remote_access_status()) {
            Ok(r) => info.ras = Some(r),
            Err(e) => note(e, "the remote access status", &mut errors),
        }
    }
    if sel.lan {
        for (iface, slot) in [
            (LanInterface::Wired, &mut info.wired),
            (LanInterface::Wireless, &mut info.wireless),
        ] {
            match when_ready(deadline, || client.lan_interface(iface)) {
                Ok(s) => {
                    *slot = Some(Adapter {
                        os_ip: crate::os::ipv4_for_mac(&s.mac).map(|ip| ip.to_string()),
                        settings: s,
                    })
                }
                Err(e) => note(e, "the LAN interface settings", &mut errors),
            }
        }
    }
    if sel.cert {
        match when_ready(deadline, || client.cert_hashes()) {
            Ok(h) => info.cert_hashes = Some(h),
            Err(e) => note(e, "the certificate hashes", &mut errors),
        }
    }
    drop(client);
    if sel.upid {
        // Its own ME client (rpc-go.md §6.6, §6.9).
        match crate::upid::client::read_platform_id(
            device.as_ref(),
            crate::upid::client::DEFAULT_TIMEOUT,
        ) {
            Ok(id) => info.upid = Some(id),
            Err(e) if sel.upid_optional => {
                tracing::debug!(error = %e, "no UPID to show");
            }
            Err(e) => errors.push(AgentError::from(e).context("could not read the Intel UPID")),
        }
    }
    if sel.op_state {
        match amt_enabled_flags(device.as_ref(), crate::amthi::client::DEFAULT_TIMEOUT) {
            Ok(flags) => {
                // Meaningful only on AMT > 11 with the new-interface bit (rpc-go.md §6.5).
                let meaningful = flags.new_interface() && info.amt_major().is_some_and(|m| m > 11);
                info.operational_state = Some(meaningful.then(|| flags.amt_enabled()));
                info.tls_enforced = Some(flags.new_interface() && flags.tls_enforced());
            }
            Err(e) => errors.push(
                AgentError::from(e)
                    .context("could not read the AMT operational state (watchdog client)"),
            ),
        }
    }
    (info, errors)
}

fn adapter_text(out: &mut String, a: &Adapter) {
    let s = &a.settings;
    let _ = writeln!(out, "DHCP Enabled \t\t: {}", s.dhcp_enabled);
    let _ = writeln!(
        out,
        "DHCP Mode    \t\t: {}",
        if s.dhcp_ip_mode == 1 {
            "active"
        } else {
            "passive"
        }
    );
    let _ = writeln!(
        out,
        "Link Status  \t\t: {}",
        if s.link_status == 1 { "up" } else { "down" }
    );
    let _ = writeln!(out, "AMT IP Address\t\t: {}", s.ip_text());
    let _ = writeln!(
        out,
        "OS  IP Address\t\t: {}",
        a.os_ip.as_deref().unwrap_or("Not Found")
    );
    let _ = writeln!(out, "MAC Address  \t\t: {}", s.mac_text());
}

fn hash_flags(e: &CertHashEntry) -> &'static str {
    match (e.is_default, e.is_active) {
        (true, true) => "  (Default, Active)",
        (true, false) => "  (Default)",
        (false, true) => "  (Active)",
        (false, false) => "",
    }
}

/// rpc-go v2's text layout, labels and order (rpc-go.md §1.4), plus the provisioning state and TLS
/// enforcement lines.
pub fn render_text(info: &AmtInfo, sel: &Selection) -> String {
    let mut o = String::new();
    let v = |x: &Option<String>| x.clone().unwrap_or_default();
    if sel.ver {
        let _ = writeln!(o, "Version\t\t\t: {}", v(&info.amt));
    }
    if sel.bld {
        let _ = writeln!(o, "Build Number\t\t: {}", v(&info.build));
    }
    if sel.sku {
        let _ = writeln!(o, "SKU\t\t\t: {}", v(&info.sku));
    }
    if sel.ver && sel.sku {
        let _ = writeln!(o, "Features\t\t: {}", info.features().unwrap_or_default());
    }
    if sel.uuid {
        let _ = writeln!(o, "UUID\t\t\t: {}", v(&info.uuid));
    }
    if sel.mode {
        let _ = writeln!(
            o,
            "Control Mode\t\t: {}",
            info.control_mode.map(|m| m.text()).unwrap_or_default()
        );
    }
    if sel.prov {
        let _ = writeln!(
            o,
            "Provisioning State\t: {}",
            info.provisioning_state
                .map(|s| s.text())
                .unwrap_or_default()
        );
    }
    if sel.op_state {
        if let Some(Some(on)) = info.operational_state {
            let _ = writeln!(
                o,
                "Operational State\t: {}",
                if on { "enabled" } else { "disabled" }
            );
        }
        if let Some(t) = info.tls_enforced {
            let _ = writeln!(o, "TLS Enforced\t\t: {t}");
        }
    }
    if sel.dns {
        let _ = writeln!(o, "DNS Suffix\t\t: {}", v(&info.dns_suffix));
        let _ = writeln!(o, "DNS Suffix (OS)\t\t: {}", v(&info.dns_suffix_os));
    }
    if sel.hostname {
        let _ = writeln!(o, "Hostname (OS)\t\t: {}", v(&info.hostname_os));
    }
    if sel.ras {
        if let Some(r) = &info.ras {
            let _ = writeln!(o, "RAS Network      \t: {}", r.network_text());
            let _ = writeln!(o, "RAS Remote Status\t: {}", r.remote_text());
            let _ = writeln!(o, "RAS Trigger      \t: {}", r.trigger_text());
            let _ = writeln!(o, "RAS MPS Hostname \t: {}", r.mps_hostname);
        }
    }
    if sel.lan {
        if let Some(w) = &info.wired {
            if w.settings.mac != [0; 6] {
                o.push_str("---Wired Adapter---\n");
                adapter_text(&mut o, w);
            }
        }
        if let Some(w) = &info.wireless {
            o.push_str("---Wireless Adapter---\n");
            adapter_text(&mut o, w);
        }
    }
    if sel.upid {
        if let Some(id) = &info.upid {
            o.push_str("---Intel UPID---\n");
            let _ = writeln!(o, "Platform ID Type\t: {}", id.oem_platform_id_type.text());
            let _ = writeln!(o, "OEM ID\t\t\t: {}", id.oem_id_text());
            let _ = writeln!(o, "CSME ID\t\t\t: {}", id.csme_id_text());
        }
    }
    if sel.cert {
        match &info.cert_hashes {
            Some(h) if !h.is_empty() => {
                o.push_str("---Certificate Hashes---\n");
                for e in h {
                    let _ = writeln!(o, "{}{}", e.name, hash_flags(e));
                    let _ = writeln!(o, "   {}: {}", e.algorithm.name(), e.hash_hex());
                }
            }
            Some(_) => o.push_str("---No Certificate Hashes Found---\n"),
            None => {}
        }
    }
    o
}

fn adapter_json(a: &Adapter) -> Value {
    let s = &a.settings;
    json!({
        "isEnable": s.enabled,
        "linkStatus": if s.link_status == 1 { "up" } else { "down" },
        "dhcpEnabled": s.dhcp_enabled,
        "dhcpMode": if s.dhcp_ip_mode == 1 { "active" } else { "passive" },
        "ipAddress": s.ip_text(),
        "osIpAddress": a.os_ip.clone().unwrap_or_else(|| "Not Found".into()),
        "macAddress": s.mac_text(),
    })
}

/// rpc-go's JSON keys, in rpc-go v3's order (rpc-go.md §1.4).
pub fn render_json(info: &AmtInfo) -> Value {
    let mut m = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.to_string(), v);
        }
    };
    put("amt", info.amt.clone().map(Value::from));
    put("buildNumber", info.build.clone().map(Value::from));
    put("sku", info.sku.clone().map(Value::from));
    put("features", info.features().map(Value::from));
    put("uuid", info.uuid.clone().map(Value::from));
    put(
        "controlMode",
        info.control_mode.map(|c| Value::from(c.text())),
    );
    put(
        "provisioningState",
        info.provisioning_state.map(|s| Value::from(s.text())),
    );
    put(
        "operationalState",
        info.operational_state
            .flatten()
            .map(|on| Value::from(if on { "enabled" } else { "disabled" })),
    );
    put("tlsEnforced", info.tls_enforced.map(Value::from));
    put("dnsSuffix", info.dns_suffix.clone().map(Value::from));
    put("dnsSuffixOS", info.dns_suffix_os.clone().map(Value::from));
    put("hostnameOS", info.hostname_os.clone().map(Value::from));
    put(
        "ras",
        info.ras.as_ref().map(|r| {
            json!({
                "networkStatus": r.network_text(),
                "remoteStatus": r.remote_text(),
                "remoteTrigger": r.trigger_text(),
                "mpsHostname": r.mps_hostname,
            })
        }),
    );
    put("wiredAdapter", info.wired.as_ref().map(adapter_json));
    put("wirelessAdapter", info.wireless.as_ref().map(adapter_json));
    put(
        "upid",
        info.upid.as_ref().map(|id| {
            json!({
                "oemPlatformIdType": id.oem_platform_id_type.text(),
                "oemId": id.oem_id_text(),
                "csmeId": id.csme_id_text(),
            })
        }),
    );
    put(
        "certificateHashes",
        info.cert_hashes.as_ref().map(|hs| {
            let mut o = Map::new();
            for e in hs {
                o.insert(
                    e.name.clone(),
                    json!({
                        "Hash": e.hash_hex(),
                        "Name": e.name,
                        "Algorithm": e.algorithm.name(),
                        "IsActive": e.is_active,
                        "IsDefault": e.is_default,
                    }),
                );
            }
            Value::Object(o)
        }),
    );
    m.insert("heciAvailable".into(), Value::Bool(true));
    if let Some(p) = &info.simulated {
        m.insert("simulated".into(), json!({ "profile": p }));
    }
    Value::Object(m)
}

pub fn run(
    device: Arc<dyn MeiDevice>,
    args: &AmtinfoArgs,
    json_out: bool,
) -> Result<ExitCode, AgentError> {
    let sel = Selection::from_args(args);
    let (info, mut errors) = gather(device.clone(), &sel, args.amt_timeout);
    // `--userCert` (rpc-go v2): its own section and key, read over WS-MAN.
    let user_certs = if super::user_certs::wanted(args) {
        super::user_certs::read(device, &args.conn).unwrap_or_else(|e| {
            errors.push(e);
            None
        })
    } else {
        None
    };
    if let Some(p) = &info.simulated {
        if !json_out {
            crate::cli::logging::note(&format!(
                "this device is simulated (amt-sim profile {p}), not real hardware"
            ));
        }
    }
    let nothing = info.amt.is_none()
        && info.uuid.is_none()
        && info.control_mode.is_none()
        && info.provisioning_state.is_none()
        && info.dns_suffix.is_none()
        && info.ras.is_none()
        && info.wired.is_none()
        && info.upid.is_none()
        && info.cert_hashes.is_none();
    // With nothing read at all, the error alone says it better than a page of empty fields.
    if !nothing || errors.is_empty() {
        if json_out {
            let mut v = render_json(&info);
            if let (Some(c), Value::Object(m)) = (&user_certs, &mut v) {
                m.insert("publicKeyCerts".into(), super::user_certs::json(c));
            }
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        } else {
            print!("{}", render_text(&info, &sel));
            if let Some(c) = &user_certs {
                print!("{}", super::user_certs::text(c));
            }
        }
    }
    let mut errors = errors.into_iter();
    match errors.next() {
        None => Ok(ExitCode::Success),
        Some(first) => {
            for e in errors {
                eprintln!("{e}");
            }
            Err(first)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_decode_as_rpc_go_does() {
        assert_eq!(features("16.1.27", "16392"), "AMT Pro Corporate");
        assert_eq!(features("16.1.27", "0x4008"), "AMT Pro Corporate");
        assert_eq!(
            features("16.1.27", "16400"),
            "Intel Standard Manageability Corporate"
        );
        assert_eq!(features("5.2.1", "0x0126"), "iQST ASF TPM Home IT");
        assert_eq!(features("4.0.0", "14"), "iQST ASF AMT");
        assert_eq!(features("2.1.0", "1"), "ASF + iQST");
        assert_eq!(features("x", "1"), "Invalid AMT version format");
        assert_eq!(features("a.b", "1"), "Invalid AMT version");
        assert_eq!(features("16.1", "zz"), "Invalid SKU");
    }

    #[test]
    fn no_flag_selects_everything_but_certificates() {
        let s = Selection::from_args(&AmtinfoArgs::default());
        assert!(s.ver && s.lan && s.ras && !s.cert);
        let s = Selection::from_args(&AmtinfoArgs {
            all: true,
            ..Default::default()
        });
        assert!(s.cert && s.ver);
        let s = Selection::from_args(&AmtinfoArgs {
            cert: true,
            ..Default::default()
        });
        assert!(s.cert && !s.ver);
    }

    #[test]
    fn the_upid_is_shown_by_default_optionally_and_by_its_flag_as_required() {
        let s = Selection::from_args(&AmtinfoArgs::default());
        assert!(s.upid && s.upid_optional);
        let s = Selection::from_args(&AmtinfoArgs {
            all: true,
            ..Default::default()
        });
        assert!(s.upid && s.upid_optional);
        let s = Selection::from_args(&AmtinfoArgs {
            upid: true,
            ..Default::default()
        });
        assert!(s.upid && !s.upid_optional && !s.ver && !s.cert);
    }

    fn with_upid() -> AmtInfo {
        let mut csme = [0u8; 32];
        csme[0] = 0xab;
        AmtInfo {
            wireless: None,
            upid: Some(PlatformId {
                oem_platform_id_type: crate::upid::OemPlatformIdType::NotSet,
                oem_platform_id: [0; 32],
                csme_platform_id: csme,
            }),
            cert_hashes: Some(Vec::new()),
            uuid: Some("u".into()),
            ..AmtInfo::default()
        }
    }

    #[test]
    fn upid_json_is_rpc_go_v3s_object_between_the_adapters_and_the_hashes() {
        let v = render_json(&with_upid());
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(
            keys,
            ["uuid", "upid", "certificateHashes", "heciAvailable"],
            "{v}"
        );
        let u = v["upid"].as_object().unwrap();
        assert_eq!(
            u.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            ["oemPlatformIdType", "oemId", "csmeId"]
        );
        assert_eq!(v["upid"]["oemPlatformIdType"], "Not Set (0)");
        assert_eq!(v["upid"]["oemId"], "");
        assert_eq!(
            v["upid"]["csmeId"],
            format!("AB{}", "00".repeat(31)).as_str()
        );
    }

    #[test]
    fn upid_text_is_a_section_with_rpc_go_v3s_labels() {
        let sel = Selection {
            upid: true,
            ..Selection::default()
        };
        assert_eq!(
            render_text(&with_upid(), &sel),
            format!(
                "---Intel UPID---\nPlatform ID Type\t: Not Set (0)\nOEM ID\t\t\t: \nCSME ID\t\t\t: AB{}\n",
                "00".repeat(31)
            )
        );
    }
}
