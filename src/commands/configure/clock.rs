//! `configure sync-clock`: AMT's clock from this host's. `GetLowAccuracyTimeSynch` reads AMT's
//! time (Ta0, a read that changes nothing), `SetHighAccuracyTimeSynch(Ta0, Tm1, Tm2)` sets it
//! with this host's Unix time in Tm1 and Tm2, as rpc-go does (transport.md §7.3). Clocks within
//! [`IN_SYNC_SECS`] of each other are in sync: nothing is written.

use serde_json::json;

use super::{Configure, Needs, Plan, Step, Target};
use crate::amthi::ControlMode;
use crate::error::{AgentError, ExitCode};
use crate::wsman::classes::time_sync;

/// Both clocks count whole seconds: one second apart is as close as they can be read.
pub const IN_SYNC_SECS: i64 = 1;

#[derive(Default)]
pub struct SyncClock;

/// AMT's clock and the host's, read together.
#[derive(Clone, Copy, Debug)]
pub struct Clocks {
    pub amt: u32,
    pub host: u32,
}

impl Clocks {
    pub fn offset(&self) -> i64 {
        i64::from(self.amt) - i64::from(self.host)
    }
}

fn host_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs().min(u64::from(u32::MAX)) as u32)
        .unwrap_or(0)
}

fn describe(offset: i64) -> String {
    match offset {
        0 => "in sync".into(),
        o if o > 0 => format!("{o} s ahead"),
        o => format!("{} s behind", -o),
    }
}

impl Configure for SyncClock {
    type State = Clocks;

    fn name(&self) -> &'static str {
        "sync-clock"
    }

    fn needs(&self) -> Needs {
        Needs::Activation
    }

    fn failure(&self) -> ExitCode {
        ExitCode::SyncClockFailed
    }

    fn read(&mut self, t: &mut Target) -> Result<Clocks, AgentError> {
        let amt = t.read(time_sync::get_low_accuracy_time_synch())?;
        Ok(Clocks {
            amt,
            host: host_now(),
        })
    }

    fn plan(&self, _mode: ControlMode, c: &Clocks) -> Result<Plan, AgentError> {
        let mut plan = Plan::default();
        if c.offset().abs() <= IN_SYNC_SECS {
            plan.kept.push(super::Kept::new("AMT clock", describe(0)));
        } else {
            plan.changes.push(super::Change::new(
                "AMT clock",
                describe(c.offset()),
                "in sync",
                vec![Step::Wsman(
                    time_sync::set_high_accuracy_time_synch(c.amt, c.host, c.host).checked(),
                )],
            ));
        }
        Ok(plan)
    }

    fn report(&self, c: &Clocks) -> (String, serde_json::Value) {
        (
            format!(
                "AMT clock {} (Unix time {})",
                describe(if c.offset().abs() <= IN_SYNC_SECS {
                    0
                } else {
                    c.offset()
                }),
                c.amt
            ),
            json!({"amtTime": c.amt, "hostTime": c.host, "offsetSeconds": c.offset()}),
        )
    }
}
