//! `amtinfo`: what the ME says about AMT, with rpc-go's labels, order and JSON keys
//! (rpc-go.md §1.4, §6.9).

use std::collections::BTreeMap;
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

/// Which fields to show. No flag at all shows what rpc-go v2 shows (everything but certificate
/// hashes); `--all` adds them. What v2 does not have — provisioning state, TLS enforcement, the
/// UPID — is shown only when its own flag asks for it, with or without `--all`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    pub ver: bool,
    pub bld: bool,
    pub sku: bool,
    pub uuid: bool,
    pub mode: bool,
    pub prov: bool,
    pub op_state: bool,
    pub tls: bool,
    pub dns: bool,
    pub hostname: bool,
    pub ras: bool,
    pub lan: bool,
    pub upid: bool,
    pub cert: bool,
    /// The output is JSON, where the provisioning state rides along with the control mode.
    pub json: bool,
}

impl Selection {
    pub fn from_args(a: &AmtinfoArgs) -> Selection {
        let v2_any = a.ver
            || a.bld
            || a.sku
            || a.uuid
            || a.mode
            || a.operational_state
            || a.dns
            || a.hostname
            || a.ras
            || a.lan
            || a.cert;
        let extra_any = a.provisioning_state || a.tls_enforced || a.upid;
        let extras = Selection {
            prov: a.provisioning_state,
            tls: a.tls_enforced,
            upid: a.upid,
            ..Selection::default()
        };
        if a.all || !(v2_any || extra_any) {
            return Selection {
                ver: true,
                bld: true,
                sku: true,
                uuid: true,
                mode: true,
                op_state: true,
                dns: true,
                hostname: true,
                ras: true,
                lan: true,
                cert: a.all || a.cert,
                ..extras
            };
        }
        Selection {
            ver: a.ver,
            bld: a.bld,
            sku: a.sku,
            uuid: a.uuid,
            mode: a.mode,
            op_state: a.operational_state,
            dns: a.dns,
            hostname: a.hostname,
            ras: a.ras,
            lan: a.lan,
            cert: a.cert,
            ..extras
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adapter {
    pub settings: LanInterfaceSettings,
    /// rpc-go v2's OS IP: `0.0.0.0` for an all-zero MAC, else the interface's IPv4 or `Not Found`.
    pub os_ip: String,
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
    /// Only where rpc-go v2 reports it: AMT major > 11 and the watchdog's new-interface bit.
    pub operational_state: Option<bool>,
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
    /// Whether anything was read from the ME (the OS facts and the simulator's name aside).
    /// Destructured whole, so a new field must be placed here before it compiles.
    pub fn read_anything(&self) -> bool {
        let AmtInfo {
            simulated: _,
            dns_suffix_os: _,
            hostname_os: _,
            amt,
            build,
            sku,
            uuid,
            control_mode,
            provisioning_state,
            operational_state,
            tls_enforced,
            dns_suffix,
            ras,
            wired,
            wireless,
            upid,
            cert_hashes,
        } = self;
        amt.is_some()
            || build.is_some()
            || sku.is_some()
            || uuid.is_some()
            || control_mode.is_some()
            || provisioning_state.is_some()
            || operational_state.is_some()
            || tls_enforced.is_some()
            || dns_suffix.is_some()
            || ras.is_some()
            || wired.is_some()
            || wireless.is_some()
            || upid.is_some()
            || cert_hashes.is_some()
    }

    /// The features line as rpc-go v2 prints it in text (a trailing space included); unreadable
    /// versions decode as v2 decodes its empty strings.
    pub fn features_text(&self) -> String {
        features_v2(
            self.amt.as_deref().unwrap_or_default(),
            self.sku.as_deref().unwrap_or_default(),
        )
    }
}

/// The AMT major version as rpc-go v2's `GetMajorVersion` reads it (0 when it cannot).
fn amt_major(version: &str) -> i64 {
    let mut parts = version.split('.');
    match (parts.next(), parts.next()) {
        (Some(major), Some(_)) => major.parse().unwrap_or(0),
        _ => 0,
    }
}

/// The features string decoded from the AMT version and SKU, trimmed (rpc-go.md §1.4): what v2's
/// JSON and the RPS payload carry.
pub fn features(version: &str, sku: &str) -> String {
    features_v2(version, sku).trim().to_string()
}

/// rpc-go v2's `DecodeAMT`, untrimmed: the major version is read as a float, the SKU as a Go
/// integer literal (`0x…`, `0o…`, `0b…`, a leading `0` for octal), and every name of the ≥ 5.0
/// table but the last ends with a space (rpc-go.md §1.4).
pub fn features_v2(version: &str, sku: &str) -> String {
    let parts: Vec<&str> = version.split('.').collect();
    if parts.len() <= 1 {
        return "Invalid AMT version format".into();
    }
    let Ok(ver) = parts[0].parse::<f64>() else {
        return "Invalid AMT version".into();
    };
    let Some(s) = go_parse_int(sku) else {
        return "Invalid SKU".into();
    };
    if ver <= 2.2 {
        return match s {
            0 => "AMT + ASF + iQST",
            1 => "ASF + iQST",
            2 => "iQST",
            _ => "Unknown",
        }
        .into();
    }
    let mut out = String::new();
    let table: &[(i64, &str, f64)] = if ver < 5.0 {
        &[
            (0x02, "iQST ", f64::MAX),
            (0x04, "ASF ", f64::MAX),
            (0x08, "AMT", f64::MAX),
        ]
    } else {
        &[
            (0x02, "iQST ", 7.0),
            (0x04, "ASF ", 6.0),
            (0x08, "AMT Pro ", f64::MAX),
            (0x10, "Intel Standard Manageability ", f64::MAX),
            (0x20, "TPM ", 6.0),
            (0x100, "Home IT ", 6.0),
            (0x400, "WOX ", 6.0),
            (0x2000, "AT-p ", f64::MAX),
            (0x4000, "Corporate ", f64::MAX),
            (0x8000, "L3 Mgt Upgrade", 8.0),
        ]
    };
    for (bit, name, below) in table {
        if s & bit != 0 && ver < *below {
            out.push_str(name);
        }
    }
    out
}

/// Go's `strconv.ParseInt(s, 0, 64)`: an optional sign, the base from the prefix (`0x`, `0o`, `0b`,
/// a bare leading `0` for octal), and `_` only between digits (or after the prefix).
fn go_parse_int(s: &str) -> Option<i64> {
    let (negative, unsigned) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let b = unsigned.as_bytes();
    if b.is_empty() {
        return None;
    }
    let (radix, digits) = if b[0] == b'0' {
        match b.get(1).map(u8::to_ascii_lowercase) {
            Some(b'x') if b.len() >= 3 => (16, &b[2..]),
            Some(b'o') if b.len() >= 3 => (8, &b[2..]),
            Some(b'b') if b.len() >= 3 => (2, &b[2..]),
            _ => (8, &b[1..]),
        }
    } else {
        (10, b)
    };
    let mut n: u64 = 0;
    let mut underscores = false;
    for &c in digits {
        if c == b'_' {
            underscores = true;
            continue;
        }
        let d = (c as char).to_digit(radix)?;
        n = n.checked_mul(radix as u64)?.checked_add(d as u64)?;
    }
    if underscores && !go_underscores_ok(unsigned) {
        return None;
    }
    if negative {
        (n <= 1 << 63).then(|| (n as i64).wrapping_neg())
    } else {
        i64::try_from(n).ok()
    }
}

/// Go's `underscoreOK`: every `_` follows a digit or the base prefix and precedes a digit.
fn go_underscores_ok(s: &str) -> bool {
    let b = s.as_bytes();
    // 'd' after a digit or the prefix, '_' after an underscore, '!' after anything else.
    let mut saw = '^';
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = 'd';
        hex = b[1].eq_ignore_ascii_case(&b'x');
    }
    while i < b.len() {
        let c = b[i];
        i += 1;
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = 'd';
        } else if c == b'_' {
            if saw != 'd' {
                return false;
            }
            saw = '_';
        } else {
            if saw == '_' {
                return false;
            }
            saw = '!';
        }
    }
    saw != '_'
}

/// rpc-go v2's OS IP address for an adapter AMT reports (rpc-go.md §1.4): `0.0.0.0` when the MAC is
/// all zeros (checked before any interface is looked at), else the first IPv4 address of the up,
/// non-loopback interface with that MAC, else `Not Found`.
fn os_ip_for(mac: &[u8; 6]) -> String {
    if mac.iter().all(|&b| b == 0) {
        return "0.0.0.0".into();
    }
    crate::os::ipv4_for_mac(mac)
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "Not Found".into())
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
    // The JSON carries the provisioning state beside the control mode (an added key); the text
    // shows it only when asked for, so only then is it read for text, and a failed read an error.
    if sel.prov || (sel.mode && sel.json) {
        match when_ready(deadline, || client.provisioning_state()) {
            Ok(s) => info.provisioning_state = Some(s),
            Err(e) if sel.prov => note(e, "the provisioning state", &mut errors),
            Err(e) => tracing::debug!(error = %e, "no provisioning state for the JSON"),
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
        info.hostname_os = Some(crate::os::node_name());
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
                        os_ip: os_ip_for(&s.mac),
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
        // Its own ME client (rpc-go.md §6.6, §6.9); read only when asked for, since v2 has no UPID
        // and a hung UPID client would cost the deadline.
        match crate::upid::client::read_platform_id(
            device.as_ref(),
            crate::upid::client::DEFAULT_TIMEOUT,
        ) {
            Ok(id) => info.upid = Some(id),
            Err(e) => errors.push(AgentError::from(e).context("could not read the Intel UPID")),
        }
    }
    // rpc-go v2 asks the watchdog client only on AMT > 11 (rpc-go.md §6.5, §6.9).
    let v2_reads_watchdog = sel.op_state && amt_major(info.amt.as_deref().unwrap_or_default()) > 11;
    if v2_reads_watchdog || sel.tls {
        match amt_enabled_flags(device.as_ref(), crate::amthi::client::DEFAULT_TIMEOUT) {
            Ok(flags) => {
                if v2_reads_watchdog && flags.new_interface() {
                    info.operational_state = Some(flags.amt_enabled());
                }
                info.tls_enforced = Some(flags.new_interface() && flags.tls_enforced());
            }
            Err(e) => errors.push(AgentError::from(e).context(if sel.tls {
                "could not read whether TLS is enforced (watchdog client)"
            } else {
                "could not read the AMT operational state (watchdog client)"
            })),
        }
    }
    (info, errors)
}

fn on_off(b: bool) -> &'static str {
    if b {
        "enabled"
    } else {
        "disabled"
    }
}

