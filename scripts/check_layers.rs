//! `make lint`'s layering check: every `crate::MODULE` path in `src/` must name a module the
//! importing module may use, per the `text` block under "# Layers" in `src/lib.rs`.
//!
//! Built with plain `rustc` (std only), so it costs a second, not a cargo build:
//! `rustc --edition 2021 -O scripts/check_layers.rs -o target/check-layers && target/check-layers src`.
//! Its own tests: `rustc --edition 2021 --test scripts/check_layers.rs -o target/check-layers-test`.
//!
//! Test code is exempt: files named `tests.rs` or `*_tests.rs`, and everything after a
//! `#[cfg(test)]` line that opens a module (test modules sit at the end of their file).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The allowed imports: module → the modules it may import.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// Reads the graph from lib.rs's doc comment: the first ```text block after a `# Layers` heading,
/// one `module: allowed allowed …  # description` per line.
fn parse_graph(lib_rs: &str) -> Result<Graph, String> {
    let doc: Vec<&str> = lib_rs
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    let heading = doc
        .iter()
        .position(|l| l.trim() == "# Layers")
        .ok_or("src/lib.rs has no `# Layers` section in its doc comment")?;
    let open = doc[heading..]
        .iter()
        .position(|l| l.trim() == "```text")
        .ok_or("the `# Layers` section has no ```text block")?
        + heading;
    let mut graph = Graph::new();
    for line in doc[open + 1..].iter().take_while(|l| l.trim() != "```") {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (name, deps) = line
            .split_once(':')
            .ok_or_else(|| format!("layer line without `module:`: {line}"))?;
        let name = name.trim().to_string();
        let deps: BTreeSet<String> = deps.split_whitespace().map(str::to_string).collect();
        if graph.insert(name.clone(), deps).is_some() {
            return Err(format!("layer `{name}` is listed twice"));
        }
    }
    if graph.is_empty() {
        return Err("the layer block is empty".into());
    }
    for (name, deps) in &graph {
        for d in deps {
            if !graph.contains_key(d) {
                return Err(format!(
                    "layer `{name}` may import `{d}`, which is not a layer"
                ));
            }
        }
    }
    Ok(graph)
}

/// The part of a file that is not test code.
fn non_test_part(file_name: &str, text: &str) -> String {
    if file_name == "tests.rs" || file_name.ends_with("_tests.rs") {
        return String::new();
    }
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]" {
            let next = lines.peek().map(|l| l.trim()).unwrap_or("");
            if next.starts_with("mod ") || next.starts_with("pub mod ") {
                if next.ends_with(';') {
                    // `#[cfg(test)] mod x;`: the file is test code; skip the declaration only.
                    lines.next();
                    continue;
                }
                break;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Drops `//` comments (doc comments included) so prose naming `crate::x` is not an import.
fn strip_comments(code: &str) -> String {
    code.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first path segment after every `crate::`, including each item of `crate::{a, b::c}`.
fn crate_modules(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        // `amt_agent_crate::` or `$crate::` are not this crate's paths.
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // Split the group at its top-level commas, up to its closing brace.
            let mut depth = 1;
            let mut start = 0;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if (c == ',' && depth == 1) || depth == 0 {
                    found.insert(ident(group[start..j].trim()));
                    start = j + 1;
                }
                if depth == 0 {
                    break;
                }
            }
        } else {
            found.insert(ident(rest));
        }
    }
    found.retain(|m| !m.is_empty() && m != "self");
    found
}

/// Every `.rs` file of a top-level module: `src/NAME.rs` and everything under `src/NAME/`.
fn module_files(src: &Path, name: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            entries.sort();
            for p in entries {
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|e| e == "rs") {
                    out.push(p);
                }
            }
        }
    }
    let mut files = Vec::new();
    let file = src.join(format!("{name}.rs"));
    if file.is_file() {
        files.push(file);
    }
    walk(&src.join(name), &mut files);
    files
}

