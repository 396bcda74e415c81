//! `diagnostics wsman get|enumerate|put|invoke|delete CLASS …`: raw WS-MAN access for support
//! staff, over the same route and credentials the agent uses, printing XML or JSON.

use std::sync::Arc;

use clap::{Args, Subcommand};

use super::session::{self, AmtConnArgs};
use crate::error::{AgentError, ExitCode};
use crate::heci::MeiDevice;
use crate::wsman::calls::{self, Arg, Call};
use crate::wsman::envelope::{Envelope, Selector};
use crate::wsman::http::Response;

#[derive(Args, Debug)]
pub struct DiagnosticsArgs {
    #[command(subcommand)]
    pub what: DiagnosticsWhat,
}

#[derive(Subcommand, Debug)]
pub enum DiagnosticsWhat {
    /// Talk WS-MAN to the local AMT.
    Wsman(WsmanArgs),
}

#[derive(Args, Debug)]
pub struct WsmanArgs {
    #[command(subcommand)]
    pub op: WsmanOp,
    #[command(flatten)]
    pub conn: AmtConnArgs,
}

#[derive(Subcommand, Debug)]
pub enum WsmanOp {
    /// Get an instance: `get AMT_GeneralSettings`.
    Get {
        class: String,
        /// NAME=VALUE selector (repeatable).
        #[arg(long = "selector", short = 's')]
        selectors: Vec<String>,
    },
    /// Enumerate and pull every instance of a class.
    Enumerate { class: String },
    /// Read an instance, change properties, put it back: `put AMT_GeneralSettings --set HostName=pc1`.
    Put {
        class: String,
        #[arg(long = "selector", short = 's')]
        selectors: Vec<String>,
        /// NAME=VALUE to change (repeatable).
        #[arg(long = "set", required = true)]
        sets: Vec<String>,
    },
    /// Invoke a method: `invoke AMT_TimeSynchronizationService GetLowAccuracyTimeSynch`.
    Invoke {
        class: String,
        method: String,
        #[arg(long = "selector", short = 's')]
        selectors: Vec<String>,
        /// NAME=VALUE input parameter (repeatable; repeat a name for an array).
        #[arg(long = "arg", short = 'a')]
        args: Vec<String>,
    },
    /// Delete an instance (selectors required).
    Delete {
        class: String,
        #[arg(long = "selector", short = 's', required = true)]
        selectors: Vec<String>,
    },
}

fn pair(s: &str, what: &str) -> Result<(String, String), AgentError> {
    s.split_once('=')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .ok_or_else(|| {
            AgentError::new(ExitCode::IncorrectCommandLineParameters, format!("{what} '{s}' is not NAME=VALUE"))
                .help(format!("write it as NAME=VALUE, e.g. --{what} InstanceID=\"Intel(r) AMT Ethernet Port Settings 0\""))
        })
}

fn selectors(v: &[String]) -> Result<Vec<Selector>, AgentError> {
    v.iter()
        .map(|s| pair(s, "selector").map(|(n, x)| Selector::new(n, x)))
        .collect()
}

struct Out {
    json: bool,
}

impl Out {
    fn xml(&self, r: &Response) {
        if !self.json {
            println!("{}", String::from_utf8_lossy(&r.body));
        }
    }
    fn value(&self, v: serde_json::Value) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
    }
}

pub fn run(
    device: Arc<dyn MeiDevice>,
    args: &DiagnosticsArgs,
    json: bool,
) -> Result<ExitCode, AgentError> {
    let DiagnosticsWhat::Wsman(w) = &args.what;
    let mut s = session::connect(device, &w.conn)?;
    tracing::info!(route = %session::route_name(&s.route), mode = s.control_mode.text(), "connected to AMT");
    let out = Out { json };
    let mut id = 0u32;
    let exchange =
        |s: &mut session::AmtSession, call_env: String| -> Result<Response, AgentError> {
            let r = s.post(&call_env)?;
            Ok(r)
        };
    let mut next_id = || {
        id += 1;
        id.to_string()
    };
    match &w.op {
        WsmanOp::Get {
            class,
            selectors: sel,
        } => {
            let call = calls::get(class, &selectors(sel)?);
            let r = exchange(&mut s, call.render(&next_id()))?;
            let inst = decode(&call, &r)?;
            out.xml(&r);
            out.value(inst.to_json());
        }
        WsmanOp::Enumerate { class } => {
            let e = calls::enumerate(class);
            let r = exchange(&mut s, e.render(&next_id()))?;
            let mut ctx = decode(&e, &r)?;
            let mut items = Vec::new();
            // Bounded: AMT ends a pull sequence long before this.
            for _ in 0..1000 {
                let p = calls::pull(class, &ctx);
                let r = exchange(&mut s, p.render(&next_id()))?;
                let page = decode(&p, &r)?;
                out.xml(&r);
                items.extend(page.items.iter().map(|i| i.to_json()));
                match (page.end_of_sequence, page.context) {
                    (false, Some(c)) => ctx = c,
                    _ => break,
                }
            }
            out.value(serde_json::Value::Array(items));
        }
        WsmanOp::Put {
            class,
            selectors: sel,
            sets,
        } => {
            let sel = selectors(sel)?;
            let g = calls::get(class, &sel);
            let r = exchange(&mut s, g.render(&next_id()))?;
            let mut inst = decode(&g, &r)?;
            for kv in sets {
                let (k, v) = pair(kv, "set")?;
                inst.set(&k, v);
            }
            let p = calls::put(class, &sel, &inst);
            let r = exchange(&mut s, p.render(&next_id()))?;
            let back = decode(&p, &r)?;
            out.xml(&r);
            out.value(back.to_json());
        }
        WsmanOp::Invoke {
            class,
            method,
            selectors: sel,
            args: a,
        } => {
            let mut inputs = Vec::new();
            for kv in a {
                let (k, v) = pair(kv, "arg")?;
                inputs.push(Arg::text(k, v));
            }
            let c = calls::invoke(class, method, &selectors(sel)?, inputs);
            let r = exchange(&mut s, c.render(&next_id()))?;
            let o = decode(&c, &r)?;
            out.xml(&r);
            out.value(o.to_json());
            // A non-zero ReturnValue is the firmware's answer: print it, then fail with its name.
            o.check(class, method)?;
        }
        WsmanOp::Delete {
            class,
            selectors: sel,
        } => {
            let d = calls::delete(class, &selectors(sel)?);
            let r = exchange(&mut s, d.render(&next_id()))?;
            decode(&d, &r)?;
            out.xml(&r);
            out.value(serde_json::json!({"deleted": true}));
        }
    }
    Ok(ExitCode::Success)
}

fn decode<T>(call: &Call<T>, r: &Response) -> Result<T, AgentError> {
    match call.decode_response(r) {
        Ok(v) => Ok(v),
        Err(e) => {
            if let Ok(env) = Envelope::parse(&r.body) {
                tracing::debug!(fault = ?env.fault(), "WS-MAN error answer");
            }
            Err(e.into())
        }
    }
}