fn dhcp_mode(s: &LanInterfaceSettings) -> &'static str {
    if s.dhcp_ip_mode == 1 {
        "active"
    } else {
        "passive"
    }
}

fn link_status(s: &LanInterfaceSettings) -> &'static str {
    if s.link_status == 1 {
        "up"
    } else {
        "down"
    }
}

/// One adapter's six lines; an unreadable adapter prints them with empty values.
fn adapter_text(out: &mut String, a: Option<&Adapter>) {
    let f = |g: &dyn Fn(&Adapter) -> String| a.map(g).unwrap_or_default();
    let _ = writeln!(
        out,
        "DHCP Enabled \t\t: {}",
        f(&|a| a.settings.dhcp_enabled.to_string())
    );
    let _ = writeln!(
        out,
        "DHCP Mode    \t\t: {}",
        f(&|a| dhcp_mode(&a.settings).into())
    );
    let _ = writeln!(
        out,
        "Link Status  \t\t: {}",
        f(&|a| link_status(&a.settings).into())
    );
    let _ = writeln!(out, "AMT IP Address\t\t: {}", f(&|a| a.settings.ip_text()));
    let _ = writeln!(out, "OS  IP Address\t\t: {}", f(&|a| a.os_ip.clone()));
    let _ = writeln!(out, "MAC Address  \t\t: {}", f(&|a| a.settings.mac_text()));
}

