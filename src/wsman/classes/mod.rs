//! Typed calls per AMT class (transport.md §7.3, rps-protocol.md §3 and §5, rpc-go.md §5). Each
//! function returns a [`Call`](super::calls::Call) whose decoder yields the typed answer; a
//! non-zero `ReturnValue` becomes [`WsmanError::ReturnValue`](super::calls::WsmanError) with the
//! firmware's name for it.

pub mod authorization;
pub mod cira;
pub mod ethernet;
pub mod general;
pub mod host_based_setup;
pub mod http_proxy;
pub mod ieee8021x;
pub mod public_key;
pub mod public_key_management;
pub mod redirection;
pub mod setup_and_configuration;
pub mod time_sync;
pub mod tls;
pub mod wifi;

/// `InfoFormat`: how an `AccessInfo` address is written, in `AddMpServer` (CIRA) and
/// `AddProxyAccessPoint` alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InfoFormat {
    Ipv4 = 3,
    Ipv6 = 4,
    Fqdn = 201,
}

impl InfoFormat {
    /// The format of an address as written: an IP address, else a host name.
    pub fn of(address: &str) -> InfoFormat {
        match address.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(_)) => InfoFormat::Ipv4,
            Ok(std::net::IpAddr::V6(_)) => InfoFormat::Ipv6,
            Err(_) => InfoFormat::Fqdn,
        }
    }

    pub fn is_ip(self) -> bool {
        self != InfoFormat::Fqdn
    }
}

#[cfg(test)]
mod tests;
