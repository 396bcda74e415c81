//! `setup-bin create|show`: write a USB provisioning file that enrols a root hash, and decode any
//! setup.bin (Intel's USBFile/ACU, MeshCommander, MeshCentral, ours) with passwords masked.
//! Format: provisioning.md §5; codec: `provisioning::setupbin`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use crate::amthi::codec::hex;
use crate::amthi::HashAlgorithm;
use crate::error::{AgentError, ExitCode};
use crate::provisioning::setupbin::{
    guid_text, mebx_password_problem, CertHash, RootEnrolment, SetupBin,
};
use crate::secret::Secret;
use crate::secret_source::{read_secret_file, SecretSource};

#[derive(Args, Debug)]
pub struct SetupBinArgs {
    #[command(subcommand)]
    pub command: SetupBinCommand,
}

#[derive(Subcommand, Debug)]
pub enum SetupBinCommand {
    /// Write a setup.bin that makes MEBx trust a root CA (its DER fingerprint becomes an active,
    /// non-default hash) and sets the MEBx password and, optionally, the PKI DNS suffix.
    Create(CreateArgs),
    /// Decode any setup.bin (header, records, every variable); passwords are masked.
    Show(ShowArgs),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum HashAlg {
    Sha256,
    Sha384,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The root CA certificate whose hash to enrol (PEM or DER).
    #[arg(long, value_name = "FILE")]
    pub root_cert: PathBuf,
    /// Hash algorithm of the fingerprint (SHA-384 needs firmware that lists SHA-384 hashes).
    #[arg(long, value_enum, default_value = "sha256")]
    pub hash_alg: HashAlg,
    /// Friendly name MEBx stores with the hash (ASCII, at most 32 bytes; default: the root's CN).
    #[arg(long)]
    pub name: Option<String>,
    /// PKI DNS suffix (the "trusted FQDN" the provisioning certificate's CN is matched against).
    #[arg(long, value_name = "SUFFIX")]
    pub pki_dns_suffix: Option<String>,
    /// File holding the new MEBx password (first line; mode 600). Or set MEBX_PASSWORD.
    #[arg(long, value_name = "FILE")]
    pub mebx_password_file: Option<PathBuf>,
    /// The new MEBx password on the command line (visible to other users; warned).
    #[arg(long, value_name = "PASSWORD")]
    pub mebx_password: Option<crate::secret::Secret>,
    /// File holding the device's current MEBx password when it is no longer the factory
    /// default `admin` (or set MEBX_CURRENT_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub current_mebx_password_file: Option<PathBuf>,
    /// Also switch the factory (default) root hashes off (variable 2.6 = 0).
    #[arg(long)]
    pub deactivate_default_hashes: bool,
    /// Where to write the file (MEBx reads `setup.bin` from the root of a FAT USB stick).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: PathBuf,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The setup.bin to decode.
    pub file: PathBuf,
}

pub fn run(args: &SetupBinArgs, json: bool) -> Result<ExitCode, AgentError> {
    match &args.command {
        SetupBinCommand::Create(a) => create(a, json),
        SetupBinCommand::Show(a) => show(&a.file, json),
    }
}

fn bad_input(msg: impl Into<String>) -> AgentError {
    AgentError::new(ExitCode::FailedReadingConfiguration, msg)
}

fn bad_param(msg: impl Into<String>) -> AgentError {
    AgentError::new(ExitCode::IncorrectCommandLineParameters, msg)
}

/// The root's DER, from a PEM (the self-signed certificate when it holds several) or DER file.
fn read_root(path: &Path) -> Result<Vec<u8>, AgentError> {
    let bytes = std::fs::read(path)
        .map_err(|e| bad_input(format!("cannot read {}: {e}", path.display())))?;
    if !bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        x509_parser::parse_x509_certificate(&bytes).map_err(|e| {
            bad_input(format!(
                "{} is neither PEM nor a DER certificate: {e}",
                path.display()
            ))
        })?;
        return Ok(bytes);
    }
    let mut certs = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(&bytes) {
        let pem = pem.map_err(|e| bad_input(format!("{}: bad PEM: {e}", path.display())))?;
        if pem.label == "CERTIFICATE" {
            certs.push(pem.contents);
        }
    }
    let self_signed: Vec<&Vec<u8>> = certs
        .iter()
        .filter(|d| {
            x509_parser::parse_x509_certificate(d)
                .map(|(_, c)| c.subject() == c.issuer())
                .unwrap_or(false)
        })
        .collect();
    match (certs.len(), self_signed.len()) {
        (0, _) => Err(bad_input(format!(
            "{} holds no CERTIFICATE block",
            path.display()
        ))),
        (1, _) => Ok(certs.remove(0)),
        (_, 1) => Ok(self_signed[0].clone()),
        (n, _) => Err(bad_input(format!(
            "{} holds {n} certificates and not exactly one self-signed root",
            path.display()
        ))
        .help("give the root CA certificate alone")),
    }
}

