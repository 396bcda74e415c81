//! Faults the simulator can inject, from `--fault KEY=VALUE` (repeatable):
//!
//! | spec | effect |
//! |---|---|
//! | `busy=CLIENT` / `busy=CLIENT*N` | connects to CLIENT answer EBUSY (always, or the first N) |
//! | `reset-after=N` | the ME resets after N host messages: open handles get ENODEV, connects get ENODEV for 200 ms |
//! | `latency=COMMAND:MS` / `latency=*:MS` | AMTHI replies to COMMAND (e.g. GET_UUID) come MS milliseconds late |
//! | `hang=COMMAND` | COMMAND is never answered |
//! | `truncate=COMMAND` | the reply loses its last bytes |
//! | `oversize=COMMAND` | the reply is larger than the client's MTU |
//! | `status=COMMAND:N` | the reply carries status N and no body |
//! | `wsman-latency=MS` | every WS-MAN answer comes MS milliseconds late |
//! | `http500=CLASS` | requests for CLASS (or `*`) get HTTP 500 |
//! | `drop-channel=N` | the Nth HTTP request gets no answer: its channel/connection is closed |
//! | `drop-after=METHOD` | METHOD (e.g. `Setup`, `AdminSetup`, `CommitChanges`) takes effect, then the connection drops mid-answer |
//! | `drop-after-commit` | the same for CommitChanges (user-pains.md, failure mode 1) |
//! | `random=SEED:PERCENT` | each AMTHI reply, with PERCENT% probability, gets one of the faults above, chosen by a seeded generator |
//! | `upid-mismatch` | the UPID client reports a CSME id that is not this CSME's: AMT's TLS chain no longer matches it |
//!
//! COMMAND is the firmware's name (`GET_CODE_VERSIONS`) or `*`. The UPID client's replies take
//! `latency`, `hang`, `truncate` and `status` by their own names only (`UPID_PLATFORM_ID_GET`,
//! `UPID_PLATFORM_ID_FEATURE_STATE_SET`); `*` and `random` stay with AMTHI, so adding the UPID
//! client changed no seeded run. `truncate=UPID_PLATFORM_ID_GET` answers SUCCESS with the header
//! and status only: a platform whose UPID is not provisioned.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    Busy { client: String, count: Option<u32> },
    ResetAfter { messages: u64 },
    Latency { command: String, delay: Duration },
    Hang { command: String },
    Truncate { command: String },
    Oversize { command: String },
    Status { command: String, status: u32 },
    Random { seed: u64, percent: u32 },
    WsmanLatency { delay: Duration },
    Http500 { class: String },
    DropChannel { nth: u64 },
    DropAfter { method: String },
    UpidMismatch,
}

impl Fault {
    pub fn parse(spec: &str) -> Result<Fault, String> {
        if spec == "drop-after-commit" {
            return Ok(Fault::DropAfter {
                method: "CommitChanges".into(),
            });
        }
        if spec == "upid-mismatch" {
            return Ok(Fault::UpidMismatch);
        }
        let (key, value) = spec
            .split_once('=')
            .ok_or_else(|| format!("fault '{spec}' needs KEY=VALUE (see amt-sim serve --help)"))?;
        let pair = |v: &str| -> Result<(String, String), String> {
            v.split_once(':')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| format!("fault '{spec}' needs A:B after '='"))
        };
        let num = |s: &str| -> Result<u64, String> {
            s.trim_end_matches("ms")
                .parse::<u64>()
                .map_err(|_| format!("fault '{spec}': '{s}' is not a number"))
        };
        Ok(match key {
            "busy" => match value.split_once('*') {
                Some((c, n)) => Fault::Busy {
                    client: c.to_ascii_lowercase(),
                    count: Some(num(n)? as u32),
                },
                None => Fault::Busy {
                    client: value.to_ascii_lowercase(),
                    count: None,
                },
            },
            "reset-after" => Fault::ResetAfter {
                messages: num(value)?,
            },
            "latency" => {
                let (c, ms) = pair(value)?;
                Fault::Latency {
                    command: c,
                    delay: Duration::from_millis(num(&ms)?),
                }
            }
            "hang" => Fault::Hang {
                command: value.to_string(),
            },
            "truncate" => Fault::Truncate {
                command: value.to_string(),
            },
            "oversize" => Fault::Oversize {
                command: value.to_string(),
            },
            "status" => {
                let (c, n) = pair(value)?;
                Fault::Status {
                    command: c,
                    status: num(&n)? as u32,
                }
            }
            "random" => {
                let (s, p) = pair(value)?;
                Fault::Random {
                    seed: num(&s)?,
                    percent: num(p.trim_end_matches('%'))?.min(100) as u32,
                }
            }
            "wsman-latency" => Fault::WsmanLatency {
                delay: Duration::from_millis(num(value)?),
            },
            "http500" => Fault::Http500 {
                class: value.to_string(),
            },
            "drop-channel" => Fault::DropChannel { nth: num(value)? },
            "drop-after" => Fault::DropAfter {
                method: value.to_string(),
            },
            other => return Err(format!("unknown fault '{other}' (busy, reset-after, latency, hang, truncate, oversize, status, random, wsman-latency, http500, drop-channel, drop-after, drop-after-commit, upid-mismatch)")),
        })
    }
}

