//! The checks a Put goes through before the firmware stores anything: each class lists its
//! properties with a type, a range and whether a client may change it; [`check_put`] walks the
//! body against that list. Firmware answers a refused Put with a SOAP fault; which subcode real
//! firmware uses per rule is unpublished, so the choices here are UNCONFIRMED (docs/simulator.md):
//! `wxf:InvalidRepresentation` for a wrong type, an out-of-range value, a changed read-only
//! property or an unknown property, and `wsman:AccessDenied` for a value the control mode or the
//! user may not set.

use super::super::model::{prop, Instance};
use crate::wsman::envelope::{ns, Element};

/// Why a Put is refused: the fault's subcode and its reason text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutRefusal {
    pub subcode: (&'static str, &'static str),
    pub reason: String,
}

impl PutRefusal {
    pub fn invalid(reason: impl Into<String>) -> PutRefusal {
        PutRefusal {
            subcode: (ns::TRANSFER, "InvalidRepresentation"),
            reason: reason.into(),
        }
    }

    pub fn denied(reason: impl Into<String>) -> PutRefusal {
        PutRefusal {
            subcode: (ns::WSMAN, "AccessDenied"),
            reason: reason.into(),
        }
    }
}

/// A property's type as the class declares it.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Bool,
    /// An unsigned integer within the range.
    Uint(u64, u64),
    /// One of these values.
    OneOf(&'static [u64]),
    /// Text up to this many bytes.
    Text(usize),
    /// A password of up to this many bytes: checked like text, never repeated in a refusal (the
    /// firmware keeps only its digest, `super::write_only`).
    Secret(usize),
}

/// One property of a class's schema.
#[derive(Clone, Copy, Debug)]
pub struct PropRule {
    pub name: &'static str,
    pub kind: Kind,
    /// A client may send it, but only with the value the firmware holds.
    pub read_only: bool,
}

pub const fn rw(name: &'static str, kind: Kind) -> PropRule {
    PropRule {
        name,
        kind,
        read_only: false,
    }
}

pub const fn ro(name: &'static str, kind: Kind) -> PropRule {
    PropRule {
        name,
        kind,
        read_only: true,
    }
}

pub(super) fn kind_ok(kind: Kind, v: &str) -> bool {
    match kind {
        Kind::Bool => v == "true" || v == "false",
        Kind::Uint(lo, hi) => v.parse::<u64>().is_ok_and(|n| (lo..=hi).contains(&n)),
        Kind::OneOf(set) => v.parse::<u64>().is_ok_and(|n| set.contains(&n)),
        Kind::Text(max) | Kind::Secret(max) => v.len() <= max,
    }
}

fn kind_text(kind: Kind) -> String {
    match kind {
        Kind::Bool => "true or false".into(),
        Kind::Uint(lo, hi) => format!("an integer {lo}–{hi}"),
        Kind::OneOf(set) => format!(
            "one of {}",
            set.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Kind::Text(max) | Kind::Secret(max) => format!("text of at most {max} bytes"),
    }
}

/// Checks every property of a Put body against `schema`: known, of its type, and read-only ones
/// unchanged. `strict`: a property the schema does not list is refused too.
pub fn check_put(
    class: &str,
    schema: &[PropRule],
    current: &Instance,
    body: &Element,
    strict: bool,
) -> Result<(), PutRefusal> {
    for c in &body.children {
        let v = c.text();
        let Some(rule) = schema.iter().find(|r| r.name == c.name) else {
            if strict {
                return Err(PutRefusal::invalid(format!(
                    "{class} has no property {}",
                    c.name
                )));
            }
            continue;
        };
        if !kind_ok(rule.kind, v) {
            let given = match rule.kind {
                Kind::Secret(_) => format!("{} bytes", v.len()),
                _ => format!("'{v}'"),
            };
            return Err(PutRefusal::invalid(format!(
                "{class}.{} must be {}, not {given}",
                rule.name,
                kind_text(rule.kind)
            )));
        }
        if rule.read_only && prop(current, rule.name).is_some_and(|cur| cur != v) {
            return Err(PutRefusal::invalid(format!(
                "{class}.{} is read-only",
                rule.name
            )));
        }
    }
    Ok(())
}

/// The value a Put body gives a property, else the current one.
pub fn after_put<'a>(current: &'a Instance, body: &'a Element, name: &str) -> Option<&'a str> {
    body.child_text(name).or_else(|| prop(current, name))
}
