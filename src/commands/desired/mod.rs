//! `amt-agent profile check FILE`, `amt-agent plan FILE`, `amt-agent apply FILE`: a desired-state
//! profile (src/profile) checked offline, planned against the machine, and applied — activation
//! first, then each area by its `configure` subcommand ([`engine`]).

pub mod areas;
pub mod cira;
pub mod engine;
pub mod network;
pub mod tls;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use serde_json::json;

use super::session::AmtConnArgs;
use crate::error::{AgentError, ExitCode};
use crate::heci::MeiDevice;
use crate::profile::{self, check, secrets::DataDir, KeySource, Severity};

/// Where a profile comes from and where apply keeps what it must remember.
#[derive(Args, Debug, Clone)]
pub struct SourceArgs {
    /// The key of an encrypted rpc-go v3 export (prefer CONFIG_ENCRYPTION_KEY or --key-file:
    /// the command line is visible to other users).
    #[arg(long, short = 'k')]
    pub key: Option<crate::secret::Secret>,
    /// A file holding the export's key (first line; must not be readable by others).
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Where generated passwords (generated/, mode 600) and the MEBx password's verifier live;
    /// it must outlive reboots.
    #[arg(long, env = "AMT_AGENT_DATA_DIR", default_value = profile::secrets::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
}

impl SourceArgs {
    pub fn key_source(&self) -> KeySource {
        KeySource {
            flag: self.key.clone(),
            file: self.key_file.clone(),
        }
    }

    /// `--data-dir`, with `%ProgramData%` expanded on Windows.
    pub fn data_dir(&self) -> DataDir {
        DataDir(crate::os::expand_path(&self.data_dir))
    }

    pub fn context(&self) -> check::Context {
        check::Context {
            data_dir: Some(self.data_dir()),
        }
    }
}

#[derive(Args, Debug)]
pub struct DesiredArgs {
    /// The profile: ours (docs/profile.schema.json), rpc-go v3's YAML, or its encrypted export.
    pub file: PathBuf,
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub conn: AmtConnArgs,
}

#[derive(Args, Debug)]
pub struct ProfileArgs {
    #[command(subcommand)]
    pub what: ProfileSub,
}

#[derive(Subcommand, Debug)]
pub enum ProfileSub {
    /// Check a profile offline: the schema, AMT's password rules, the certificate doctor on the
    /// provisioning certificate, addresses; every problem with its path in the file.
    Check(CheckArgs),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    pub file: PathBuf,
    #[command(flatten)]
    pub source: SourceArgs,
}

pub fn run_profile(args: &ProfileArgs, json_out: bool) -> Result<ExitCode, AgentError> {
    match &args.what {
        ProfileSub::Check(a) => check_command(a, json_out),
    }
}

fn check_command(a: &CheckArgs, json_out: bool) -> Result<ExitCode, AgentError> {
    let doc = profile::Document::read(&a.file, &a.source.key_source())?;
    let problems = check::check(&doc, Some(&a.file), &a.source.context());
    let errors = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    let warnings = problems.len() - errors;
    let areas: Vec<&str> = if errors == 0 {
        doc.profile().map(|p| p.areas()).unwrap_or_default()
    } else {
        vec![]
    };
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "file": a.file.display().to_string(),
                "format": doc.format.name(),
                "valid": errors == 0,
                "errors": errors,
                "warnings": warnings,
                "problems": problems.iter().map(check::Problem::to_json).collect::<Vec<_>>(),
                "areas": areas,
            }))
            .unwrap_or_default()
        );
    } else {
        for p in &problems {
            println!("{}", p.render());
        }
        if errors == 0 {
            println!(
                "{}: valid {} profile ({warnings} warning(s)); it manages: {}",
                a.file.display(),
                doc.format.name(),
                areas.join(", ")
            );
        } else {
            println!(
                "{}: {errors} error(s), {warnings} warning(s) ({} profile)",
                a.file.display(),
                doc.format.name()
            );
        }
    }
    Ok(crate::profile::check::verdict(&problems))
}

fn engine_for<'a>(
    device: Arc<dyn MeiDevice>,
    conn: &'a AmtConnArgs,
    data: &'a DataDir,
    profile: &'a profile::Profile,
) -> engine::Engine<'a> {
    engine::Engine {
        device,
        conn,
        data,
        profile,
    }
}

/// `amt-agent plan FILE`: exit 0 when nothing would change, 2 when changes are pending.
pub fn run_plan(
    device: Arc<dyn MeiDevice>,
    a: &DesiredArgs,
    json_out: bool,
) -> Result<ExitCode, AgentError> {
    let loaded = profile::load(&a.file, &a.source.key_source(), &a.source.context())?;
    let data = a.source.data_dir();
    let plan = engine_for(device, &a.conn, &data, &loaded.profile).plan()?;
    let pending = plan.pending();
    if json_out {
        let mut v = plan.to_json();
        v["command"] = "plan".into();
        v["profile"] = a.file.display().to_string().into();
        v["format"] = loaded.format.name().into();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!(
            "plan: {} ({} profile) against AMT in {}, in apply's order:",
            a.file.display(),
            loaded.format.name(),
            plan.control_mode.text()
        );
        print!("{}", plan.text());
        if pending == 0 {
            println!("plan: no changes: AMT matches the profile");
        } else {
            println!(
                "plan: {pending} change(s) pending; `amt-agent apply {}` makes them",
                a.file.display()
            );
        }
    }
    Ok(if pending == 0 {
        ExitCode::Success
    } else {
        ExitCode::ChangesPending
    })
}

/// `amt-agent apply FILE`.
pub fn run_apply(
    device: Arc<dyn MeiDevice>,
    a: &DesiredArgs,
    json_out: bool,
) -> Result<ExitCode, AgentError> {
    let loaded = profile::load(&a.file, &a.source.key_source(), &a.source.context())?;
    let data = a.source.data_dir();
    let applied = engine_for(device, &a.conn, &data, &loaded.profile)
        .apply(&mut |line| eprintln!("{line}"))?;
    if json_out {
        let mut v = applied.to_json();
        v["command"] = "apply".into();
        v["profile"] = a.file.display().to_string().into();
        v["format"] = loaded.format.name().into();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        if applied.changes.is_empty() {
            println!("apply: nothing to change: AMT matches the profile");
        } else {
            println!("apply: {} setting(s) changed:", applied.changes.len());
            for (area, c) in &applied.changes {
                println!("  {area}: {}: {} -> {}", c.setting, c.current, c.desired);
            }
            println!("apply: AMT matches the profile");
        }
    }
    Ok(ExitCode::Success)
}
