//! The typed WS-MAN layer, still sans-IO: a [`Call`] names a class, an operation, selectors and
//! arguments; it renders to the request envelope go-wsman-messages / RPS would send
//! (transport.md §7.1, rps-protocol.md §2) and decodes the answer into a typed value or a
//! [`WsmanError`]. The per-class calls live in [`super::classes`]; generic ones (any class by name,
//! for `amt-agent diagnostics wsman`) are here, with a JSON view of what AMT returned.
//!
//! Secrets ([`Secret`]) stay wrapped inside a call until [`Call::render`] writes them into the XML.

use std::fmt;
use std::fmt::Write as _;

use base64::Engine as _;
use md5::{Digest as _, Md5};
use rand::RngCore;

use super::envelope::{
    self, escape, ns, resource_uri, Element, Envelope, EnvelopeError, Fault, Param, Selector,
};
use super::returns;
use crate::secret::Secret;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a WS-MAN exchange did not produce the expected value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WsmanError {
    /// A SOAP fault (AMT sends them with HTTP 400), boxed: it is much larger than the others.
    #[error("{0}")]
    Fault(Box<Fault>),
    /// A method answered with a non-zero `ReturnValue`, decoded with [`returns::describe`].
    #[error("{method} returned {name} ({value}): {meaning}")]
    ReturnValue {
        class: String,
        method: String,
        value: u32,
        name: &'static str,
        meaning: &'static str,
    },
    /// An HTTP status other than 200, 400 (fault) and 401.
    #[error("AMT answered HTTP {status}")]
    Http { status: u16 },
    /// HTTP 401 after authenticating: wrong user or password.
    #[error("AMT rejected the credentials (HTTP 401)")]
    Unauthorized,
    #[error("malformed WS-MAN response: {0}")]
    Malformed(EnvelopeError),
    /// The response parsed but lacks an element this call needs.
    #[error("WS-MAN response lacks {0}")]
    Missing(String),
}

impl From<EnvelopeError> for WsmanError {
    fn from(e: EnvelopeError) -> WsmanError {
        WsmanError::Malformed(e)
    }
}

impl WsmanError {
    /// A one-line suggestion for the user.
    pub fn help(&self) -> String {
        match self {
            WsmanError::Fault(f) => {
                let sub = f.subcode.as_ref().map(|s| s.local.as_str()).unwrap_or("");
                match sub {
                    "AlreadyExists" => "the instance already exists; read it (get/enumerate) and update or delete it instead".into(),
                    "DestinationUnreachable" | "InvalidSelectors" => "the instance or class does not exist on this firmware; list instances with: amt-agent diagnostics wsman enumerate CLASS".into(),
                    "ActionNotSupported" => "this firmware does not support that action on the class; check the AMT version with: amt-agent amtinfo".into(),
                    "AccessDenied" => "the account lacks the right for this call; use the admin account (or $$OsAdmin before activation)".into(),
                    "SchemaValidationError" | "InvalidParameter" | "InvalidValues" | "InvalidRepresentation" => "a property or parameter value was rejected; compare the request with the class definition (run with -vvv to see it)".into(),
                    _ => "the firmware refused the request; run with -vvv to see the exchange".into(),
                }
            }
            WsmanError::ReturnValue { method, name, .. } => return_value_help(method, name).into(),
            WsmanError::Http { .. } => "AMT's web server refused the request; check that AMT is enabled and not busy, then retry".into(),
            WsmanError::Unauthorized => "check the AMT password (admin) or, before activation, that the local system account could be read over HECI".into(),
            WsmanError::Malformed(_) | WsmanError::Missing(_) => "the answer did not match what this class returns; capture a trace (-vvv) and report it".into(),
        }
    }
}

