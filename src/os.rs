//! What the OS knows that amtinfo reports beside AMT's view: host name, DNS suffix, and the IPv4
//! address of the interface with a given MAC. The one question that may leave the machine — the
//! host's canonical name, through the system's name service — has a short deadline
//! ([`CANONICAL_NAME_DEADLINE`]); everything else is local and immediate. Also where the agent's
//! data lives on each OS ([`DATA_DIR`], `%ProgramData%` paths) and how its private files are kept
//! (`private`: modes on Unix, ACLs on Windows).

#[cfg(unix)]
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long the system's name service may take to give the host's canonical name before the DNS
/// suffix falls back to /etc/resolv.conf (rpc-go waits up to 10 s; amtinfo should not).
pub const CANONICAL_NAME_DEADLINE: Duration = Duration::from_secs(2);

pub mod acl;
pub mod adapters;
pub mod private;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::{
    current_user_sid, dns_suffix, file_dacl, hostname, ipv4_for_mac, node_name, program_data,
};

/// Where the agent keeps what outlives a reboot and only administrators may read: AMT's TLS pins
/// (`configure tls`), profile mode's generated passwords and apply's records. `%ProgramData%` is
/// expanded by [`expand_path`].
#[cfg(not(windows))]
pub const DATA_DIR: &str = "/var/lib/amt-agent";
/// Where the agent keeps what outlives a reboot and only administrators may read: AMT's TLS pins
/// (`configure tls`), profile mode's generated passwords and apply's records. `%ProgramData%` is
/// expanded by [`expand_path`]. A folder of its own inside `%ProgramData%\amt-agent`: that one
/// holds agent.toml, status.json, the lock and the log, which stay readable as the MSI made them,
/// while this one is made private as `/var/lib/amt-agent` is (`os::private`).
#[cfg(windows)]
pub const DATA_DIR: &str = r"%ProgramData%\amt-agent\data";

