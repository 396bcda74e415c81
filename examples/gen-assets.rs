//! Writes the packages' generated files: man pages (clap_mangen) and shell completions
//! (clap_complete: bash, zsh, fish) for `amt-agent` and `amt-sim`, from the same clap definitions
//! the binaries parse with. `make assets` runs it; `make deb` and `make rpm` package its output.
//!
//! Usage: `cargo run --example gen-assets -- OUT_DIR` (default target/assets), which fills
//! `OUT_DIR/man/*.1` (one page per command and subcommand) and
//! `OUT_DIR/completions/{bash,zsh,fish}/`.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

fn main() -> std::process::ExitCode {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/assets"));
    match generate(&out) {
        Ok(n) => {
            println!("gen-assets: {n} files in {}", out.display());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen-assets: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn generate(out: &Path) -> Result<usize, String> {
    check_changelog()?;
    let man = out.join("man");
    let _ = std::fs::remove_dir_all(&man);
    mkdir(&man)?;
    let mut n = 0;
    for cmd in [
        amt_agent::cli::Cli::command(),
        amt_agent::sim::cli::Cli::command(),
    ] {
        let name = cmd.get_name().to_string();
        n += man_pages(cmd.clone(), &man)?;
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let dir = out.join("completions").join(shell.to_string());
            mkdir(&dir)?;
            let mut cmd = cmd.clone();
            clap_complete::generate_to(shell, &mut cmd, &name, &dir)
                .map_err(|e| format!("{shell} completion for {name}: {e}"))?;
            n += 1;
        }
    }
    Ok(n)
}

/// One page for the command and one for each visible subcommand, named as `man` looks them up
/// (`amt-agent-activate.1`), each saying which manual it belongs to.
fn man_pages(cmd: clap::Command, dir: &Path) -> Result<usize, String> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    fn walk(cmd: &clap::Command, dir: &Path, manual: &str) -> Result<usize, String> {
        let mut n = 0;
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            n += walk(sub, dir, manual)?;
        }
        let page = clap_mangen::Man::new(cmd.clone()).manual(manual);
        let path = page
            .generate_to(dir)
            .map_err(|e| format!("man page in {}: {e}", dir.display()))?;
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        if text.trim().is_empty() {
            return Err(format!("{} is empty", path.display()));
        }
        Ok(n + 1)
    }
    let manual = format!("{} manual", cmd.get_name());
    walk(&cmd, dir, &manual)
}

/// The Debian changelog's newest entry must name this version, else the package would carry a
/// changelog that contradicts its own version.
fn check_changelog() -> Result<(), String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/changelog");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("packaging/changelog: {e}"))?;
    let want = format!("amt-agent ({}-1) ", env!("CARGO_PKG_VERSION"));
    match text.lines().next() {
        Some(first) if first.starts_with(&want) => Ok(()),
        first => Err(format!(
            "packaging/changelog starts with {first:?}; add an entry '{want}…' for this version"
        )),
    }
}

fn mkdir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
}