fn return_value_help(method: &str, name: &str) -> &'static str {
    match (method, name) {
        ("AddNextCertInChain", "CERT_VERIFY_FAILED") => "check the provisioning certificate with: amt-agent doctor (root hash trusted by AMT, chain order, AMT provisioning OID/OU, DNS suffix)",
        ("AddNextCertInChain", "INVALID_STATE") | ("AdminSetup", "INVALID_STATE") | ("Setup", "INVALID_STATE") | ("UpgradeClientToAdmin", "INVALID_STATE") => "AMT is not in pre-provisioning or the chain is incomplete; check with: amt-agent amtinfo --mode",
        ("AdminSetup", "AUTH_FAILED") | ("UpgradeClientToAdmin", "AUTH_FAILED") => "the signature did not verify: use the private key of the leaf certificate sent first, and SHA-256 (SigningAlgorithm 2) unless the firmware needs SHA-384",
        ("Setup", "METHOD_DISABLED") => "host-based client control mode is disabled in MEBx; enable it or activate in admin control mode",
        (_, "FLASH_WRITE_LIMIT_EXCEEDED") => "the firmware limits flash writes; wait (up to a day) and retry",
        ("CommitChanges", "DATA_MISSING") => "AMT needs a MEBx password before committing: pass --mebxpassword",
        (_, "NOT_PERMITTED") => "the call is not allowed in the current control mode; check it with: amt-agent amtinfo --mode",
        (_, "INVALID_PASSWORD") => "the password does not meet AMT's rules (8-32 characters with upper, lower, digit and symbol)",
        _ => "see the firmware's meaning above; run with -vvv to see the exchange",
    }
}

// ---------------------------------------------------------------------------------------------
// Arguments and instances
// ---------------------------------------------------------------------------------------------

/// A method parameter or instance property value.
#[derive(Clone, PartialEq, Eq)]
pub enum ArgValue {
    Text(String),
    /// Written into the XML (escaped) only by [`Call::render`]; prints as `***`.
    Secret(Secret),
    /// Ready-made XML (e.g. an endpoint reference).
    Raw(String),
    /// An embedded instance of the class at `namespace` (its ResourceURI); its properties may
    /// hold secrets, redacted like any other.
    Instance {
        namespace: String,
        properties: Vec<Arg>,
    },
}

impl fmt::Debug for ArgValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgValue::Text(t) => write!(f, "{t:?}"),
            ArgValue::Secret(_) => f.write_str("***"),
            ArgValue::Raw(x) => write!(f, "raw {x:?}"),
            ArgValue::Instance { properties, .. } => f.debug_list().entries(properties).finish(),
        }
    }
}

/// A named argument; repeat a name for an array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arg {
    pub name: String,
    pub value: ArgValue,
}

impl Arg {
    pub fn text(name: impl Into<String>, value: impl ToString) -> Arg {
        Arg {
            name: name.into(),
            value: ArgValue::Text(value.to_string()),
        }
    }

    pub fn secret(name: impl Into<String>, value: &Secret) -> Arg {
        Arg {
            name: name.into(),
            value: ArgValue::Secret(value.clone()),
        }
    }

    pub fn raw(name: impl Into<String>, xml: impl Into<String>) -> Arg {
        Arg {
            name: name.into(),
            value: ArgValue::Raw(xml.into()),
        }
    }

    /// An embedded instance of `class` (a class name or ResourceURI) with these properties.
    pub fn instance(name: impl Into<String>, class: &str, properties: Vec<Arg>) -> Arg {
        Arg {
            name: name.into(),
            value: ArgValue::Instance {
                namespace: resource_uri(class),
                properties,
            },
        }
    }

    /// An endpoint reference to the instance of `class` whose `selector` is `value`, with the
    /// `Address` go-wsman-messages and wsman-messages write for certificate references
    /// (`default`) or endpoints (`/wsman`).
    pub fn reference(
        name: impl Into<String>,
        address: &str,
        class: &str,
        selector: &str,
        value: &str,
    ) -> Arg {
        Arg::raw(
            name,
            format!(
                "<a:Address>{}</a:Address><a:ReferenceParameters><w:ResourceURI>{}</w:ResourceURI><w:SelectorSet><w:Selector Name=\"{}\">{}</w:Selector></w:SelectorSet></a:ReferenceParameters>",
                escape(address),
                escape(&resource_uri(class)),
                escape(selector),
                escape(value)
            ),
        )
    }