/// Expands `%NAME%` environment references, as Windows paths are written
/// (`%ProgramData%\amt-agent`); an unknown name is left as written.
pub fn expand_percent_vars(s: &str, get: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find('%') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('%') {
            Some(end) if end > 0 && !after[..end].contains(['\\', '/', ' ']) => {
                let name = &after[..end];
                match get(name) {
                    Some(v) => out.push_str(&v),
                    None => {
                        out.push('%');
                        out.push_str(name);
                        out.push('%');
                    }
                }
                rest = &after[end + 1..];
            }
            _ => {
                out.push('%');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A path with `%NAME%` expanded on Windows (`%ProgramData%` is the shell's known folder, so a
/// service finds the folder the MSI used whatever its environment); unchanged elsewhere.
#[cfg(windows)]
pub fn expand_path(p: &Path) -> PathBuf {
    PathBuf::from(expand_percent_vars(&p.to_string_lossy(), |k| {
        if k.eq_ignore_ascii_case("ProgramData") {
            if let Some(d) = program_data() {
                return Some(d.display().to_string());
            }
        }
        std::env::var(k).ok()
    }))
}

/// A path with `%NAME%` expanded on Windows; unchanged elsewhere.
#[cfg(not(windows))]
pub fn expand_path(p: &Path) -> PathBuf {
    p.to_path_buf()
}

/// The host name (`uname` node name, first label).
#[cfg(unix)]
pub fn hostname() -> String {
    node_name()
        .split('.')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The host name exactly as the kernel holds it (`uname` node name), as Go's `os.Hostname()` and so
/// rpc-go's `Hostname (OS)` give it.
#[cfg(unix)]
pub fn node_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

/// The OS DNS suffix as the system resolver sees this host: the domain part of the node name when
/// it has one; otherwise the domain part of the node name's canonical name through the system's
/// name service (getaddrinfo with AI_CANONNAME: /etc/hosts, DNS, … as nsswitch.conf says), empty
/// when that canonical name has no dot; and when the name service has no answer within
/// [`CANONICAL_NAME_DEADLINE`], `domain` (or the first `search` entry) of /etc/resolv.conf.
#[cfg(unix)]
pub fn dns_suffix() -> String {
    let node = node_name();
    if let Some((_, d)) = node.split_once('.') {
        return d.trim_end_matches('.').to_string();
    }
    let canonical = if node.is_empty() {
        None
    } else {
        let host = node.clone();
        within(CANONICAL_NAME_DEADLINE, move || canonical_name(&host))
    };
    match canonical {
        Some(name) => suffix_of(&name),
        None => {
            tracing::debug!(
                host = %node,
                "no canonical name for the host; the DNS suffix comes from /etc/resolv.conf"
            );
            std::fs::read_to_string("/etc/resolv.conf")
                .map(|t| suffix_from_resolv_conf(&t))
                .unwrap_or_default()
        }
    }
}

/// The domain part of a host name (what follows its first label); empty for a name without a dot.
pub fn suffix_of(name: &str) -> String {
    name.trim_end_matches('.')
        .split_once('.')
        .map(|(_, d)| d.to_string())
        .unwrap_or_default()
}

/// `host`'s canonical name from the system's name service, or `None` when it has none.
#[cfg(unix)]
fn canonical_name(host: &str) -> Option<String> {
    let hints = dns_lookup::AddrInfoHints {
        flags: libc::AI_CANONNAME,
        address: 0,
        socktype: libc::SOCK_STREAM,
        protocol: 0,
    };
    match dns_lookup::getaddrinfo(Some(host), None, Some(hints)) {
        Ok(mut answers) => answers
            .next()
            .and_then(|a| a.ok())
            .and_then(|a| a.canonname)
            .filter(|c| !c.is_empty()),
        Err(e) => {
            tracing::debug!(host, error = ?e.kind(), "the name service does not know the host");
            None
        }
    }
}

/// Runs `f` on a worker thread and waits at most `deadline` for its answer. A lookup stuck in the
/// resolver is left to finish on its own; the caller moves on.
pub fn within<T: Send + 'static>(
    deadline: Duration,
    f: impl FnOnce() -> Option<T> + Send + 'static,
) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name("os-lookup".into())
        .spawn(move || {
            let _ = tx.send(f());
        });
    if spawned.is_err() {
        return None;
    }
    match rx.recv_timeout(deadline) {
        Ok(v) => v,
        Err(_) => {
            tracing::debug!(
                deadline_ms = deadline.as_millis() as u64,
                "the name service did not answer in time"
            );
            None
        }
    }
}

pub fn suffix_from_resolv_conf(text: &str) -> String {
    let mut search = None;
    for line in text.lines() {
        let mut w = line.split_whitespace();
        match w.next() {
            Some("domain") => {
                if let Some(d) = w.next() {
                    return d.trim_end_matches('.').to_string();
                }
            }
            Some("search") if search.is_none() => {
                search = w.next().map(|d| d.trim_end_matches('.').to_string())
            }
            _ => {}
        }
    }
    search.unwrap_or_default()
}

/// The first IPv4 address of an up, non-loopback interface whose MAC is `mac`.
#[cfg(unix)]
pub fn ipv4_for_mac(mac: &[u8; 6]) -> Option<Ipv4Addr> {
    if mac.iter().all(|&b| b == 0) {
        return None;
    }
    let addrs: Vec<_> = nix::ifaddrs::getifaddrs().ok()?.collect();
    let names: Vec<&str> = addrs
        .iter()
        .filter(|a| {
            a.address
                .as_ref()
                .and_then(|s| s.as_link_addr())
                .and_then(|l| l.addr())
                .is_some_and(|m| &m == mac)
        })
        .map(|a| a.interface_name.as_str())
        .collect();
    addrs.iter().find_map(|a| {
        let up = a.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP)
            && !a
                .flags
                .contains(nix::net::if_::InterfaceFlags::IFF_LOOPBACK);
        if !up || !names.contains(&a.interface_name.as_str()) {
            return None;
        }
        a.address
            .as_ref()
            .and_then(|s| s.as_sockaddr_in())
            .map(|s| s.ip())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_domain_wins_over_search() {
        assert_eq!(
            suffix_from_resolv_conf("search a.example b.example\ndomain corp.example.\n"),
            "corp.example"
        );
        assert_eq!(
            suffix_from_resolv_conf("nameserver 1.1.1.1\nsearch lab.example\n"),
            "lab.example"
        );
        assert_eq!(suffix_from_resolv_conf("nameserver 1.1.1.1\n"), "");
    }

    #[test]
    fn the_suffix_is_what_follows_the_first_label_and_empty_without_a_dot() {
        assert_eq!(suffix_of("wks-0042.corp.example.com"), "corp.example.com");
        assert_eq!(suffix_of("wks-0042.corp.example.com."), "corp.example.com");
        assert_eq!(suffix_of("wks-0042"), "");
        assert_eq!(suffix_of("localhost"), "");
        assert_eq!(suffix_of(""), "");
    }

    #[test]
    fn a_slow_name_service_costs_the_deadline_not_its_own_timeout() {
        let started = std::time::Instant::now();
        let answer = within(Duration::from_millis(200), || {
            std::thread::sleep(Duration::from_secs(5));
            Some("late.example".to_string())
        });
        assert_eq!(answer, None);
        assert!(started.elapsed() < Duration::from_secs(2));
        let quick = within(Duration::from_secs(2), || {
            Some("box.lab.example".to_string())
        });
        assert_eq!(quick.as_deref(), Some("box.lab.example"));
    }

    #[cfg(unix)]
    #[test]
    fn localhost_has_a_canonical_name_from_the_hosts_file() {
        // /etc/hosts maps localhost on every Unix this runs on: no DNS query is made.
        assert_eq!(canonical_name("localhost").as_deref(), Some("localhost"));
    }

    #[cfg(unix)]
    #[test]
    fn a_zero_mac_matches_no_interface() {
        assert_eq!(ipv4_for_mac(&[0; 6]), None);
    }
}
