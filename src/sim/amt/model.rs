//! The generic WS-MAN operations on the firmware's instance store: Get, Put, Enumerate/Pull,
//! Delete, Create and method calls, answered with the envelopes and faults firmware sends
//! (transport.md §7, the captures in tests/fixtures/amt-captures). What a class *means* (its factory
//! instances, which writes it accepts, its methods) lives in [`super::classes`].

use super::classes;
use super::FirmwareCore;
use crate::wsman::envelope::{self as env, action, ns, Element, Envelope, FaultSpec, Param};

/// A CIM instance: properties in order (a repeated name is an array).
pub type Instance = Vec<(String, String)>;

pub(super) fn prop<'a>(i: &'a Instance, name: &str) -> Option<&'a str> {
    i.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

pub(super) fn set_prop(i: &mut Instance, name: &str, value: &str) {
    match i.iter_mut().find(|(k, _)| k == name) {
        Some((_, v)) => *v = value.to_string(),
        None => i.push((name.to_string(), value.to_string())),
    }
}

pub(super) fn inst(pairs: &[(&str, &str)]) -> Instance {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) fn next_id(fw: &mut FirmwareCore) -> u64 {
    fw.web.message_counter += 1;
    fw.web.message_counter
}

pub(super) fn class_of(uri: &str) -> &str {
    uri.rsplit('/').next().unwrap_or(uri)
}