    fn to_param(&self) -> Param {
        match &self.value {
            ArgValue::Text(t) => Param::text(&self.name, t),
            ArgValue::Secret(s) => Param::text(&self.name, s.expose()),
            ArgValue::Raw(x) => Param::raw(&self.name, x.clone()),
            ArgValue::Instance {
                namespace,
                properties,
            } => Param {
                name: self.name.clone(),
                value: envelope::Value::Embedded {
                    namespace: namespace.clone(),
                    properties: properties.iter().map(Arg::to_param).collect(),
                },
            },
        }
    }

    /// `Name=value` as [`Call::describe`] prints it, secrets as `***`.
    fn describe(&self) -> String {
        match &self.value {
            // A certificate blob or the like: its start and length, not a screenful.
            ArgValue::Text(t) if t.chars().count() > 96 => format!(
                "{}={}…({} characters)",
                self.name,
                t.chars().take(24).collect::<String>(),
                t.chars().count()
            ),
            ArgValue::Text(t) => format!("{}={t}", self.name),
            ArgValue::Secret(_) => format!("{}=***", self.name),
            ArgValue::Raw(x) => match reference_target(x) {
                Some(v) => format!("{}=<{v}>", self.name),
                None => format!("{}=<…>", self.name),
            },
            ArgValue::Instance { properties, .. } => format!(
                "{}={{{}}}",
                self.name,
                properties
                    .iter()
                    .map(Arg::describe)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// The selector value of an endpoint reference made by [`Arg::reference`] (for describing it).
fn reference_target(xml: &str) -> Option<&str> {
    let start = xml.find("<w:Selector ")?;
    let rest = &xml[start..];
    let open = rest.find('>')? + 1;
    let close = rest.find("</w:Selector>")?;
    rest.get(open..close)
}

/// One property of an [`Instance`]: text, or a structured value (endpoint reference, embedded
/// instance) kept as its element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PropertyValue {
    Text(String),
    Element(Element),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Property {
    pub name: String,
    pub value: PropertyValue,
}

/// A class instance as AMT returned it: properties in the firmware's order, an array as repeated
/// names. A Put sends it back whole (transport.md §7.1: Put body = the full instance).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Instance {
    /// Class name, the element's local name (e.g. `AMT_GeneralSettings`).
    pub class: String,
    pub properties: Vec<Property>,
}

impl Instance {
    /// Read an instance element (`<g:AMT_GeneralSettings>…`).
    pub fn from_element(el: &Element) -> Instance {
        let properties = el
            .children
            .iter()
            .map(|c| Property {
                name: c.name.clone(),
                value: if c.children.is_empty() {
                    PropertyValue::Text(c.text().to_string())
                } else {
                    PropertyValue::Element(c.clone())
                },
            })
            .collect();
        Instance {
            class: el.name.clone(),
            properties,
        }
    }

    /// Text of the first property with this name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.properties.iter().find_map(|p| match &p.value {
            PropertyValue::Text(t) if p.name == name => Some(t.as_str()),
            _ => None,
        })
    }

