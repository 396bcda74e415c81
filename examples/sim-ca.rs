//! Writes a new fixed top for the simulator's default AMT TLS chain (a test root and the ROM CA
//! with its key) into `src/sim/ca/`; see `amt_agent::sim::tls`. `make sim-ca` runs it. Every
//! simulated CSME platform id changes with it, so commit the three files together.

fn main() -> std::process::ExitCode {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sim/ca");
    let files = amt_agent::sim::tls::new_embedded_ca();
    for (name, text) in &files {
        if let Err(e) = std::fs::write(dir.join(name), text) {
            eprintln!("sim-ca: writing {name} into {}: {e}", dir.display());
            return std::process::ExitCode::FAILURE;
        }
    }
    let names: Vec<&str> = files.iter().map(|f| f.0).collect();
    println!("sim-ca: wrote {} into src/sim/ca", names.join(", "));
    std::process::ExitCode::SUCCESS
}
