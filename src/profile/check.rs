//! `amt-agent profile check`: every problem of a profile, each with its path in the file, offline.
//! First the schema (docs/profile.schema.json, the one the README documents), then the firmware's
//! rules: AMT's password rules, the control mode's limits (user consent, the MEBx password), the
//! certificate doctor on the provisioning certificate, addresses, references between entries,
//! and plain-text secrets in a file other users can read.

use std::path::Path;

use serde_json::Value;

use super::{Document, Profile, SecretRef, WantedMode};
use crate::error::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn word(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One problem: where (the file's own path, `features.userConsent`), what, and the fix.
#[derive(Clone, Debug)]
pub struct Problem {
    pub severity: Severity,
    pub path: String,
    pub message: String,
    pub help: Option<String>,
    /// FailedReadingConfiguration for a problem that makes the file untrustworthy (a plain-text
    /// secret others can read): [`verdict`] then exits 34; Success otherwise.
    pub exit: ExitCode,
}

impl Problem {
    fn error(path: &str, message: impl Into<String>) -> Problem {
        Problem {
            severity: Severity::Error,
            path: path.to_string(),
            message: message.into(),
            help: None,
            exit: ExitCode::Success,
        }
    }

    fn warning(path: &str, message: impl Into<String>) -> Problem {
        Problem {
            severity: Severity::Warning,
            ..Problem::error(path, message)
        }
    }

    fn help(mut self, h: impl Into<String>) -> Problem {
        self.help = Some(h.into());
        self
    }

    fn exit(mut self, e: ExitCode) -> Problem {
        self.exit = e;
        self
    }

    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "severity": self.severity.word(),
            "path": self.path,
            "message": self.message,
            "help": self.help,
        })
    }

    /// `error: PATH: message` and, when there is one, `  help: fix`.
    pub fn render(&self) -> String {
        let mut s = format!("{}: {}: {}", self.severity.word(), self.path, self.message);
        if let Some(h) = &self.help {
            s.push_str(&format!("\n  help: {h}"));
        }
        s
    }
}

/// The exit code for a profile with `problems`: 0 without errors, 34 (FailedReadingConfiguration)
/// for a plain-text secret others can read, else 35 (MissingOrInvalidConfiguration).
pub fn verdict(problems: &[Problem]) -> ExitCode {
    let errors: Vec<&Problem> = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .collect();
    if errors.is_empty() {
        ExitCode::Success
    } else if errors
        .iter()
        .any(|p| p.exit == ExitCode::FailedReadingConfiguration)
    {
        ExitCode::FailedReadingConfiguration
    } else {
        ExitCode::MissingOrInvalidConfiguration
    }
}

/// What a check may use besides the file.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// Where generated passwords live: a `generate` already made is checked too.
    pub data_dir: Option<super::secrets::DataDir>,
}

const AMT_RULES: &str = "use 8–32 ASCII characters with upper and lower case, a digit and a special character (not \" , or :), or `generate`";

/// Every problem of `doc`; `file` (when it is one) is checked for being readable by others.
pub fn check(doc: &Document, file: Option<&Path>, ctx: &Context) -> Vec<Problem> {
    let mut out: Vec<Problem> = doc.conversion.clone();
    let mut ours = Vec::new();
    schema(&doc.value, &mut ours);
    if ours.is_empty() {
        match serde_json::from_value::<Profile>(doc.value.clone()) {
            Ok(p) => semantic(&p, doc, file, ctx, &mut ours),
            Err(e) => ours.push(Problem::error("", format!("{e}"))),
        }
    }
    for mut p in ours {
        p.path = doc.origin(&p.path);
        if p.path.is_empty() {
            p.path = "(top level)".into();
        }
        out.push(p);
    }
    out
}

fn compiled() -> &'static jsonschema::JSONSchema {
    static C: std::sync::OnceLock<jsonschema::JSONSchema> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        let schema: Value =
            serde_json::from_str(super::SCHEMA).expect("docs/profile.schema.json is JSON");
        jsonschema::JSONSchema::compile(&schema).expect("docs/profile.schema.json compiles")
    })
}