fn hash_flags(e: &CertHashEntry) -> &'static str {
    match (e.is_default, e.is_active) {
        (true, true) => "  (Default, Active)",
        (true, false) => "  (Default)",
        (false, true) => "  (Active)",
        (false, false) => "",
    }
}

/// The hash entries as rpc-go v2 keeps them, in a map by name: one entry per name (the last read
/// wins), here in the firmware's handle order (v2's order is random).
fn hashes_by_name(hashes: &[CertHashEntry]) -> Vec<&CertHashEntry> {
    hashes
        .iter()
        .enumerate()
        .filter(|(i, e)| !hashes[i + 1..].iter().any(|later| later.name == e.name))
        .map(|(_, e)| e)
        .collect()
}

/// rpc-go v2's text, line for line (rpc-go.md §1.4): its labels, tabs, order and values, and each
/// block only when selected. Lines v2 does not have (provisioning state, TLS enforcement, the
/// UPID) come only with their own flags. A field that could not be read prints its line with an
/// empty value, as v2 does; the error goes to stderr.
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
        let _ = writeln!(o, "Features\t\t: {}", info.features_text());
    }
    if sel.uuid {
        let _ = writeln!(o, "UUID\t\t\t: {}", v(&info.uuid));
    }
    if sel.mode {
        let _ = writeln!(
            o,
            "Control Mode\t\t: {}",
            info.control_mode.map(|m| m.v2_text()).unwrap_or_default()
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
        if let Some(on) = info.operational_state {
            let _ = writeln!(o, "Operational State\t: {}", on_off(on));
        }
    }
    if sel.tls {
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
        let r = info.ras.as_ref();
        let f = |g: fn(&RemoteAccessStatus) -> &str| r.map(g).unwrap_or_default();
        let _ = writeln!(o, "RAS Network      \t: {}", f(|r| r.network_text()));
        let _ = writeln!(o, "RAS Remote Status\t: {}", f(|r| r.remote_text()));
        let _ = writeln!(o, "RAS Trigger      \t: {}", f(|r| r.trigger_text()));
        let _ = writeln!(o, "RAS MPS Hostname \t: {}", f(|r| &r.mps_hostname));
    }
    if sel.lan {
        // v2 leaves out a wired adapter whose MAC is all zeros, and always shows the wireless one.
        if info.wired.as_ref().is_none_or(|w| w.settings.mac != [0; 6]) {
            o.push_str("---Wired Adapter---\n");
            adapter_text(&mut o, info.wired.as_ref());
        }
        o.push_str("---Wireless Adapter---\n");
        adapter_text(&mut o, info.wireless.as_ref());
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
        let hashes = info.cert_hashes.as_deref().unwrap_or_default();
        o.push_str(if hashes.is_empty() {
            "---No Certificate Hashes Found---\n"
        } else {
            "---Certificate Hashes---\n"
        });
        for e in hashes_by_name(hashes) {
            let _ = writeln!(o, "{}{}", e.name, hash_flags(e));
            let _ = writeln!(o, "   {}: {}", e.algorithm.name(), e.hash_hex());
        }
    }
    o
}