/// What happens to one AMTHI reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ReplyFault {
    pub delay: Duration,
    pub hang: bool,
    pub truncate: bool,
    pub oversize: bool,
    pub status: Option<u32>,
}

pub struct FaultPlan {
    faults: Vec<Fault>,
    busy_used: Vec<u32>,
    rng: Option<(StdRng, u32)>,
}

fn matches(pattern: &str, command: &str) -> bool {
    pattern == "*" || pattern.eq_ignore_ascii_case(command)
}

impl FaultPlan {
    pub fn new(faults: Vec<Fault>) -> FaultPlan {
        let rng = faults.iter().find_map(|f| match f {
            Fault::Random { seed, percent } => Some((StdRng::seed_from_u64(*seed), *percent)),
            _ => None,
        });
        FaultPlan {
            busy_used: vec![0; faults.len()],
            faults,
            rng,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }

    /// Whether this connect to `client` must answer EBUSY.
    pub fn connect_busy(&mut self, client: &str) -> bool {
        for (i, f) in self.faults.iter().enumerate() {
            if let Fault::Busy { client: c, count } = f {
                if c == client || c == "*" {
                    match count {
                        None => return true,
                        Some(n) if self.busy_used[i] < *n => {
                            self.busy_used[i] += 1;
                            return true;
                        }
                        _ => {}
                    }
                }
            }
        }
        false
    }

    pub fn reset_after(&self) -> Option<u64> {
        self.faults.iter().find_map(|f| match f {
            Fault::ResetAfter { messages } => Some(*messages),
            _ => None,
        })
    }

    /// Extra delay on every WS-MAN answer.
    pub fn wsman_latency(&self) -> Duration {
        self.faults
            .iter()
            .find_map(|f| match f {
                Fault::WsmanLatency { delay } => Some(*delay),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// Whether requests for `class` get HTTP 500.
    pub fn http500(&self, class: &str) -> bool {
        self.faults
            .iter()
            .any(|f| matches!(f, Fault::Http500 { class: c } if matches(c, class)))
    }

    /// Whether the `n`th HTTP request (1-based) is dropped unanswered.
    pub fn drop_request(&self, n: u64) -> bool {
        self.faults
            .iter()
            .any(|f| matches!(f, Fault::DropChannel { nth } if *nth == n))
    }

    /// Whether the answer to `method` is cut off after the method took effect.
    pub fn drop_after(&self, method: &str) -> bool {
        self.faults
            .iter()
            .any(|f| matches!(f, Fault::DropAfter { method: m } if m == method))
    }

    /// Whether the UPID client reports another CSME's id.
    pub fn upid_mismatch(&self) -> bool {
        self.faults.iter().any(|f| matches!(f, Fault::UpidMismatch))
    }

    /// The faults for a reply of a client other than AMTHI: only faults naming `command` exactly
    /// (no `*`, no `random`).
    pub fn for_named_reply(&self, command: &str) -> ReplyFault {
        let mut r = ReplyFault::default();
        let named = |c: &str| c.eq_ignore_ascii_case(command);
        for f in &self.faults {
            match f {
                Fault::Latency { command: c, delay } if named(c) => r.delay = *delay,
                Fault::Hang { command: c } if named(c) => r.hang = true,
                Fault::Truncate { command: c } if named(c) => r.truncate = true,
                Fault::Oversize { command: c } if named(c) => r.oversize = true,
                Fault::Status { command: c, status } if named(c) => r.status = Some(*status),
                _ => {}
            }
        }
        r
    }

    /// The faults for a reply to `command`.
    pub fn for_reply(&mut self, command: &str) -> ReplyFault {
        let mut r = ReplyFault::default();
        for f in &self.faults {
            match f {
                Fault::Latency { command: c, delay } if matches(c, command) => r.delay = *delay,
                Fault::Hang { command: c } if matches(c, command) => r.hang = true,
                Fault::Truncate { command: c } if matches(c, command) => r.truncate = true,
                Fault::Oversize { command: c } if matches(c, command) => r.oversize = true,
                Fault::Status { command: c, status } if matches(c, command) => {
                    r.status = Some(*status)
                }
                _ => {}
            }
        }
        if let Some((rng, percent)) = &mut self.rng {
            if rng.gen_range(0..100) < *percent {
                match rng.gen_range(0..4) {
                    0 => r.delay += Duration::from_millis(rng.gen_range(10..200)),
                    1 => r.truncate = true,
                    2 => r.status = Some(2),
                    _ => r.oversize = true,
                }
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(
            Fault::parse("busy=AMTHI*3").unwrap(),
            Fault::Busy {
                client: "amthi".into(),
                count: Some(3)
            }
        );
        assert_eq!(
            Fault::parse("latency=GET_UUID:250ms").unwrap(),
            Fault::Latency {
                command: "GET_UUID".into(),
                delay: Duration::from_millis(250)
            }
        );
        assert_eq!(
            Fault::parse("status=GET_CONTROL_MODE:2").unwrap(),
            Fault::Status {
                command: "GET_CONTROL_MODE".into(),
                status: 2
            }
        );
        assert_eq!(Fault::parse("upid-mismatch").unwrap(), Fault::UpidMismatch);
        assert!(Fault::parse("nonsense").is_err());
        assert!(Fault::parse("explode=1").is_err());
    }

    #[test]
    fn upid_replies_take_only_faults_that_name_them() {
        let p = FaultPlan::new(vec![
            Fault::parse("latency=*:50").unwrap(),
            Fault::parse("status=*:3").unwrap(),
            Fault::parse("truncate=UPID_PLATFORM_ID_GET").unwrap(),
        ]);
        let r = p.for_named_reply("UPID_PLATFORM_ID_GET");
        assert!(r.truncate);
        assert_eq!((r.delay, r.status), (Duration::ZERO, None));
        assert_eq!(
            p.for_named_reply("UPID_PLATFORM_ID_FEATURE_STATE_SET"),
            ReplyFault::default()
        );
        assert!(!p.upid_mismatch());
        assert!(FaultPlan::new(vec![Fault::UpidMismatch]).upid_mismatch());
    }

    #[test]
    fn counted_busy_runs_out() {
        let mut p = FaultPlan::new(vec![Fault::parse("busy=amthi*2").unwrap()]);
        assert!(p.connect_busy("amthi"));
        assert!(p.connect_busy("amthi"));
        assert!(!p.connect_busy("amthi"));
        assert!(!p.connect_busy("lme"));
    }

    #[test]
    fn random_faults_are_reproducible_from_the_seed() {
        let run = || {
            let mut p = FaultPlan::new(vec![Fault::parse("random=7:50").unwrap()]);
            (0..50).map(|_| p.for_reply("GET_UUID")).collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        assert!(a.iter().any(|f| *f != ReplyFault::default()));
        assert!(a.iter().any(|f| *f == ReplyFault::default()));
    }
}