    /// Text of every property with this name (an array).
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.properties.iter().filter_map(move |p| match &p.value {
            PropertyValue::Text(t) if p.name == name => Some(t.as_str()),
            _ => None,
        })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.properties.iter().any(|p| p.name == name)
    }

    /// Set a scalar property: replaces the first occurrence in place (dropping any others), or
    /// appends it.
    pub fn set(&mut self, name: &str, value: impl ToString) {
        self.set_all(name, [value.to_string()]);
    }

    /// Set an array property where its first element was (or append).
    pub fn set_all<I: IntoIterator<Item = String>>(&mut self, name: &str, values: I) {
        let at = self.properties.iter().position(|p| p.name == name);
        self.remove(name);
        let new = values.into_iter().map(|v| Property {
            name: name.to_string(),
            value: PropertyValue::Text(v),
        });
        match at {
            Some(i) => {
                let tail = self.properties.split_off(i);
                self.properties.extend(new);
                self.properties.extend(tail);
            }
            None => self.properties.extend(new),
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.properties.retain(|p| p.name != name);
    }

    /// The properties as request arguments (structured values re-serialised, see [`element_xml`]).
    pub fn to_args(&self) -> Vec<Arg> {
        self.properties
            .iter()
            .map(|p| match &p.value {
                PropertyValue::Text(t) => Arg::text(&p.name, t),
                PropertyValue::Element(e) => Arg::raw(&p.name, element_children_xml(e)),
            })
            .collect()
    }

    /// JSON object of the properties (see [`text_to_json`]); repeated names become arrays.
    pub fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for p in &self.properties {
            let v = match &p.value {
                PropertyValue::Text(t) => text_to_json(t),
                PropertyValue::Element(e) => element_to_json(e),
            };
            push_json(&mut map, &p.name, v);
        }
        serde_json::Value::Object(map)
    }

    pub(crate) fn get_parsed<T: std::str::FromStr>(
        &self,
        name: &'static str,
    ) -> Result<Option<T>, WsmanError> {
        match self.get(name) {
            None => Ok(None),
            Some(t) => t
                .parse()
                .map(Some)
                .map_err(|_| bad_value(name, t, "a number")),
        }
    }

    pub(crate) fn get_bool(&self, name: &'static str) -> Result<Option<bool>, WsmanError> {
        match self.get(name) {
            None => Ok(None),
            Some(t) => parse_bool(t)
                .map(Some)
                .ok_or_else(|| bad_value(name, t, "true or false")),
        }
    }

    pub(crate) fn require(&self, name: &'static str) -> Result<&str, WsmanError> {
        self.get(name)
            .ok_or_else(|| WsmanError::Missing(format!("{}.{name}", self.class)))
    }

    /// Replace (or append) when `Some`, remove when `None`.
    pub(crate) fn sync(&mut self, name: &str, value: Option<String>) {
        match value {
            Some(v) => self.set(name, v),
            None => self.remove(name),
        }
    }
}

fn parse_bool(t: &str) -> Option<bool> {
    if t.eq_ignore_ascii_case("true") {
        Some(true)
    } else if t.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

pub(crate) fn bad_value(field: &'static str, value: &str, expected: &'static str) -> WsmanError {
    WsmanError::Malformed(EnvelopeError::BadValue {
        field,
        value: value.to_string(),
        expected,
    })
}

fn push_json(map: &mut serde_json::Map<String, serde_json::Value>, k: &str, v: serde_json::Value) {
    match map.get_mut(k) {
        None => {
            map.insert(k.to_string(), v);
        }
        Some(serde_json::Value::Array(a)) => a.push(v),
        Some(existing) => {
            let first = existing.take();
            *existing = serde_json::Value::Array(vec![first, v]);
        }
    }
}

/// A property's text as JSON, as the XML gives it: `true`/`false` → boolean, a plain decimal
/// integer (no sign other than `-`, no leading zero) that fits 64 bits → number, anything else
/// (MAC addresses, `007`, decimals, base64, empty) → string.
pub fn text_to_json(t: &str) -> serde_json::Value {
    if t == "true" || t == "false" {
        return serde_json::Value::Bool(t == "true");
    }
    let digits = t.strip_prefix('-').unwrap_or(t);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && t != "-0";
    if canonical {
        if let Ok(u) = t.parse::<u64>() {
            return serde_json::Value::from(u);
        }
        if let Ok(i) = t.parse::<i64>() {
            return serde_json::Value::from(i);
        }
    }
    serde_json::Value::String(t.to_string())
}

/// An element as JSON: text for a leaf, an object of its children otherwise (repeated names →
/// arrays); attributes, if any, under `@name`.
pub fn element_to_json(e: &Element) -> serde_json::Value {
    if e.children.is_empty() && e.attributes.is_empty() {
        return text_to_json(e.text());
    }
    let mut map = serde_json::Map::new();
    for a in &e.attributes {
        map.insert(
            format!("@{}", a.name),
            serde_json::Value::String(a.value.clone()),
        );
    }
    if e.children.is_empty() {
        map.insert("#text".into(), text_to_json(e.text()));
    }
    for c in &e.children {
        push_json(&mut map, &c.name, element_to_json(c));
    }
    serde_json::Value::Object(map)
}

fn prefix_for(namespace: Option<&str>) -> &'static str {
    match namespace {
        Some(ns::ADDRESSING) => "a",
        Some(ns::WSMAN) => "w",
        _ => "h",
    }
}