/// JSON pointer `/network/wired/0/x` → `network.wired[0].x`.
fn dotted(pointer: &str) -> String {
    let mut s = String::new();
    for part in pointer.split('/').skip(1) {
        let part = part.replace("~1", "/").replace("~0", "~");
        if part.parse::<usize>().is_ok() {
            s.push_str(&format!("[{part}]"));
        } else {
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(&part);
        }
    }
    s
}

fn schema(v: &Value, out: &mut Vec<Problem>) {
    if let Err(errors) = compiled().validate(v) {
        for e in errors {
            let path = dotted(&e.instance_path.to_string());
            out.push(
                Problem::error(&path, schema_message(&e.kind))
                    .help("see docs/profile.schema.json and the README's example profile"),
            );
        }
    }
}

/// What a schema rule wants, in words built from the rule alone: jsonschema's own text repeats the
/// value, and a profile's values include its secrets (a password typed where an object was wanted,
/// a number where a passphrase was).
fn schema_message(kind: &jsonschema::error::ValidationErrorKind) -> String {
    use jsonschema::error::ValidationErrorKind as K;
    match kind {
        // The schema's only oneOf: a certificate given as a file or inline.
        K::OneOfNotValid | K::OneOfMultipleValid => "give exactly one of file and base64".into(),
        K::AnyOf => "matches none of the forms this key takes".into(),
        K::Type { kind } => format!("must be of type {}", type_words(kind)),
        K::Required { property } => format!("{property} is required"),
        K::AdditionalProperties { unexpected } => format!(
            "unknown key{} {}",
            if unexpected.len() == 1 { "" } else { "s" },
            unexpected.join(", ")
        ),
        K::Enum { options } => format!("must be one of {options}"),
        K::Constant { expected_value } => format!("must be {expected_value}"),
        K::Minimum { limit } => format!("must be at least {limit}"),
        K::Maximum { limit } => format!("must be at most {limit}"),
        K::ExclusiveMinimum { limit } => format!("must be more than {limit}"),
        K::ExclusiveMaximum { limit } => format!("must be less than {limit}"),
        K::MinLength { limit } => format!("must be at least {limit} characters long"),
        K::MaxLength { limit } => format!("must be at most {limit} characters long"),
        K::MinItems { limit } => format!("must list at least {limit} items"),
        K::MaxItems { limit } => format!("must list at most {limit} items"),
        K::UniqueItems => "must not list an item twice".into(),
        K::Pattern { pattern } => format!("must match {pattern}"),
        K::Format { format } => format!("must be a valid {format}"),
        _ => "does not match the profile schema".into(),
    }
}