fn create(a: &CreateArgs, json: bool) -> Result<ExitCode, AgentError> {
    let der = read_root(&a.root_cert)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| bad_input(format!("{}: {e}", a.root_cert.display())))?;
    if cert.subject() != cert.issuer() {
        tracing::warn!(
            "{} is not self-signed (issuer {}); AMT matches the hash of the chain's root",
            a.root_cert.display(),
            cert.issuer()
        );
    }
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .map(str::to_string);
    let name = match (&a.name, cn) {
        (Some(n), _) => n.clone(),
        (None, Some(cn)) => cn.chars().filter(char::is_ascii).take(32).collect(),
        (None, None) => "Custom Root CA".into(),
    };
    if name.is_empty() || name.len() > 32 || !name.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(bad_param(format!(
            "the hash name {name:?} must be 1 to 32 printable ASCII characters"
        )));
    }
    let (algorithm, hash) = match a.hash_alg {
        HashAlg::Sha256 => {
            use sha2::Digest;
            (HashAlgorithm::Sha256, sha2::Sha256::digest(&der).to_vec())
        }
        HashAlg::Sha384 => {
            use sha2::Digest;
            (HashAlgorithm::Sha384, sha2::Sha384::digest(&der).to_vec())
        }
    };
    if let Some(s) = &a.pki_dns_suffix {
        if s.is_empty() || s.len() > 255 || !s.is_ascii() {
            return Err(bad_param(format!(
                "the PKI DNS suffix {s:?} must be 1 to 255 ASCII characters"
            )));
        }
    }

    let current = match &a.current_mebx_password_file {
        Some(f) => read_secret_file(f, "current MEBx password")?,
        None => match std::env::var("MEBX_CURRENT_PASSWORD") {
            Ok(v) if !v.is_empty() => Secret::new(v),
            _ => Secret::new("admin"),
        },
    };
    let new = SecretSource {
        what: "new MEBx password",
        flag: a.mebx_password.as_ref().map(crate::secret::Secret::expose),
        file: a.mebx_password_file.as_deref(),
        env: &["MEBX_PASSWORD"],
    }
    .resolve(true)?;
    if new.is_none() && current.expose() == "admin" {
        return Err(AgentError::new(
            ExitCode::MissingOrIncorrectPassword,
            "a new MEBx password is required: MEBx will not take a USB file that keeps the factory password admin",
        )
        .help("set MEBX_PASSWORD, or use --mebx-password-file FILE"));
    }
    if let Some(p) = &new {
        if let Some(why) = mebx_password_problem(p.expose()) {
            return Err(AgentError::new(
                ExitCode::MissingOrIncorrectPassword,
                format!("the new MEBx password is too weak: {why}"),
            ));
        }
    }

    let enrol = RootEnrolment {
        current_mebx_password: current,
        new_mebx_password: new,
        pki_dns_suffix: a.pki_dns_suffix.clone(),
        deactivate_default_hashes: a.deactivate_default_hashes,
        hash: CertHash {
            algorithm,
            hash: hash.clone(),
            name: name.clone(),
        },
    };
    let bytes = enrol
        .file()
        .encode()
        .map_err(|e| AgentError::new(ExitCode::GenericFailure, e.to_string()))?;
    write_private(&a.output, &bytes)?;

    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "status": "ok",
                "file": a.output.display().to_string(),
                "size": bytes.len(),
                "hashAlgorithm": algorithm.name(),
                "hash": hex(&hash),
                "name": name,
                "pkiDnsSuffix": a.pki_dns_suffix,
                "deactivateDefaultHashes": a.deactivate_default_hashes,
            }))
            .unwrap_or_default()
        );
    } else {
        println!(
            "wrote {} ({} bytes, setup.bin v4, record reused on every machine)",
            a.output.display(),
            bytes.len()
        );
        println!("  root hash   {} {}", algorithm.name(), hex(&hash));
        println!("  name        {name}");
        if let Some(s) = &a.pki_dns_suffix {
            println!("  PKI DNS suffix {s}");
        }
        if a.deactivate_default_hashes {
            println!("  factory hashes deactivated");
        }
        println!("Copy it as setup.bin to the root of a FAT-formatted USB stick and boot with it plugged in.");
    }
    Ok(ExitCode::Success)
}

