//! `AMT_TLSSettingData` Enumerate/Pull: RPS's TLS-state probe; AMT returns two items, 802.3 then
//! LMS (rps-protocol.md §3).

use crate::wsman::calls::{self, Call, Instance, PullPage};

pub const CLASS: &str = "AMT_TLSSettingData";

pub fn enumerate() -> Call<String> {
    calls::enumerate(CLASS)
}

pub fn pull(context: &str) -> Call<PullPage> {
    calls::pull(CLASS, context)
}

/// `Enabled` of an item (absent counts as false).
pub fn is_enabled(item: &Instance) -> bool {
    item.get("Enabled") == Some("true")
}