fn type_words(kind: &jsonschema::error::TypeKind) -> String {
    use jsonschema::error::TypeKind;
    match kind {
        TypeKind::Single(t) => t.to_string(),
        TypeKind::Multiple(ts) => ts
            .into_iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

fn valid_label(l: &str) -> bool {
    (1..=63).contains(&l.len())
        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

fn valid_domain(d: &str) -> bool {
    d.len() <= 253 && d.split('.').all(valid_label)
}

fn valid_host(h: &str) -> bool {
    h.parse::<std::net::IpAddr>().is_ok() || valid_domain(h)
}

fn pem_or_file(v: &str) -> Result<(), String> {
    if v.contains("-----BEGIN") {
        return Ok(());
    }
    match std::fs::metadata(v) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(format!("{v} is not a file")),
        Err(e) => Err(format!("{v}: {e}")),
    }
}

/// Every secret field of the profile: (path, reference).
fn secrets(p: &Profile) -> Vec<(String, &SecretRef)> {
    let mut v: Vec<(String, &SecretRef)> = vec![("adminPassword".into(), &p.admin_password)];
    if let Some(m) = &p.mebx_password {
        v.push(("mebxPassword".into(), m));
    }
    if let Some(pc) = &p.provisioning_certificate {
        if let Some(b) = &pc.base64 {
            v.push(("provisioningCertificate.base64".into(), b));
        }
        if let Some(pw) = &pc.password {
            v.push(("provisioningCertificate.password".into(), pw));
        }
    }
    if let Some(n) = &p.network {
        for (i, w) in n
            .wireless
            .as_ref()
            .and_then(|w| w.profiles.as_ref())
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(s) = &w.psk_passphrase {
                v.push((format!("network.wireless.profiles[{i}].pskPassphrase"), s));
            }
        }
        for (i, d) in n.ieee8021x.iter().flatten().enumerate() {
            if let Some(s) = &d.password {
                v.push((format!("network.ieee8021x[{i}].password"), s));
            }
            if let Some(s) = &d.private_key {
                v.push((format!("network.ieee8021x[{i}].privateKey"), s));
            }
        }
    }
    if let Some(s) = p.cira.as_ref().and_then(|c| c.mps_password.as_ref()) {
        v.push(("cira.mpsPassword".into(), s));
    }
    if let Some(t) = &p.tls {
        if let Some(s) = &t.ca_key {
            v.push(("tls.caKey".into(), s));
        }
        if let Some(s) = &t.ca_key_password {
            v.push(("tls.caKeyPassword".into(), s));
        }
    }
    v
}

/// The value of a secret when it can be had here (a literal, a set variable, a readable file,
/// a password generated before); `Err` says why not.
fn peek(
    r: &SecretRef,
    path: &str,
    ctx: &Context,
    generated: &str,
) -> Result<Option<String>, String> {
    match r {
        SecretRef::Generate => match &ctx.data_dir {
            Some(d) => d
                .existing_generated(generated)
                .map(|s| s.map(|s| s.expose().to_string()))
                .map_err(|e| e.message),
            None => Ok(None),
        },
        other => other
            .resolve(path)
            .map(|s| Some(s.expose().to_string()))
            .map_err(|e| e.message),
    }
}

/// Whether every user can read the profile file: what says so and the fix. The mode's "other" bit
/// on Unix; on Windows an entry in its ACL for a broad group (Everyone, Users, …).
fn world_readable(f: &Path) -> Option<(String, String)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(f).ok()?;
        (m.mode() & 0o004 != 0).then(|| {
            (
                format!("every user can read (mode {:o})", m.mode() & 0o777),
                format!("chmod 600 {}", f.display()),
            )
        })
    }
    #[cfg(windows)]
    {
        let dacl = crate::os::file_dacl(f).ok()?;
        crate::os::acl::readable_by_others(dacl.as_deref()).map(|group| {
            (
                format!("{group} can read"),
                format!(
                    "icacls \"{}\" /inheritance:r /grant:r SYSTEM:R Administrators:F",
                    f.display()
                ),
            )
        })
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = f;
        None
    }
}