/// The file holds MEBx passwords: written readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AgentError> {
    let fail = |e: std::io::Error| {
        AgentError::new(
            ExitCode::GenericFailure,
            format!("cannot write {}: {e}", path.display()),
        )
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(fail)?;
    f.write_all(bytes).map_err(fail)
}

/// Reads and parses a setup.bin, with the error naming what is wrong.
pub fn load(path: &Path) -> Result<SetupBin, AgentError> {
    let bytes = std::fs::read(path)
        .map_err(|e| bad_input(format!("cannot read {}: {e}", path.display())))?;
    SetupBin::parse(&bytes).map_err(|e| {
        bad_input(format!("{} is not a setup.bin", path.display())).cause(e.to_string())
    })
}

fn show(path: &Path, json: bool) -> Result<ExitCode, AgentError> {
    let f = load(path)?;
    let issues = f.check();
    let h = &f.header;
    if json {
        let records: Vec<_> = f
            .records
            .iter()
            .map(|r| {
                json!({
                    "recordType": r.record_type.code(),
                    "recordTypeName": r.record_type.name(),
                    "flags": r.flags,
                    "valid": r.valid(),
                    "scrambled": r.scrambled(),
                    "chunkCount": r.chunk_count,
                    "headerBytes": r.header_bytes,
                    "number": r.number,
                    "variables": r.variables.iter().map(|v| v.to_json()).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "file": path.display().to_string(),
                "header": {
                    "fileType": h.file_type.name(),
                    "fileTypeUuid": guid_text(&h.file_type.bytes()),
                    "majorVersion": h.major_version,
                    "minorVersion": h.minor_version,
                    "recordChunkCount": h.record_chunk_count,
                    "recordHeaderBytes": h.record_header_bytes,
                    "flags": h.flags,
                    "doNotConsume": h.do_not_consume(),
                    "dataRecordCount": h.data_record_count,
                    "dataRecordsConsumed": h.data_records_consumed,
                    "dataRecordChunkCount": h.data_record_chunk_count,
                    "modules": h.modules,
                },
                "records": records,
                "issues": issues,
            }))
            .unwrap_or_default()
        );
    } else {
        println!("{}", path.display());
        println!(
            "  File type          {} ({})",
            h.file_type.name(),
            guid_text(&h.file_type.bytes())
        );
        println!(
            "  Format version     {}.{}",
            h.major_version, h.minor_version
        );
        println!(
            "  Flags              0x{:04x}{}",
            h.flags,
            if h.do_not_consume() {
                " (do not consume: the record is reused on every machine)"
            } else {
                ""
            }
        );
        println!(
            "  Data records       {} ({} consumed), {} x 512 bytes each",
            h.data_record_count, h.data_records_consumed, h.data_record_chunk_count
        );
        println!(
            "  Header             {} chunk(s), RecordHeaderBytes {}, modules {:?}",
            h.record_chunk_count, h.record_header_bytes, h.modules
        );
        for (i, r) in f.records.iter().enumerate() {
            let mut fl = Vec::new();
            if r.valid() {
                fl.push("valid");
            }
            if r.scrambled() {
                fl.push("scrambled");
            }
            println!(
                "Record {} ({}, RecordNumber {}, flags 0x{:x} {})",
                i + 1,
                r.record_type.name(),
                r.number,
                r.flags,
                fl.join("+")
            );
            for v in &r.variables {
                println!("  {:<45} {}", v.label(), v.display_value());
            }
        }
        for i in &issues {
            println!("{i}");
        }
    }
    let fatal = issues.iter().filter(|i| i.fatal).count();
    if fatal > 0 {
        let mut e = bad_input(format!(
            "{} breaks {fatal} rule(s) of the setup.bin format; MEBx would refuse it",
            path.display()
        ));
        for i in issues.iter().filter(|i| i.fatal) {
            e = e.cause(i.message.clone());
        }
        return Err(e);
    }
    Ok(ExitCode::Success)
}
