//! HTTP proxies for remote access: `IPS_HTTPProxyService` and its `IPS_HTTPProxyAccessPoint`s
//! (the CIRA classes are in [`super::cira`]).

use super::super::model::{input_text, inst, prop, Instance};
use crate::sim::profile::DeviceProfile;
use crate::sim::FirmwareCore;
use crate::wsman::envelope::{ns, Element, Param};

/// No proxies (the CIRA classes are [`super::cira`]'s).
pub(super) fn seed(p: &mut DeviceProfile) {
    p.instances
        .insert("IPS_HTTPProxyAccessPoint".into(), Vec::new());
}

/// At most this many proxy access points (UNCONFIRMED: firmware's limit is unpublished).
pub(super) const MAX_PROXIES: usize = 8;

/// `IPS_HTTPProxyService`: the service instance, computed at each read.
pub(super) fn computed(class: &str) -> Option<Instance> {
    (class == "IPS_HTTPProxyService").then(|| {
        inst(&[
            ("CreationClassName", class),
            ("ElementName", "Intel(r) AMT HTTP Proxy Service"),
            ("Name", "Intel(r) AMT HTTP Proxy Service"),
            ("SyncEnabled", "false"),
            ("SystemCreationClassName", "CIM_ComputerSystem"),
            ("SystemName", "Intel(r) AMT"),
        ])
    })
}

/// Whether `access` is written as `format` says: 3 an IPv4 address, 4 an IPv6 address, 201 a
/// host name of DNS labels.
fn access_info_ok(access: &str, format: &str) -> bool {
    match format {
        "3" => access.parse::<std::net::Ipv4Addr>().is_ok(),
        "4" => access.parse::<std::net::Ipv6Addr>().is_ok(),
        "201" => {
            !access.is_empty()
                && access.len() <= 255
                && access.split('.').all(|l| {
                    (1..=63).contains(&l.len())
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
        }
        _ => false,
    }
}

/// `IPS_HTTPProxyService.AddProxyAccessPoint`; `None` when the method is not one of this area's.
/// ReturnValues: 36 INVALID_PARAMETER (format, address, port or suffix wrong), 2058 for an
/// address already present (the `ips/http/addproxyaccesspoint_2058.xml` fixture's answer), 23
/// MAX_LIMIT_REACHED past [`MAX_PROXIES`] (UNCONFIRMED).
pub(super) fn invoke(
    fw: &mut FirmwareCore,
    class: &str,
    method: &str,
    input: Option<&Element>,
    _user: &str,
) -> Option<Vec<Param>> {
    if (class, method) != ("IPS_HTTPProxyService", "AddProxyAccessPoint") {
        return None;
    }
    let access = input_text(input, "AccessInfo").unwrap_or("").to_string();
    let format = input_text(input, "InfoFormat").unwrap_or("").to_string();
    let port = input_text(input, "Port").and_then(|p| p.parse::<u16>().ok());
    let suffix = input_text(input, "NetworkDnsSuffix")
        .unwrap_or("")
        .to_string();
    let list = fw
        .profile
        .instances
        .entry("IPS_HTTPProxyAccessPoint".into())
        .or_default();
    let status = if !access_info_ok(&access, &format)
        || !matches!(port, Some(p) if p > 0)
        || suffix.len() > 192
    {
        36
    } else if list
        .iter()
        .any(|i| prop(i, "AccessInfo").is_some_and(|a| a.eq_ignore_ascii_case(&access)))
    {
        2058
    } else if list.len() >= MAX_PROXIES {
        23
    } else {
        0
    };
    if status != 0 {
        return Some(vec![
            Param::raw(
                "ProxyAccessPoint",
                "<b:Address>default</b:Address><b:ReferenceParameters><c:ResourceURI></c:ResourceURI><c:SelectorSet></c:SelectorSet></b:ReferenceParameters>",
            ),
            Param::text("ReturnValue", status),
        ]);
    }
    let n = (0..)
        .find(|n| {
            let name = format!("Intel(r) ME:HTTP Proxy Access Point {n}");
            !list.iter().any(|i| prop(i, "Name") == Some(name.as_str()))
        })
        .unwrap_or(0);
    let name = format!("Intel(r) ME:HTTP Proxy Access Point {n}");
    list.push(inst(&[
        ("AccessInfo", &access),
        ("CreationClassName", "IPS_HTTPProxyAccessPoint"),
        ("ElementName", &name),
        ("InfoFormat", &format),
        ("Name", &name),
        ("NetworkDnsSuffix", &suffix),
        ("Port", &port.unwrap_or(0).to_string()),
        ("SystemCreationClassName", "CIM_ComputerSystem"),
        ("SystemName", "Intel(r) AMT"),
    ]));
    fw.changed();
    Some(vec![
        Param::raw(
            "ProxyAccessPoint",
            format!(
                "<b:Address>{}</b:Address><b:ReferenceParameters><c:ResourceURI>{}IPS_HTTPProxyAccessPoint</c:ResourceURI><c:SelectorSet><c:Selector Name=\"CreationClassName\">IPS_HTTPProxyAccessPoint</c:Selector><c:Selector Name=\"Name\">{}</c:Selector><c:Selector Name=\"SystemCreationClassName\">CIM_ComputerSystem</c:Selector><c:Selector Name=\"SystemName\">Intel(r) AMT</c:Selector></c:SelectorSet></b:ReferenceParameters>",
                ns::ANONYMOUS,
                ns::IPS_SCHEMA,
                crate::wsman::envelope::escape(&name)
            ),
        ),
        Param::text("ReturnValue", 0),
    ])
}