fn semantic(
    p: &Profile,
    doc: &Document,
    file: Option<&Path>,
    ctx: &Context,
    out: &mut Vec<Problem>,
) {
    // A plain-text secret in a file others can read (an encrypted export is not plain text).
    if let (Some(f), true) = (file, doc.format != super::Format::RpcGoV3Encrypted) {
        if let Some((who, fix)) = world_readable(f) {
            for (path, r) in secrets(p) {
                if r.is_literal() {
                    out.push(
                        Problem::error(
                            &path,
                            format!("a plain-text secret in {}, which {who}", f.display()),
                        )
                        .help(format!(
                            "{fix}, or give it as env:NAME or file:PATH (a file only its owner may read)"
                        ))
                        .exit(ExitCode::FailedReadingConfiguration),
                    );
                }
            }
        }
    }

    // generate: only for the AMT, MEBx and MPS passwords.
    for (path, r) in secrets(p) {
        let may_generate = matches!(
            path.as_str(),
            "adminPassword" | "mebxPassword" | "cira.mpsPassword"
        );
        if *r == SecretRef::Generate && !may_generate {
            out.push(
                Problem::error(
                    &path,
                    "generate is only for the AMT, MEBx and MPS passwords",
                )
                .help("give the value, env:NAME or file:PATH"),
            );
        }
        if matches!(r, SecretRef::Env(n) if n.is_empty()) {
            out.push(Problem::error(
                &path,
                "env: needs a variable name (env:NAME)",
            ));
            continue;
        }
        if matches!(r, SecretRef::Env(_) | SecretRef::File(_)) {
            if let Err(why) = peek(r, &path, ctx, "") {
                out.push(
                    Problem::warning(&path, format!("cannot be read here: {why}")).help(format!(
                        "plan and apply need {} where they run",
                        r.describe()
                    )),
                );
            }
        }
    }

    // AMT's password rules.
    let amt_rule = |path: &str, r: &SecretRef, generated: &str, out: &mut Vec<Problem>| {
        if let Ok(Some(v)) = peek(r, path, ctx, generated) {
            if !crate::secret::meets_amt_rules(&v) {
                out.push(
                    Problem::error(path, "does not meet AMT's password rules").help(AMT_RULES),
                );
            }
        }
    };
    amt_rule("adminPassword", &p.admin_password, "amt-password", out);
    if let Some(m) = &p.mebx_password {
        amt_rule("mebxPassword", m, "mebx-password", out);
        if p.control_mode == WantedMode::Ccm {
            out.push(
                Problem::error("mebxPassword", "AMT sets the MEBx password only in admin control mode; this profile wants client control mode")
                    .help("remove mebxPassword, or use controlMode: acm"),
            );
        }
    }

    // Control mode and its certificate.
    match (p.control_mode, &p.provisioning_certificate) {
        (WantedMode::Acm, None) => out.push(
            Problem::error("provisioningCertificate", "controlMode acm needs a provisioning certificate")
                .help("add provisioningCertificate: {file: /etc/amt-agent/provisioning.pfx, password: file:/etc/amt-agent/pfx-password}"),
        ),
        (WantedMode::Ccm, Some(_)) => out.push(Problem::warning(
            "provisioningCertificate",
            "not used: controlMode is ccm",
        )),
        (WantedMode::Acm, Some(pc)) => provisioning(pc, ctx, out),
        _ => {}
    }

    if let Some(f) = &p.features {
        if p.control_mode == WantedMode::Ccm && f.user_consent != super::Consent::All {
            out.push(
                Problem::error("features.userConsent", "AMT requires user consent for every redirection in client control mode: only `all` is allowed")
                    .help("use userConsent: all, or controlMode: acm"),
            );
        }
    }

    if let Some(h) = &p.hostname {
        if let Some(n) = &h.host_name {
            if !valid_label(n) {
                out.push(
                    Problem::error("hostname.hostName", format!("'{n}' is not a host name AMT accepts (1–63 letters, digits or hyphens, no dots)")),
                );
            }
        }
        if let Some(d) = &h.domain_name {
            if !valid_domain(d) {
                out.push(Problem::error(
                    "hostname.domainName",
                    format!("'{d}' is not a domain name"),
                ));
            }
        }
    }

    if let Some(list) = &p.proxies {
        let mut seen = std::collections::HashSet::new();
        for (i, x) in list.iter().enumerate() {
            if !valid_host(&x.address) {
                out.push(Problem::error(
                    &format!("proxies[{i}].address"),
                    format!("'{}' is not an address or host name", x.address),
                ));
            }
            if !seen.insert(x.address.to_ascii_lowercase()) {
                out.push(Problem::error(
                    &format!("proxies[{i}].address"),
                    format!(
                        "{} is listed twice: AMT keeps one entry per address",
                        x.address
                    ),
                ));
            }
        }
    }

    if let Some(n) = &p.network {
        network(n, out);
    }

    if let Some(c) = &p.cira {
        let ip = c.mps_address.parse::<std::net::IpAddr>().is_ok();
        if !valid_host(&c.mps_address) || (!ip && !c.mps_address.contains('.')) {
            out.push(
                Problem::error(
                    "cira.mpsAddress",
                    format!(
                        "'{}' is not an IP address or a DNS name of two labels or more",
                        c.mps_address
                    ),
                )
                .help("give the MPS as mps.example.com or an IP address; the port goes in mpsPort"),
            );
        }
        if let Err(why) = pem_or_file(&c.mps_certificate.to_string_lossy()) {
            out.push(
                Problem::error("cira.mpsCertificate", why)
                    .help("give the MPS's root CA as a PEM file path"),
            );
        }
        if let Some(r) = &c.mps_password {
            if let Ok(Some(v)) = peek(r, "cira.mpsPassword", ctx, "mps-password") {
                let ok =
                    (8..=16).contains(&v.chars().count()) && crate::secret::meets_amt_rules(&v);
                if !ok {
                    out.push(Problem::error("cira.mpsPassword", "does not meet MPS's password rules (8–16 characters, upper and lower case, a digit, a special character)").help("or use generate"));
                }
            }
        }
    }

    if let Some(t) = &p.tls {
        if !t.trusted_cn.is_empty() {
            out.push(Problem::warning(
                "tls.trustedCn",
                "not applied by amt-agent: configure tls does not set AMT's TrustedCN",
            ));
        }
        if t.mode.starts_with("mutual") && t.ca_certificate.is_none() {
            out.push(
                Problem::warning(
                    "tls.mode",
                    "a mutual mode checks client certificates against a trusted root AMT holds: without caCertificate AMT must hold one already",
                )
                .help("give caCertificate and caKey: that CA signs AMT's certificate and becomes AMT's trusted root"),
            );
        }
        if let Some(c) = &t.ca_certificate {
            if let Err(why) = pem_or_file(&c.to_string_lossy()) {
                out.push(Problem::error("tls.caCertificate", why));
            }
        }
    }
}

