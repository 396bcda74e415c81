//! `AMT_AuthorizationService.SetAdminAclEntryEx`: sets the admin password (AMT 19+ activation,
//! re-activation, upgrade, changepassword; rps-protocol.md §5.3, rpc-go.md §5.4).

use crate::secret::Secret;
use crate::wsman::calls::{unit_output, Arg, Call, Op};

pub const CLASS: &str = "AMT_AuthorizationService";

/// `digest_password` is [`digest_password_b64`](crate::wsman::calls::digest_password_b64) of the
/// new password (base64 of the raw MD5, not hex).
pub fn set_admin_acl_entry_ex(username: &str, digest_password: &Secret) -> Call<()> {
    Call::new(
        CLASS,
        Op::Invoke {
            method: "SetAdminAclEntryEx".into(),
        },
        unit_output,
    )
    .arg(Arg::text("Username", username))
    .arg(Arg::secret("DigestPassword", digest_password))
}
