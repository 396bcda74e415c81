//! `AMT_TimeSynchronizationService`: read AMT's clock, then set it (transport.md §7.3 "Time sync").

use crate::wsman::calls::{bad_value, method_output, unit_output, Arg, Call, Op, WsmanError};

pub const CLASS: &str = "AMT_TimeSynchronizationService";

/// `GetLowAccuracyTimeSynch` → `Ta0`, AMT's clock in Unix seconds.
pub fn get_low_accuracy_time_synch() -> Call<u32> {
    Call::new(
        CLASS,
        Op::Invoke {
            method: "GetLowAccuracyTimeSynch".into(),
        },
        |ex| {
            let out = method_output(ex, true)?;
            let t = out
                .get("Ta0")
                .ok_or_else(|| WsmanError::Missing("GetLowAccuracyTimeSynch_OUTPUT.Ta0".into()))?;
            t.parse().map_err(|_| bad_value("Ta0", t, "a number"))
        },
    )
}

/// `SetHighAccuracyTimeSynch(Ta0, Tm1, Tm2)`: `ta0` as read, `tm1`/`tm2` the host's Unix time
/// before and after (rpc-go and RPS send the same value for both).
pub fn set_high_accuracy_time_synch(ta0: u32, tm1: u32, tm2: u32) -> Call<()> {
    Call::new(
        CLASS,
        Op::Invoke {
            method: "SetHighAccuracyTimeSynch".into(),
        },
        unit_output,
    )
    .arg(Arg::text("Ta0", ta0))
    .arg(Arg::text("Tm1", tm1))
    .arg(Arg::text("Tm2", tm2))
}