/// An element re-serialised with the request's prefixes: `a` addressing, `w` WS-Management, `h`
/// for everything else (how go-wsman-messages writes endpoint references in a body).
pub fn element_xml(e: &Element) -> String {
    let p = prefix_for(e.namespace.as_deref());
    let mut s = format!("<{p}:{}", e.name);
    for a in &e.attributes {
        let _ = write!(s, " {}=\"{}\"", a.name, escape(&a.value));
    }
    s.push('>');
    s.push_str(&element_children_xml(e));
    let _ = write!(s, "</{p}:{}>", e.name);
    s
}

fn element_children_xml(e: &Element) -> String {
    if e.children.is_empty() {
        return escape(e.text());
    }
    e.children.iter().map(element_xml).collect()
}

// ---------------------------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------------------------

/// What a call does (transport.md §7.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Get,
    Put,
    Create,
    Delete,
    Enumerate,
    Pull { context: String },
    Invoke { method: String },
}

impl Op {
    /// The operation's name as error messages print it (`Get`, `Setup`, …).
    pub fn name(&self) -> &str {
        match self {
            Op::Get => "Get",
            Op::Put => "Put",
            Op::Create => "Create",
            Op::Delete => "Delete",
            Op::Enumerate => "Enumerate",
            Op::Pull { .. } => "Pull",
            Op::Invoke { method } => method,
        }
    }
}

/// What a decoder sees: the call's class and operation, and the parsed answer.
pub struct Exchange<'a> {
    pub class: &'a str,
    pub op: &'a Op,
    pub envelope: &'a Envelope,
}

type Decoder<T> = fn(&Exchange<'_>) -> Result<T, WsmanError>;

/// One WS-MAN request and the decoder for its answer.
#[derive(Clone)]
pub struct Call<T> {
    /// Class name (`AMT_GeneralSettings`); for a full URI, its last segment.
    pub class: String,
    pub resource_uri: String,
    pub op: Op,
    pub selectors: Vec<Selector>,
    /// Method parameters, or the instance's properties for Put/Create.
    pub args: Vec<Arg>,
    decoder: Decoder<T>,
}

impl<T> fmt::Debug for Call<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("class", &self.class)
            .field("op", &self.op)
            .field("selectors", &self.selectors)
            .field("args", &self.args)
            .finish()
    }
}

impl<T> Call<T> {
    /// A call on `class` (a class name such as `AMT_GeneralSettings`, or a full ResourceURI).
    pub fn new(class: &str, op: Op, decoder: Decoder<T>) -> Call<T> {
        let uri = resource_uri(class);
        Call {
            class: uri.rsplit('/').next().unwrap_or(class).to_string(),
            resource_uri: uri,
            op,
            selectors: Vec::new(),
            args: Vec::new(),
            decoder,
        }
    }

    pub fn selector(mut self, name: impl Into<String>, value: impl Into<String>) -> Call<T> {
        self.selectors.push(Selector::new(name, value));
        self
    }

    pub fn selectors(mut self, s: &[Selector]) -> Call<T> {
        self.selectors.extend_from_slice(s);
        self
    }

    pub fn arg(mut self, a: Arg) -> Call<T> {
        self.args.push(a);
        self
    }

    pub fn args(mut self, a: Vec<Arg>) -> Call<T> {
        self.args.extend(a);
        self
    }

    /// `Get`, `Put`, …, or the method name.
    pub fn name(&self) -> &str {
        self.op.name()
    }

    /// The `a:Action` URI.
    pub fn action(&self) -> String {
        match &self.op {
            Op::Get => envelope::action::GET.into(),
            Op::Put => envelope::action::PUT.into(),
            Op::Create => envelope::action::CREATE.into(),
            Op::Delete => envelope::action::DELETE.into(),
            Op::Enumerate => envelope::action::ENUMERATE.into(),
            Op::Pull { .. } => envelope::action::PULL.into(),
            Op::Invoke { method } => format!("{}/{method}", self.resource_uri),
        }
    }

    /// The same request with its answer checked but its value dropped: a fault, a non-zero
    /// `ReturnValue` (methods) or an answer without the instance (Get/Put/Create) is still an
    /// error. A plan of writes (`configure`) holds its calls this way, whatever they return.
    pub fn checked(self) -> Call<()> {
        Call {
            class: self.class,
            resource_uri: self.resource_uri,
            op: self.op,
            selectors: self.selectors,
            args: self.args,
            decoder: checked_unit,
        }
    }