fn adapter_json(a: &Adapter) -> Value {
    let s = &a.settings;
    // Go's struct field order (rpc-go's InterfaceSettings), not alphabetical.
    json!({
        "isEnable": s.enabled,
        "linkStatus": link_status(s),
        "dhcpEnabled": s.dhcp_enabled,
        "dhcpMode": dhcp_mode(s),
        "ipAddress": s.ip_text(),
        "osIpAddress": a.os_ip,
        "macAddress": s.mac_text(),
    })
}

/// rpc-go v2's JSON, byte for byte for the keys v2 has (rpc-go.md §1.4): a Go map printed by
/// `json.MarshalIndent` with two spaces, so the top-level keys and the certificate names are
/// sorted; the values inside `ras`, the adapters and each hash entry keep Go's struct field
/// order; `<`, `>` and `&` are escaped as Go does. Added keys (`heciAvailable`,
/// `provisioningState`, `simulated`, `tlsEnforced`, `upid`) take their sorted places too, so a
/// diff against rpc-go's output shows only them. A key whose read failed is left out.
/// `public_key_certs`: rpc-go v2's `publicKeyCerts` object (`--userCert`), read over WS-MAN apart.
pub fn render_json(info: &AmtInfo, sel: &Selection, public_key_certs: Option<Value>) -> String {
    let mut m: BTreeMap<&str, Value> = BTreeMap::new();
    let mut put = |k: &'static str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k, v);
        }
    };
    // One read gives all three versions; each key only when its flag selected it.
    put("amt", info.amt.clone().filter(|_| sel.ver).map(Value::from));
    put(
        "buildNumber",
        info.build.clone().filter(|_| sel.bld).map(Value::from),
    );
    put("sku", info.sku.clone().filter(|_| sel.sku).map(Value::from));
    put(
        "features",
        (sel.ver && sel.sku).then(|| Value::from(info.features_text().trim())),
    );
    put("uuid", info.uuid.clone().map(Value::from));
    put(
        "controlMode",
        info.control_mode.map(|c| Value::from(c.v2_text())),
    );
    put(
        "provisioningState",
        info.provisioning_state.map(|s| Value::from(s.text())),
    );
    put(
        "operationalState",
        info.operational_state.map(|on| Value::from(on_off(on))),
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
            let by_name: BTreeMap<&str, Value> = hashes_by_name(hs)
                .into_iter()
                .map(|e| {
                    (
                        e.name.as_str(),
                        json!({
                            "Hash": e.hash_hex(),
                            "Name": e.name,
                            "Algorithm": e.algorithm.name(),
                            "IsActive": e.is_active,
                            "IsDefault": e.is_default,
                        }),
                    )
                })
                .collect();
            Value::Object(
                by_name
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            )
        }),
    );
    put("publicKeyCerts", public_key_certs);
    put("heciAvailable", Some(Value::Bool(true)));
    put(
        "simulated",
        info.simulated.as_ref().map(|p| json!({ "profile": p })),
    );
    let object: Map<String, Value> = m.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    go_html_escape(&serde_json::to_string_pretty(&Value::Object(object)).unwrap_or_default())
}