pub(super) fn selectors(e: &Envelope) -> Vec<(String, String)> {
    e.header()
        .and_then(|h| h.child("SelectorSet"))
        .map(|s| {
            s.children_named("Selector")
                .map(|x| {
                    (
                        x.attr("Name").unwrap_or_default().to_string(),
                        x.text().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn matches(i: &Instance, sel: &[(String, String)]) -> bool {
    sel.iter()
        .all(|(k, v)| prop(i, k).map(|x| x == v).unwrap_or(true))
}

/// An instance's properties as the firmware writes them: hidden properties ([`hidden`]) left out,
/// endpoint references ([`epr`]) as their XML.
pub(super) fn params(i: &Instance) -> Vec<Param> {
    i.iter()
        .filter(|(k, _)| !k.starts_with(HIDDEN))
        .map(|(k, v)| match epr_parts(v) {
            Some((uri, name, value)) => Param::raw(k, epr_xml(uri, name, value)),
            None => match epr_set_parts(v) {
                Some((uri, set)) => Param::raw(k, epr_set_xml(uri, &set)),
                None => Param::text(k, v),
            },
        })
        .collect()
}

const EPR_SET_TAG: &str = "\0EPRS\0";

/// An endpoint reference with several selectors (an association's `ManagedElement` and
/// `PolicySet`, which name their instance by all of its keys), stored as text and written by
/// [`params`] as [`epr_set_xml`] does.
pub(super) fn epr_set(resource_uri: &str, selectors: &[(&str, &str)]) -> String {
    let mut s = format!("{EPR_SET_TAG}{resource_uri}");
    for (n, v) in selectors {
        s.push('\0');
        s.push_str(n);
        s.push('\0');
        s.push_str(v);
    }
    s
}

/// (ResourceURI, selectors) of a value made by [`epr_set`].
pub(super) fn epr_set_parts(v: &str) -> Option<(&str, Vec<(&str, &str)>)> {
    let mut it = v.strip_prefix(EPR_SET_TAG)?.split('\0');
    let uri = it.next()?;
    let mut set = Vec::new();
    while let (Some(n), Some(v)) = (it.next(), it.next()) {
        set.push((n, v));
    }
    Some((uri, set))
}

/// [`epr_xml`] with several selectors, in the order given.
pub(super) fn epr_set_xml(resource_uri: &str, selectors: &[(&str, &str)]) -> String {
    let mut s = format!(
        "<b:Address>{}</b:Address><b:ReferenceParameters><c:ResourceURI>{}</c:ResourceURI><c:SelectorSet>",
        ns::ANONYMOUS,
        env::escape(resource_uri)
    );
    for (n, v) in selectors {
        s.push_str(&format!(
            "<c:Selector Name=\"{}\">{}</c:Selector>",
            env::escape(n),
            env::escape(v)
        ));
    }
    s.push_str("</c:SelectorSet></b:ReferenceParameters>");
    s
}

/// Marks what the firmware keeps but never returns (a hash of an 802.1X password, of a PSK):
/// NUL cannot occur in XML, so no client can read, write or select such a property.
const HIDDEN: char = '\0';
const EPR_TAG: &str = "\0EPR\0";

/// The name of a property the firmware keeps and never shows.
pub(super) fn hidden(name: &str) -> String {
    format!("{HIDDEN}{name}")
}

/// A property whose value is an endpoint reference (an association's `ElementInContext`, …),
/// stored as text and written as `b:Address` + `b:ReferenceParameters` by [`params`].
pub(super) fn epr(resource_uri: &str, selector: &str, value: &str) -> String {
    format!("{EPR_TAG}{resource_uri}\0{selector}\0{value}")
}

/// (ResourceURI, selector name, selector value) of a value made by [`epr`].
pub(super) fn epr_parts(v: &str) -> Option<(&str, &str, &str)> {
    let mut it = v.strip_prefix(EPR_TAG)?.splitn(3, '\0');
    Some((it.next()?, it.next()?, it.next()?))
}

/// An endpoint reference in a response, with the prefixes AMT's envelope declares (`b`
/// addressing, `c` WS-Management).
pub(super) fn epr_xml(resource_uri: &str, selector: &str, value: &str) -> String {
    format!(
        "<b:Address>{}</b:Address><b:ReferenceParameters><c:ResourceURI>{}</c:ResourceURI><c:SelectorSet><c:Selector Name=\"{}\">{}</c:Selector></c:SelectorSet></b:ReferenceParameters>",
        ns::ANONYMOUS,
        env::escape(resource_uri),
        env::escape(selector),
        env::escape(value)
    )
}

/// The instance a method parameter names: an endpoint reference's first selector value
/// (go-wsman-messages, rpc-go), or the bare text (Intel's wsman-messages sends handles so).
pub(super) fn input_ref(input: Option<&Element>, name: &str) -> Option<String> {
    let e = input?.child(name)?;
    let v = if e.children.is_empty() {
        e.text()
    } else {
        e.find("Selector")?.text()
    };
    (!v.is_empty()).then(|| v.to_string())
}

pub(super) fn fault(
    fw: &mut FirmwareCore,
    relates: &str,
    subcode: (&str, &str),
    reason: &str,
) -> String {
    let id = next_id(fw);
    env::amt_fault_envelope(
        relates,
        id,
        &FaultSpec {
            action: if subcode.0 == ns::ADDRESSING {
                action::ADDRESSING_FAULT
            } else {
                action::WSMAN_FAULT
            },
            code: "Sender",
            subcode: Some(subcode),
            reason,
            detail: "",
        },
    )
}

pub(super) fn unreachable_fault(fw: &mut FirmwareCore, relates: &str) -> String {
    fault(
        fw,
        relates,
        (ns::ADDRESSING, "DestinationUnreachable"),
        "No route can be determined to reach the destination role defined by the WS-Addressing To.",
    )
}

pub(super) fn dispatch(fw: &mut FirmwareCore, e: &Envelope, user: &str) -> Result<String, String> {
    let relates = e.message_id().unwrap_or("0").to_string();
    let uri = e.resource_uri().unwrap_or_default().to_string();
    let class = class_of(&uri).to_string();
    let act = e.action().unwrap_or_default().to_string();
    let sel = selectors(e);
    let known = fw.profile.instances.contains_key(&class);
    let comp = classes::computed(
        fw,
        &class,
        matches!(act.as_str(), action::GET | action::ENUMERATE),
    );
    if !known && comp.is_none() {
        tracing::debug!(%class, "WS-MAN: unknown class");
        return Err(unreachable_fault(fw, &relates));
    }
    match act.as_str() {
        action::GET => {
            let i = match comp {
                Some(i) => Some(i),
                None => fw.profile.instances[&class]
                    .iter()
                    .find(|i| matches(i, &sel))
                    .cloned(),
            };
            match i {
                Some(mut i) => {
                    if class == "AMT_GeneralSettings" {
                        set_prop(&mut i, "DigestRealm", &fw.profile.digest_realm.clone());
                    }
                    let id = next_id(fw);
                    Ok(env::amt_instance_response(
                        action::GET_RESPONSE,
                        &relates,
                        id,
                        &uri,
                        &class,
                        &params(&i),
                    ))
                }
                None => Err(fault(
                    fw,
                    &relates,
                    (ns::WSMAN, "InvalidSelectors"),
                    "The Selectors for the resource were not valid.",
                )),
            }
        }
        action::PUT => {
            // An instance element without properties is no instance either: answering it with the
            // unchanged instance let a client whose Put lost its properties pass as a success.
            // Which fault firmware sends for it is UNCONFIRMED; the sim gives the missing-body one.
            let Some(body) = e.body_element().filter(|b| !b.children.is_empty()) else {
                return Err(fault(
                    fw,
                    &relates,
                    (ns::WSMAN, "SchemaValidationError"),
                    "Missing instance.",
                ));
            };
            // An association names its instance by the references in the body, not by selectors.
            if let Some(r) = classes::put_by_body(fw, &class, body) {
                return match r {
                    Ok(Some(stored)) => {
                        fw.changed();
                        let id = next_id(fw);
                        Ok(env::amt_instance_response(
                            action::PUT_RESPONSE,
                            &relates,
                            id,
                            &uri,
                            &class,
                            &params(&stored),
                        ))
                    }
                    Ok(None) => {
                        fw.changed();
                        let id = next_id(fw);
                        // Empty body, as go-wsman-messages' policyappliestomps/put.xml fixture.
                        Ok(env::amt_response_envelope(
                            &env::AmtResponseHeader {
                                action: action::PUT_RESPONSE,
                                relates_to: &relates,
                                message_id: id,
                                resource_uri: Some(&uri),
                            },
                            None,
                            None,
                            "",
                        ))
                    }
                    Err(refusal) => {
                        tracing::debug!(%class, reason = %refusal.reason, "WS-MAN: Put refused");
                        Err(fault(fw, &relates, refusal.subcode, &refusal.reason))
                    }
                };
            }
            let Some(list) = fw.profile.instances.get(&class) else {
                return Err(unreachable_fault(fw, &relates));
            };
            let key = body
                .child_text("InstanceID")
                .map(|v| ("InstanceID".to_string(), v.to_string()));
            let sel_all: Vec<(String, String)> = sel.iter().cloned().chain(key).collect();
            let Some(at) = list.iter().position(|i| matches(i, &sel_all)) else {
                return Err(fault(
                    fw,
                    &relates,
                    (ns::WSMAN, "InvalidSelectors"),
                    "The Selectors for the resource were not valid.",
                ));
            };
            if let Err(refusal) = classes::check_put(fw, &class, &list[at], body) {
                tracing::debug!(%class, reason = %refusal.reason, "WS-MAN: Put refused");
                return Err(fault(fw, &relates, refusal.subcode, &refusal.reason));
            }
            let target = &mut fw.profile.instances.get_mut(&class).expect("found above")[at];
            apply_put(target, body, &class);
            classes::keep_write_only(&class, target);
            classes::after_put(fw, &class, at);
            let mut out = fw.profile.instances[&class][at].clone();
            fw.changed();
            if class == "AMT_GeneralSettings" {
                set_prop(&mut out, "DigestRealm", &fw.profile.digest_realm.clone());
            }
            let id = next_id(fw);
            Ok(env::amt_instance_response(
                action::PUT_RESPONSE,
                &relates,
                id,
                &uri,
                &class,
                &params(&out),
            ))
        }
        action::ENUMERATE => {
            let items: Vec<Instance> = match comp {
                Some(i) => vec![i],
                None => fw.profile.instances[&class].clone(),
            };
            let xml: Vec<String> = items
                .iter()
                .map(|i| env::amt_instance_xml("h", &class, &params(i)))
                .collect();
            fw.web.context_counter += 1;
            let ctx = format!("{:08X}-0000-0000-0000-000000000000", fw.web.context_counter);
            fw.web.contexts.insert(ctx.clone(), (class.clone(), xml));
            let id = next_id(fw);
            Ok(env::amt_enumerate_response(&relates, id, &uri, &ctx))
        }
        action::PULL => {
            let ctx = e
                .body()
                .find("EnumerationContext")
                .map(|c| c.text().to_string())
                .unwrap_or_default();
            match fw.web.contexts.remove(&ctx) {
                Some((_, items)) => {
                    let id = next_id(fw);
                    Ok(env::amt_pull_response(
                        &relates, id, &uri, &items, true, &ctx,
                    ))
                }
                None => Err(fault(
                    fw,
                    &relates,
                    (ns::ENUMERATION, "InvalidEnumerationContext"),
                    "The supplied enumeration context is invalid.",
                )),
            }
        }
        action::DELETE => {
            let hit =
                |i: &Instance| sel.is_empty() || sel.iter().all(|(k, v)| prop(i, k) == Some(v));
            let doomed: Vec<Instance> = fw.profile.instances[&class]
                .iter()
                .filter(|i| hit(i))
                .cloned()
                .collect();
            if doomed.is_empty() {
                // Firmware answers the delete of an absent instance with a fault (rps-protocol.md §9).
                if class == "AMT_RemoteAccessPolicyRule" {
                    // rpc-go's RemoveRemoteAccessPolicyRules tolerates exactly this subcode.
                    return Err(unreachable_fault(fw, &relates));
                }
                return Err(fault(
                    fw,
                    &relates,
                    (ns::WSMAN, "InvalidSelectors"),
                    "The Selectors for the resource were not valid.",
                ));
            }
            for i in &doomed {
                if let Err(refusal) = classes::check_delete(fw, &class, i) {
                    tracing::debug!(%class, reason = %refusal.reason, "WS-MAN: Delete refused");
                    return Err(fault(fw, &relates, refusal.subcode, &refusal.reason));
                }
            }
            let list = fw.profile.instances.get_mut(&class).expect("known class");
            list.retain(|i| !hit(i));
            classes::after_delete(fw, &class, &doomed);
            fw.changed();
            let id = next_id(fw);
            Ok(env::amt_delete_response(&relates, id, &uri))
        }
        action::CREATE => {
            let Some(body) = e.body_element().filter(|b| !b.children.is_empty()) else {
                return Err(fault(
                    fw,
                    &relates,
                    (ns::WSMAN, "SchemaValidationError"),
                    "Missing instance.",
                ));
            };
            match classes::create(fw, &class, body) {
                Some(Ok(created)) => {
                    let id = next_id(fw);
                    Ok(env::amt_created_response(&relates, id, &uri, &created))
                }
                Some(Err(refusal)) => {
                    tracing::debug!(%class, reason = %refusal.reason, "WS-MAN: Create refused");
                    Err(fault(fw, &relates, refusal.subcode, &refusal.reason))
                }
                None => Err(fault(
                    fw,
                    &relates,
                    (ns::ADDRESSING, "ActionNotSupported"),
                    "The action is not supported by the service.",
                )),
            }
        }
        other if other.starts_with(&uri) && other.len() > uri.len() + 1 => {
            let method = other[uri.len() + 1..].to_string();
            let input = e.body_element().cloned();
            match classes::invoke(fw, &class, &method, input.as_ref(), user) {
                Some(outputs) => {
                    let id = next_id(fw);
                    Ok(env::amt_method_response(
                        &relates, id, &uri, &method, &outputs,
                    ))
                }
                None => Err(fault(
                    fw,
                    &relates,
                    (ns::ADDRESSING, "ActionNotSupported"),
                    "The action is not supported by the service.",
                )),
            }
        }
        _ => Err(fault(
            fw,
            &relates,
            (ns::ADDRESSING, "ActionNotSupported"),
            "The action is not supported by the service.",
        )),
    }
}

pub(super) fn apply_put(target: &mut Instance, body: &Element, class: &str) {
    // Array properties arrive as repeated elements: replace the whole array.
    let mut seen: Vec<String> = Vec::new();
    for c in &body.children {
        let name = c.name.clone();
        if class == "AMT_GeneralSettings" && name == "DigestRealm" {
            continue; // read-only
        }
        if !seen.contains(&name) {
            target.retain(|(k, _)| *k != name);
            seen.push(name.clone());
        }
        target.push((name, c.text().to_string()));
    }
}

pub(super) fn input_text<'a>(input: Option<&'a Element>, name: &str) -> Option<&'a str> {
    input.and_then(|i| i.child_text(name))
}

pub(super) fn ret(v: u32) -> Vec<Param> {
    vec![Param::text("ReturnValue", v)]
}