    /// One line naming the call and what it sends, secrets as `***`:
    /// `AMT_AuthorizationService.SetAdminAclEntryEx(Username=admin, DigestPassword=***)`.
    /// Selectors come first, after a `;` when there are arguments too.
    pub fn describe(&self) -> String {
        let sel: Vec<String> = self
            .selectors
            .iter()
            .map(|s| format!("{}={}", s.name, s.value))
            .collect();
        let args: Vec<String> = self.args.iter().map(Arg::describe).collect();
        let inner = match (sel.is_empty(), args.is_empty()) {
            (true, _) => args.join(", "),
            (false, true) => sel.join(", "),
            (false, false) => format!("{}; {}", sel.join(", "), args.join(", ")),
        };
        format!("{}.{}({inner})", self.class, self.op.name())
    }

    /// The request envelope with this MessageID, byte-for-byte as go-wsman-messages writes it.
    pub fn render(&self, message_id: &str) -> String {
        let uri = &self.resource_uri;
        let params: Vec<Param> = self.args.iter().map(Arg::to_param).collect();
        match &self.op {
            Op::Get => envelope::get_request(uri, message_id, &self.selectors),
            Op::Delete => envelope::delete_request(uri, message_id, &self.selectors),
            Op::Enumerate => envelope::enumerate_request(uri, message_id),
            Op::Pull { context } => envelope::pull_request(uri, message_id, context),
            Op::Put => envelope::put_request(
                uri,
                message_id,
                &self.selectors,
                &envelope::instance_xml(&self.class, uri, &params),
            ),
            Op::Create => envelope::create_request(
                uri,
                message_id,
                &envelope::instance_xml(&self.class, uri, &params),
            ),
            Op::Invoke { method } => {
                envelope::invoke_request(uri, method, message_id, &self.selectors, &params)
            }
        }
    }

    /// Decode AMT's HTTP answer: 200 → the typed value (or a fault, should one come with 200),
    /// 400 → the SOAP fault, 401 → [`WsmanError::Unauthorized`], anything else → `Http`.
    pub fn decode(&self, status: u16, body: &[u8]) -> Result<T, WsmanError> {
        match status {
            200 => self.decode_envelope(&Envelope::parse(body)?),
            400 => match Envelope::parse(body).ok().and_then(|e| e.fault()) {
                Some(f) => Err(WsmanError::Fault(Box::new(f))),
                None => Err(WsmanError::Http { status }),
            },
            401 => Err(WsmanError::Unauthorized),
            _ => Err(WsmanError::Http { status }),
        }
    }

    /// [`Call::decode`] on a parsed HTTP response.
    pub fn decode_response(&self, r: &super::http::Response) -> Result<T, WsmanError> {
        self.decode(r.status, &r.body)
    }