fn provisioning(pc: &super::ProvisioningCertificate, ctx: &Context, out: &mut Vec<Problem>) {
    let (source, path) = match (&pc.file, &pc.base64) {
        (Some(f), _) => (f.display().to_string(), "provisioningCertificate.file"),
        (None, Some(b)) => match peek(b, "provisioningCertificate.base64", ctx, "") {
            Ok(Some(v)) => (v, "provisioningCertificate.base64"),
            _ => return,
        },
        (None, None) => return,
    };
    let password = match &pc.password {
        None => Ok(crate::secret::Secret::default()),
        Some(r) => match peek(r, "provisioningCertificate.password", ctx, "") {
            Ok(Some(v)) => Ok(crate::secret::Secret::new(v)),
            _ => Err(()),
        },
    };
    let Ok(password) = password else {
        return; // said above: the reference cannot be read here
    };
    let cert = match crate::provisioning::load::load(&source, &|| Ok(password.clone())) {
        Ok(c) => c,
        Err(e) => {
            let mut p = Problem::error(path, e.message.clone());
            if let Some(h) = e.help {
                p = p.help(h);
            }
            out.push(p);
            return;
        }
    };
    let machine = crate::provisioning::Machine {
        dns_suffix_flag: pc.dns_suffix.clone(),
        ..Default::default()
    };
    let findings = crate::provisioning::rules::run(&crate::provisioning::rules::Input {
        cert: &cert,
        machine: &machine,
        now: crate::provisioning::now(),
    });
    for f in findings.iter().filter(|f| f.is_failure()) {
        let msg = format!(
            "[{}] {} ({}): {}",
            f.rule.id,
            f.rule.firmware.text(),
            f.certificate,
            f.detail
        );
        let p = match f.outcome {
            crate::provisioning::Outcome::Error => Problem::error("provisioningCertificate", msg),
            _ => Problem::warning("provisioningCertificate", msg),
        };
        out.push(p.help(f.fix()));
    }
}

