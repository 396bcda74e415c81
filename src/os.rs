//! What the OS knows that amtinfo reports beside AMT's view: host name, DNS suffix, and the IPv4
//! address of the interface with a given MAC. No DNS queries: every answer is local and immediate.

#[cfg(unix)]
use std::net::Ipv4Addr;

pub mod acl;
pub mod adapters;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::{dns_suffix, file_dacl, hostname, ipv4_for_mac, program_data};

/// The host name (`uname` node name, first label).
#[cfg(unix)]
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .map(|h| h.split('.').next().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// The OS DNS suffix: the node name's domain part when it has one, else `domain` (or the first
/// `search` entry) of /etc/resolv.conf.
#[cfg(unix)]
pub fn dns_suffix() -> String {
    if let Some(h) = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
    {
        if let Some((_, d)) = h.split_once('.') {
            return d.to_string();
        }
    }
    std::fs::read_to_string("/etc/resolv.conf")
        .map(|t| suffix_from_resolv_conf(&t))
        .unwrap_or_default()
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
    fn a_zero_mac_matches_no_interface() {
        assert_eq!(ipv4_for_mac(&[0; 6]), None);
    }
}