    /// Decode an already parsed envelope.
    pub fn decode_envelope(&self, env: &Envelope) -> Result<T, WsmanError> {
        if let Some(f) = env.fault() {
            return Err(WsmanError::Fault(Box::new(f)));
        }
        (self.decoder)(&Exchange {
            class: &self.class,
            op: &self.op,
            envelope: env,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Decoder building blocks
// ---------------------------------------------------------------------------------------------

/// The instance in a Get/Put/Create response body (element named after the class).
pub fn body_instance(ex: &Exchange<'_>) -> Result<Instance, WsmanError> {
    ex.envelope
        .body()
        .children
        .iter()
        .find(|e| e.name == ex.class)
        .map(Instance::from_element)
        .ok_or_else(|| WsmanError::Missing(ex.class.to_string()))
}

/// `<Method>_OUTPUT`, with a non-zero `ReturnValue` turned into [`WsmanError::ReturnValue`]. With
/// `require_return_value` false a missing ReturnValue is accepted (see `GetUuid`).
pub fn method_output(
    ex: &Exchange<'_>,
    require_return_value: bool,
) -> Result<Instance, WsmanError> {
    let method = ex.op.name();
    let wanted = format!("{method}_OUTPUT");
    let out = ex
        .envelope
        .body()
        .children
        .iter()
        .find(|e| e.name == wanted)
        .ok_or_else(|| WsmanError::Missing(wanted.clone()))?;
    let out = Instance::from_element(out);
    match out.get("ReturnValue") {
        None if require_return_value => {
            return Err(WsmanError::Missing(format!("{wanted}.ReturnValue")))
        }
        None => {}
        Some(t) => {
            let value: u32 = t
                .parse()
                .map_err(|_| bad_value("ReturnValue", t, "a number"))?;
            if value != 0 {
                let (name, meaning) = returns::describe(ex.class, method, value);
                return Err(WsmanError::ReturnValue {
                    class: ex.class.to_string(),
                    method: method.to_string(),
                    value,
                    name,
                    meaning,
                });
            }
        }
    }
    Ok(out)
}

/// [`Call::checked`]'s decoder: the operation's own success shape, its value dropped.
fn checked_unit(ex: &Exchange<'_>) -> Result<(), WsmanError> {
    match ex.op {
        Op::Invoke { .. } => method_output(ex, true).map(|_| ()),
        Op::Get | Op::Put => body_instance(ex).map(|_| ()),
        // A CreateResponse carries the new instance's reference, not the instance.
        Op::Create | Op::Delete | Op::Enumerate | Op::Pull { .. } => Ok(()),
    }
}

/// A method whose only output is `ReturnValue` 0.
pub fn unit_output(ex: &Exchange<'_>) -> Result<(), WsmanError> {
    method_output(ex, true).map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// Generic calls (diagnostics)
// ---------------------------------------------------------------------------------------------

/// A page of a Pull.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullPage {
    pub items: Vec<Instance>,
    pub end_of_sequence: bool,
    /// Pull again with this when not at the end.
    pub context: Option<String>,
}

impl PullPage {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Array(self.items.iter().map(Instance::to_json).collect())
    }
}

/// A method's outputs, ReturnValue included, without judging it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MethodOutput {
    pub return_value: Option<u32>,
    pub output: Instance,
}

impl MethodOutput {
    /// [`WsmanError::ReturnValue`] if the method reported a failure.
    pub fn check(&self, class: &str, method: &str) -> Result<(), WsmanError> {
        match self.return_value {
            Some(v) if v != 0 => {
                let (name, meaning) = returns::describe(class, method, v);
                Err(WsmanError::ReturnValue {
                    class: class.to_string(),
                    method: method.to_string(),
                    value: v,
                    name,
                    meaning,
                })
            }
            _ => Ok(()),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        self.output.to_json()
    }
}

/// `EnumerationContext` of an EnumerateResponse.
pub fn enumeration_context(ex: &Exchange<'_>) -> Result<String, WsmanError> {
    ex.envelope
        .enumeration_context()
        .map(str::to_string)
        .ok_or_else(|| WsmanError::Missing("EnumerationContext".into()))
}

/// Items of a PullResponse.
pub fn pull_page(ex: &Exchange<'_>) -> Result<PullPage, WsmanError> {
    let p = ex
        .envelope
        .pull_items()
        .ok_or_else(|| WsmanError::Missing("PullResponse".into()))?;
    Ok(PullPage {
        items: p.items.iter().map(|e| Instance::from_element(e)).collect(),
        end_of_sequence: p.end_of_sequence,
        context: p.context.map(str::to_string),
    })
}

/// Transfer Get of any class.
pub fn get(class: &str, selectors: &[Selector]) -> Call<Instance> {
    Call::new(class, Op::Get, body_instance).selectors(selectors)
}

/// Enumerate any class → the context for [`pull`].
pub fn enumerate(class: &str) -> Call<String> {
    Call::new(class, Op::Enumerate, enumeration_context)
}

/// Pull with a context from [`enumerate`].
pub fn pull(class: &str, context: &str) -> Call<PullPage> {
    Call::new(
        class,
        Op::Pull {
            context: context.to_string(),
        },
        pull_page,
    )
}

/// Transfer Put of a whole instance; AMT answers with the instance as stored.
pub fn put(class: &str, selectors: &[Selector], instance: &Instance) -> Call<Instance> {
    Call::new(class, Op::Put, body_instance)
        .selectors(selectors)
        .args(instance.to_args())
}

/// Transfer Delete of the instance named by `selectors`.
pub fn delete(class: &str, selectors: &[Selector]) -> Call<()> {
    Call::new(class, Op::Delete, |_| Ok(())).selectors(selectors)
}

/// Invoke any method; the answer is returned as is (see [`MethodOutput::check`]).
pub fn invoke(
    class: &str,
    method: &str,
    selectors: &[Selector],
    args: Vec<Arg>,
) -> Call<MethodOutput> {
    Call::new(
        class,
        Op::Invoke {
            method: method.to_string(),
        },
        |ex| {
            let wanted = format!("{}_OUTPUT", ex.op.name());
            let out = ex
                .envelope
                .body()
                .children
                .iter()
                .find(|e| e.name == wanted)
                .ok_or(WsmanError::Missing(wanted))?;
            let output = Instance::from_element(out);
            let return_value = match output.get("ReturnValue") {
                None => None,
                Some(t) => Some(
                    t.parse()
                        .map_err(|_| bad_value("ReturnValue", t, "a number"))?,
                ),
            };
            Ok(MethodOutput {
                return_value,
                output,
            })
        },
    )
    .selectors(selectors)
    .args(args)
}

/// The body of any response as JSON: the instance, the `_OUTPUT`, the Pull items (an array), the
/// enumeration context (a string), or null for an empty body. A fault gives an error.
pub fn body_json(env: &Envelope) -> Result<serde_json::Value, WsmanError> {
    if let Some(f) = env.fault() {
        return Err(WsmanError::Fault(Box::new(f)));
    }
    if let Some(p) = env.pull_items() {
        return Ok(serde_json::Value::Array(
            p.items
                .iter()
                .map(|e| Instance::from_element(e).to_json())
                .collect(),
        ));
    }
    if let Some(c) = env.enumeration_context() {
        return Ok(serde_json::Value::String(c.to_string()));
    }
    Ok(match env.body_element() {
        Some(e) => Instance::from_element(e).to_json(),
        None => serde_json::Value::Null,
    })
}

// ---------------------------------------------------------------------------------------------
// Password digests and nonces (provisioning.md §3.3, rps-protocol.md §3)
// ---------------------------------------------------------------------------------------------

/// `NetworkAdminPassword` of Setup/AdminSetup: lower-case hex MD5 of `admin:realm:password`.
/// An HA1 is as good as the password for Digest, so it stays a [`Secret`].
pub fn network_admin_password(realm: &str, password: &Secret) -> Secret {
    Secret::new(super::digest::ha1("admin", realm, password))
}

/// `SetAdminAclEntryEx.DigestPassword`: base64 of the raw 16-byte MD5 of `admin:realm:password`.
pub fn digest_password_b64(realm: &str, password: &Secret) -> Secret {
    Secret::new(super::digest::ha1_base64("admin", realm, password))
}

/// The raw 16-byte MD5 of `admin:realm:password`.
pub fn digest_password_raw(realm: &str, password: &Secret) -> [u8; 16] {
    Md5::digest(format!("admin:{realm}:{}", password.expose()).as_bytes()).into()
}

/// A fresh `McNonce`: 20 random bytes (provisioning.md §3.1 step 5).
pub fn mc_nonce(rng: &mut impl RngCore) -> [u8; 20] {
    let mut n = [0u8; 20];
    rng.fill_bytes(&mut n);
    n
}

/// What AdminSetup/UpgradeClientToAdmin sign: firmware `ConfigurationNonce` ‖ `McNonce`, raw
/// bytes, firmware nonce first (provisioning.md §3.1 step 6).
pub fn signing_input(config_nonce: &[u8], mc_nonce: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(config_nonce.len() + mc_nonce.len());
    v.extend_from_slice(config_nonce);
    v.extend_from_slice(mc_nonce);
    v
}

/// Standard base64, as every binary WS-MAN field uses.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub(crate) fn unb64(
    field: &'static str,
    text: &str,
    expected: &'static str,
) -> Result<Vec<u8>, WsmanError> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| bad_value(field, text, expected))
}