/// Go's encoding/json escapes `<`, `>`, `&`, U+2028 and U+2029 inside strings; serde_json does
/// not. None of them can appear in JSON outside a string, so replacing them everywhere is exact.
fn go_html_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

pub fn run(
    device: Arc<dyn MeiDevice>,
    args: &AmtinfoArgs,
    json_out: bool,
) -> Result<ExitCode, AgentError> {
    let sel = Selection {
        json: json_out,
        ..Selection::from_args(args)
    };
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
    let nothing = !info.read_anything();
    // With nothing read at all, the error alone says it better than a page of empty fields.
    if !nothing || errors.is_empty() {
        if json_out {
            let certs = user_certs.as_deref().map(super::user_certs::json);
            println!("{}", render_json(&info, &sel, certs));
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
    use crate::amthi::HashAlgorithm;

    /// A wireless adapter alone (the wired read failed) is something read: it is printed.
    #[test]
    fn any_field_read_from_the_me_counts_but_the_os_facts_do_not() {
        let os_only = AmtInfo {
            hostname_os: Some("wks".into()),
            dns_suffix_os: Some("corp.example.com".into()),
            simulated: Some("amt16.1".into()),
            ..AmtInfo::default()
        };
        assert!(!os_only.read_anything());
        let wireless = AmtInfo {
            wireless: Some(Adapter {
                settings: LanInterfaceSettings {
                    enabled: true,
                    ipv4: 0,
                    dhcp_enabled: true,
                    dhcp_ip_mode: 2,
                    link_status: 1,
                    mac: [0xa4, 0xbb, 0x6d, 0x12, 0x34, 0x57],
                },
                os_ip: "Not Found".into(),
            }),
            ..os_only.clone()
        };
        assert!(wireless.read_anything());
        let operational = AmtInfo {
            operational_state: Some(true),
            ..os_only
        };
        assert!(operational.read_anything());
    }

    #[test]
    fn features_decode_as_rpc_go_v2_does_trailing_space_included() {
        assert_eq!(features_v2("16.1.27", "16392"), "AMT Pro Corporate ");
        assert_eq!(features("16.1.27", "16392"), "AMT Pro Corporate");
        assert_eq!(features_v2("16.1.27", "0x4008"), "AMT Pro Corporate ");
        assert_eq!(
            features_v2("16.1.27", "16400"),
            "Intel Standard Manageability Corporate "
        );
        assert_eq!(features_v2("5.2.1", "0x0126"), "iQST ASF TPM Home IT ");
        assert_eq!(features_v2("7.0.0", "0x8000"), "L3 Mgt Upgrade");
        assert_eq!(features_v2("4.0.0", "14"), "iQST ASF AMT");
        assert_eq!(features_v2("2.1.0", "1"), "ASF + iQST");
        // The major alone is compared with 2.2, so every 2.x takes the oldest table.
        assert_eq!(features_v2("2.6.0", "1"), "ASF + iQST");
        // The minor is never parsed.
        assert_eq!(features_v2("16.x", "8"), "AMT Pro ");
        // A leading 0 is octal for Go: 010 is 8.
        assert_eq!(features_v2("16.1.27", "010"), "AMT Pro ");
        assert_eq!(features_v2("x", "1"), "Invalid AMT version format");
        assert_eq!(features_v2("", ""), "Invalid AMT version format");
        assert_eq!(features_v2("a.b", "1"), "Invalid AMT version");
        assert_eq!(features_v2("16.1", "zz"), "Invalid SKU");
        assert_eq!(features_v2("16.1", ""), "Invalid SKU");
    }

    #[test]
    fn sku_literals_parse_as_gos_parse_int_with_base_0() {
        for (s, want) in [
            ("16392", Some(16392)),
            ("0x4008", Some(0x4008)),
            ("0X4008", Some(0x4008)),
            ("0o17", Some(15)),
            ("0b101", Some(5)),
            ("017", Some(15)),
            ("0", Some(0)),
            ("+8", Some(8)),
            ("-1", Some(-1)),
            ("1_000", Some(1000)),
            ("0x_40_08", Some(0x4008)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("1__0", None),
            ("_1", None),
            ("1_", None),
            ("0x", None),
            ("08", None),
            ("", None),
            ("-", None),
            (" 1", None),
        ] {
            assert_eq!(go_parse_int(s), want, "{s:?}");
        }
    }

    #[test]
    fn the_major_version_reads_as_v2s_get_major_version() {
        assert_eq!(amt_major("16.1.27"), 16);
        assert_eq!(amt_major("11.8.50"), 11);
        assert_eq!(amt_major("16"), 0);
        assert_eq!(amt_major("x.1"), 0);
        assert_eq!(amt_major(""), 0);
    }

    #[test]
    fn no_flag_selects_what_v2_shows_and_extras_need_their_own_flags() {
        let s = Selection::from_args(&AmtinfoArgs::default());
        assert!(s.ver && s.lan && s.ras && s.op_state && !s.cert);
        assert!(!s.prov && !s.tls && !s.upid, "{s:?}");
        let s = Selection::from_args(&AmtinfoArgs {
            all: true,
            ..Default::default()
        });
        assert!(s.cert && s.ver && !s.prov && !s.tls && !s.upid);
        let s = Selection::from_args(&AmtinfoArgs {
            all: true,
            upid: true,
            tls_enforced: true,
            ..Default::default()
        });
        assert!(s.cert && s.ver && s.upid && s.tls && !s.prov);
        let s = Selection::from_args(&AmtinfoArgs {
            cert: true,
            ..Default::default()
        });
        assert!(s.cert && !s.ver);
        let s = Selection::from_args(&AmtinfoArgs {
            upid: true,
            ..Default::default()
        });
        assert_eq!(
            s,
            Selection {
                upid: true,
                ..Selection::default()
            }
        );
    }

    fn entry(name: &str, byte: u8, default: bool, active: bool) -> CertHashEntry {
        CertHashEntry {
            is_default: default,
            is_active: active,
            hash: [byte; 64],
            algorithm: HashAlgorithm::Sha256,
            name: name.into(),
        }
    }

    fn sample() -> AmtInfo {
        AmtInfo {
            amt: Some("16.1.27".into()),
            sku: Some("16392".into()),
            control_mode: Some(ControlMode::Ccm),
            provisioning_state: Some(ProvisioningState::Post),
            ras: Some(RemoteAccessStatus {
                network_status: 2,
                remote_status: 2,
                remote_trigger: 1,
                mps_hostname: "mps.example".into(),
            }),
            cert_hashes: Some(vec![
                entry("zeta <&> root", 0x11, true, true),
                entry("Alpha", 0x22, false, true),
                entry("Alpha", 0x33, true, false),
                entry("beta", 0x44, false, false),
            ]),
            ..AmtInfo::default()
        }
    }

    #[test]
    fn json_is_a_go_map_sorted_with_struct_order_inside_and_go_escaping() {
        let sel = Selection {
            ver: true,
            sku: true,
            mode: true,
            ras: true,
            cert: true,
            ..Selection::default()
        };
        let h = |b: u8| format!("{b:02x}").repeat(32);
        let want = format!(
            r#"{{
  "amt": "16.1.27",
  "certificateHashes": {{
    "Alpha": {{
      "Hash": "{}",
      "Name": "Alpha",
      "Algorithm": "SHA256",
      "IsActive": false,
      "IsDefault": true
    }},
    "beta": {{
      "Hash": "{}",
      "Name": "beta",
      "Algorithm": "SHA256",
      "IsActive": false,
      "IsDefault": false
    }},
    "zeta \u003c\u0026\u003e root": {{
      "Hash": "{}",
      "Name": "zeta \u003c\u0026\u003e root",
      "Algorithm": "SHA256",
      "IsActive": true,
      "IsDefault": true
    }}
  }},
  "controlMode": "activated in client control mode",
  "features": "AMT Pro Corporate",
  "heciAvailable": true,
  "provisioningState": "post-provisioning",
  "ras": {{
    "networkStatus": "outside enterprise",
    "remoteStatus": "connected",
    "remoteTrigger": "alert",
    "mpsHostname": "mps.example"
  }},
  "sku": "16392"
}}"#,
            h(0x33),
            h(0x44),
            h(0x11)
        );
        assert_eq!(render_json(&sample(), &sel, None), want);
    }

    #[test]
    fn text_is_v2s_with_one_line_per_hash_name_and_the_features_trailing_space() {
        let sel = Selection {
            ver: true,
            sku: true,
            mode: true,
            ras: true,
            cert: true,
            ..Selection::default()
        };
        let h = |b: u8| format!("{b:02x}").repeat(32);
        assert_eq!(
            render_text(&sample(), &sel),
            format!(
                "Version\t\t\t: 16.1.27\nSKU\t\t\t: 16392\nFeatures\t\t: AMT Pro Corporate \n\
                 Control Mode\t\t: activated in client control mode\n\
                 RAS Network      \t: outside enterprise\nRAS Remote Status\t: connected\n\
                 RAS Trigger      \t: alert\nRAS MPS Hostname \t: mps.example\n\
                 ---Certificate Hashes---\n\
                 zeta <&> root  (Default, Active)\n   SHA256: {}\n\
                 Alpha  (Default)\n   SHA256: {}\n\
                 beta\n   SHA256: {}\n",
                h(0x11),
                h(0x33),
                h(0x44)
            )
        );
    }

    #[test]
    fn unreadable_blocks_print_v2s_lines_with_empty_values() {
        let sel = Selection {
            ras: true,
            lan: true,
            cert: true,
            ..Selection::default()
        };
        let text = render_text(&AmtInfo::default(), &sel);
        assert_eq!(
            text,
            "RAS Network      \t: \nRAS Remote Status\t: \nRAS Trigger      \t: \nRAS MPS Hostname \t: \n\
             ---Wired Adapter---\nDHCP Enabled \t\t: \nDHCP Mode    \t\t: \nLink Status  \t\t: \n\
             AMT IP Address\t\t: \nOS  IP Address\t\t: \nMAC Address  \t\t: \n\
             ---Wireless Adapter---\nDHCP Enabled \t\t: \nDHCP Mode    \t\t: \nLink Status  \t\t: \n\
             AMT IP Address\t\t: \nOS  IP Address\t\t: \nMAC Address  \t\t: \n\
             ---No Certificate Hashes Found---\n"
        );
        assert_eq!(
            render_json(&AmtInfo::default(), &sel, None),
            "{\n  \"heciAvailable\": true\n}"
        );
    }

    #[test]
    fn a_zero_mac_has_os_ip_0_0_0_0_and_hides_only_the_wired_block() {
        assert_eq!(os_ip_for(&[0; 6]), "0.0.0.0");
        // A locally administered MAC no interface here carries.
        assert_eq!(
            os_ip_for(&[0x02, 0xde, 0xad, 0xbe, 0xef, 0x01]),
            "Not Found"
        );
        let zero = Adapter {
            settings: LanInterfaceSettings {
                enabled: false,
                ipv4: 0,
                dhcp_enabled: true,
                dhcp_ip_mode: 2,
                link_status: 0,
                mac: [0; 6],
            },
            os_ip: os_ip_for(&[0; 6]),
        };
        let info = AmtInfo {
            wired: Some(zero.clone()),
            wireless: Some(zero),
            ..AmtInfo::default()
        };
        let sel = Selection {
            lan: true,
            ..Selection::default()
        };
        assert_eq!(
            render_text(&info, &sel),
            "---Wireless Adapter---\nDHCP Enabled \t\t: true\nDHCP Mode    \t\t: passive\n\
             Link Status  \t\t: down\nAMT IP Address\t\t: 0.0.0.0\nOS  IP Address\t\t: 0.0.0.0\n\
             MAC Address  \t\t: 00:00:00:00:00:00\n"
        );
    }

    fn with_upid() -> AmtInfo {
        let mut csme = [0u8; 32];
        csme[0] = 0xab;
        AmtInfo {
            upid: Some(PlatformId {
                oem_platform_id_type: crate::upid::OemPlatformIdType::NotSet,
                oem_platform_id: [0; 32],
                csme_platform_id: csme,
            }),
            uuid: Some("u".into()),
            ..AmtInfo::default()
        }
    }

    #[test]
    fn upid_json_is_rpc_go_v3s_object_in_its_sorted_place() {
        let sel = Selection {
            uuid: true,
            upid: true,
            ..Selection::default()
        };
        let v: Value = serde_json::from_str(&render_json(&with_upid(), &sel, None)).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, ["heciAvailable", "upid", "uuid"], "{v}");
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
