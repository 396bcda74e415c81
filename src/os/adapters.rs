//! The choices `amtinfo` makes from the OS's network adapters, kept apart from the calls that list
//! them so the rules are tested on every OS. The Windows build lists adapters with
//! `GetAdaptersAddresses` (windows.md §4).

use std::net::Ipv4Addr;

/// One network adapter as the OS reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Adapter {
    pub mac: Vec<u8>,
    pub up: bool,
    pub loopback: bool,
    pub ipv4: Vec<Ipv4Addr>,
    /// The connection-specific DNS suffix (Windows), empty when none.
    pub dns_suffix: String,
}

/// The first IPv4 address of an up, non-loopback adapter whose MAC is `mac` (AMT's wired MAC);
/// `None` for an all-zero MAC, which AMT reports when it has no LAN.
pub fn ipv4_for_mac(adapters: &[Adapter], mac: &[u8; 6]) -> Option<Ipv4Addr> {
    if mac.iter().all(|&b| b == 0) {
        return None;
    }
    adapters
        .iter()
        .filter(|a| a.up && !a.loopback && a.mac.as_slice() == mac.as_slice())
        .find_map(|a| a.ipv4.first().copied())
}

/// The OS DNS suffix on Windows: the primary DNS suffix of the computer when it has one, else the
/// connection-specific suffix of the first up, non-loopback adapter that has one (windows.md §4).
pub fn dns_suffix(primary: &str, adapters: &[Adapter]) -> String {
    let primary = primary.trim().trim_end_matches('.');
    if !primary.is_empty() {
        return primary.to_string();
    }
    adapters
        .iter()
        .filter(|a| a.up && !a.loopback)
        .map(|a| a.dns_suffix.trim().trim_end_matches('.'))
        .find(|s| !s.is_empty())
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x00, 0x1b, 0x21, 0x0a, 0x0b, 0x0c];

    fn nic(mac: [u8; 6], up: bool, ip: [u8; 4], suffix: &str) -> Adapter {
        Adapter {
            mac: mac.to_vec(),
            up,
            loopback: false,
            ipv4: vec![Ipv4Addr::from(ip)],
            dns_suffix: suffix.into(),
        }
    }

    #[test]
    fn the_ip_is_that_of_the_up_adapter_with_amts_mac() {
        let adapters = [
            nic([0x02, 0, 0, 0, 0, 1], true, [10, 0, 0, 9], ""),
            nic(MAC, false, [10, 0, 0, 7], ""),
            nic(MAC, true, [10, 0, 0, 8], ""),
        ];
        assert_eq!(
            ipv4_for_mac(&adapters, &MAC),
            Some(Ipv4Addr::new(10, 0, 0, 8))
        );
        assert_eq!(ipv4_for_mac(&adapters[..2], &MAC), None);
        assert_eq!(ipv4_for_mac(&adapters, &[0; 6]), None);
    }

    #[test]
    fn the_primary_suffix_wins_over_connection_suffixes() {
        let adapters = [
            nic(MAC, false, [10, 0, 0, 7], "down.example"),
            nic(MAC, true, [10, 0, 0, 8], "lan.example."),
        ];
        assert_eq!(dns_suffix("corp.example", &adapters), "corp.example");
        assert_eq!(dns_suffix("", &adapters), "lan.example");
        assert_eq!(dns_suffix("", &adapters[..1]), "");
    }
}