fn network(n: &super::Network, out: &mut Vec<Problem>) {
    let names: Vec<&str> = n
        .ieee8021x
        .iter()
        .flatten()
        .map(|d| d.name.as_str())
        .collect();
    let mut used: std::collections::HashSet<&str> = std::collections::HashSet::new();
    if let Some(x) = n.wired.as_ref().and_then(|w| w.ieee8021x.as_deref()) {
        used.insert(x);
    }
    for p in n.wireless.iter().flat_map(|w| w.profiles.iter().flatten()) {
        if let Some(x) = p.ieee8021x.as_deref() {
            used.insert(x);
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (i, d) in n.ieee8021x.iter().flatten().enumerate() {
        let at = format!("network.ieee8021x[{i}]");
        if !seen.insert(d.name.as_str()) {
            out.push(Problem::error(
                &format!("{at}.name"),
                format!("{} is used twice", d.name),
            ));
        }
        if !used.contains(d.name.as_str()) {
            out.push(
                Problem::warning(
                    &format!("{at}.name"),
                    format!("{} is not used: neither network.wired nor a Wi-Fi profile names it", d.name),
                )
                .help("802.1X is applied with the port or Wi-Fi profile that names it (ieee8021x: NAME)"),
            );
        }
        match d.protocol.as_str() {
            "eap-tls" => {
                if d.client_certificate.is_none()
                    || d.private_key.is_none()
                    || d.ca_certificate.is_none()
                {
                    out.push(
                        Problem::error(
                            &at,
                            "eap-tls needs clientCertificate, privateKey and caCertificate",
                        )
                        .help("the client certificate, its key (file:PATH, mode 600) and the CA that issued the RADIUS server's certificate"),
                    );
                }
            }
            _ => {
                if d.password.is_none() {
                    out.push(Problem::error(&at, "peap-mschapv2 needs a password"));
                }
                if d.client_certificate.is_some() || d.private_key.is_some() {
                    out.push(Problem::error(
                        &at,
                        "peap-mschapv2 authenticates with a password: clientCertificate and privateKey are not used",
                    ));
                }
            }
        }
        if let Some(SecretRef::Value(v)) = &d.password {
            if v.expose().len() > 32 {
                out.push(Problem::error(
                    &format!("{at}.password"),
                    "an 802.1X password has 1–32 characters",
                ));
            }
        }
        for (k, v) in [
            ("clientCertificate", &d.client_certificate),
            ("caCertificate", &d.ca_certificate),
        ] {
            if let Some(v) = v {
                if let Err(why) = pem_or_file(&v.to_string_lossy()) {
                    out.push(Problem::error(&format!("{at}.{k}"), why));
                }
            }
        }
    }
    let refers = |at: &str, name: &Option<String>, out: &mut Vec<Problem>| {
        if let Some(x) = name {
            if !names.contains(&x.as_str()) {
                out.push(Problem::error(
                    at,
                    format!("no network.ieee8021x entry is named {x}"),
                ));
            }
        }
    };
    if let Some(w) = &n.wired {
        wired(w, out);
        refers("network.wired.ieee8021x", &w.ieee8021x, out);
    }
    if let Some(w) = &n.wireless {
        let mut seen = std::collections::HashSet::new();
        let mut priorities = std::collections::HashMap::new();
        for (i, x) in w.profiles.iter().flatten().enumerate() {
            let at = format!("network.wireless.profiles[{i}]");
            if !seen.insert(x.name.as_str()) {
                out.push(Problem::error(
                    &format!("{at}.name"),
                    format!("{} is used twice", x.name),
                ));
            }
            if let Some(other) = priorities.insert(x.priority, x.name.as_str()) {
                out.push(
                    Problem::error(
                        &format!("{at}.priority"),
                        format!("{other} has priority {} too: AMT refuses two profiles with one priority", x.priority),
                    )
                    .help("give each Wi-Fi profile its own priority (1 is tried first)"),
                );
            }
            let psk = x.authentication.ends_with("-psk");
            if psk && x.psk_passphrase.is_none() {
                out.push(Problem::error(
                    &at,
                    format!("{} needs pskPassphrase", x.authentication),
                ));
            }
            if !psk && x.psk_passphrase.is_some() {
                out.push(Problem::error(
                    &format!("{at}.pskPassphrase"),
                    format!("{} takes no passphrase", x.authentication),
                ));
            }
            if psk && x.ieee8021x.is_some() {
                out.push(Problem::error(
                    &format!("{at}.ieee8021x"),
                    format!("{} does not use 802.1X", x.authentication),
                ));
            }
            if !psk && x.ieee8021x.is_none() {
                out.push(Problem::error(
                    &at,
                    format!(
                        "{} needs ieee8021x (an entry of network.ieee8021x)",
                        x.authentication
                    ),
                ));
            }
            if let Some(SecretRef::Value(v)) = &x.psk_passphrase {
                let k = v.expose();
                if !(8..=63).contains(&k.len()) || !k.bytes().all(|b| (0x20..0x7F).contains(&b)) {
                    out.push(Problem::error(
                        &format!("{at}.pskPassphrase"),
                        "a WPA passphrase has 8–63 printable ASCII characters",
                    ));
                }
            }
            refers(&format!("{at}.ieee8021x"), &x.ieee8021x, out);
        }
    }
}

/// The wired port's addressing, by `configure wired`'s rules: DHCP; static from the host OS
/// (`ipSync`, the default without `ipAddress`); or a static address with its mask, gateway (in
/// its subnet) and DNS.
fn wired(w: &super::Wired, out: &mut Vec<Problem>) {
    let at = "network.wired";
    let parse =
        |k: &str, v: &Option<String>, out: &mut Vec<Problem>| -> Option<std::net::Ipv4Addr> {
            let v = v.as_ref()?;
            match v.parse::<std::net::Ipv4Addr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    out.push(Problem::error(
                        &format!("{at}.{k}"),
                        format!("'{v}' is not an IPv4 address"),
                    ));
                    None
                }
            }
        };
    let ip = parse("ipAddress", &w.ip_address, out);
    let mask = parse("subnetMask", &w.subnet_mask, out);
    let gateway = parse("gateway", &w.gateway, out);
    parse("primaryDns", &w.primary_dns, out);
    parse("secondaryDns", &w.secondary_dns, out);
    let fields = [
        ("ipAddress", &w.ip_address),
        ("subnetMask", &w.subnet_mask),
        ("gateway", &w.gateway),
        ("primaryDns", &w.primary_dns),
        ("secondaryDns", &w.secondary_dns),
    ];
    if w.dhcp {
        if w.ip_sync == Some(false) {
            out.push(Problem::warning(
                &format!("{at}.ipSync"),
                "ignored: with DHCP AMT shares the host's lease (IpSyncEnabled true, as rpc-go sets it)",
            ));
        }
        for (k, v) in fields {
            if v.is_some() {
                out.push(Problem::warning(
                    &format!("{at}.{k}"),
                    "ignored: dhcp is true",
                ));
            }
        }
        return;
    }
    if w.ip_sync.unwrap_or(w.ip_address.is_none()) {
        if w.ip_address.is_some() {
            out.push(
                Problem::warning(
                    &format!("{at}.ipSync"),
                    "a static address with ipSync: AMT takes the OS's address, not ipAddress",
                )
                .help("leave ipSync out (or false) to give AMT ipAddress"),
            );
        }
        return;
    }
    let lacking: Vec<&str> = fields[..4]
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| *k)
        .collect();
    if !lacking.is_empty() {
        out.push(
            Problem::error(
                at,
                format!("a static address needs {}", lacking.join(", ")),
            )
            .help("give ipAddress, subnetMask, gateway and primaryDns (secondaryDns optional), or dhcp: true, or ipSync: true for the host's address"),
        );
    }
    if let Some(m) = mask {
        let m = u32::from(m);
        if m == 0 || m == u32::MAX || m.leading_ones() + m.trailing_zeros() != 32 {
            out.push(Problem::error(
                &format!("{at}.subnetMask"),
                "not a contiguous netmask such as 255.255.255.0",
            ));
        }
    }
    if let (Some(i), Some(m), Some(g)) = (ip, mask, gateway) {
        let (i, m, g) = (u32::from(i), u32::from(m), u32::from(g));
        if g & m != i & m || g == i {
            out.push(
                Problem::error(
                    &format!("{at}.gateway"),
                    "not another host of ipAddress's subnet",
                )
                .help("give the router of the port's own subnet"),
            );
        }
    }
}