/// The violations in `src/`, one line each.
fn check(src: &Path) -> Result<Vec<String>, String> {
    let lib = std::fs::read_to_string(src.join("lib.rs"))
        .map_err(|e| format!("{}: {e}", src.join("lib.rs").display()))?;
    let graph = parse_graph(&lib)?;
    let declared: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix("pub mod ")
                .or_else(|| l.strip_prefix("mod "))
                .map(|m| m.trim_end_matches(';').to_string())
        })
        .collect();
    let mut problems = Vec::new();
    for m in &declared {
        if !graph.contains_key(m) {
            problems.push(format!(
                "src/lib.rs declares `{m}`, which has no line in the layer block"
            ));
        }
    }
    for (name, allowed) in &graph {
        for file in module_files(src, name) {
            let text =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let file_name = file.file_name().and_then(|f| f.to_str()).unwrap_or("");
            let code = strip_comments(&non_test_part(file_name, &text));
            for used in crate_modules(&code) {
                if used != *name && !allowed.contains(&used) {
                    problems.push(format!(
                        "{}: `{name}` imports `crate::{used}`, which the layer block in src/lib.rs does not allow",
                        file.display()
                    ));
                }
            }
        }
    }
    Ok(problems)
}

fn main() {
    let src = std::env::args().nth(1).unwrap_or_else(|| "src".into());
    match check(Path::new(&src)) {
        Ok(p) if p.is_empty() => {}
        Ok(p) => {
            for line in &p {
                eprintln!("error: {line}");
            }
            eprintln!("help: import only the layers below (src/lib.rs, \"# Layers\"); a backend choice belongs in `device`, not `heci`");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIB: &str = "//! # Layers\n//!\n//! ```text\n//! heci:            # transports\n//! sim: heci        # the simulator\n//! device: heci sim\n//! ```\n\npub mod device;\npub mod heci;\npub mod sim;\n";

    fn tree(files: &[(&str, &str)]) -> PathBuf {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("check-layers-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, text) in files {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    #[test]
    fn the_graph_is_read_from_the_doc_comment() {
        let g = parse_graph(LIB).unwrap();
        assert!(g["heci"].is_empty());
        assert_eq!(g["device"].len(), 2);
        assert!(parse_graph("//! # Layers\n//! ```text\n//! a: b\n//! ```\n").is_err());
    }

    #[test]
    fn paths_and_groups_are_found_and_comments_ignored() {
        let code = strip_comments(
            "use crate::heci::{self, Guid};\nuse crate::{sim::Firmware, device};\n// crate::cli in prose\nlet x = crate::os::hostname(); $crate::y",
        );
        let found: Vec<String> = crate_modules(&code).into_iter().collect();
        assert_eq!(found, ["device", "heci", "os", "sim"]);
    }

    #[test]
    fn a_transport_importing_the_simulator_fails() {
        let dir = tree(&[
            ("lib.rs", LIB),
            ("heci/mod.rs", "use crate::sim::Firmware;\n"),
            ("sim.rs", "use crate::heci::Guid;\n"),
            ("device.rs", "use crate::{heci, sim};\n"),
        ]);
        let p = check(&dir).unwrap();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("`heci` imports `crate::sim`"), "{p:?}");
    }

    #[test]
    fn test_code_may_use_any_layer() {
        let dir = tree(&[
            ("lib.rs", LIB),
            (
                "heci/mod.rs",
                "pub fn f() {}\n#[cfg(test)]\nmod tests;\n#[cfg(test)]\nmod inline {\n    use crate::sim::Firmware;\n}\n",
            ),
            ("heci/tests.rs", "use crate::sim::Firmware;\n"),
            ("sim.rs", ""),
            ("device.rs", ""),
            ("extra/x.rs", ""),
        ]);
        assert_eq!(check(&dir).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_module_missing_from_the_block_is_reported() {
        let dir = tree(&[
            ("lib.rs", &format!("{LIB}pub mod extra;\n")),
            ("heci.rs", ""),
            ("sim.rs", ""),
            ("device.rs", ""),
            ("extra.rs", ""),
            ("x/y.rs", ""),
            ("z/w.rs", ""),
        ]);
        let p = check(&dir).unwrap();
        assert!(p.iter().any(|l| l.contains("`extra`")), "{p:?}");
    }
}
