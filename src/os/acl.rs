//! Whether a secret file's Windows ACL lets more than its owner and the administrators read it:
//! the counterpart of the Unix mode-600 check. The rule is here, on data, so it is tested on any
//! OS; `os::windows` reads the DACL.

/// One entry of a file's DACL: its type (0 = access allowed), access mask, and SID as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ace {
    pub kind: u8,
    pub mask: u32,
    pub sid: String,
}

/// `ACCESS_ALLOWED_ACE_TYPE`.
pub const ACCESS_ALLOWED: u8 = 0;

/// The rights that read a file's contents: `FILE_READ_DATA`, `GENERIC_READ`, `GENERIC_ALL`.
pub const READ_RIGHTS: u32 = 0x0000_0001 | 0x8000_0000 | 0x1000_0000;

/// The groups that stand for "other users": a secret readable by one of them is exposed.
const BROAD: &[(&str, &str)] = &[
    ("S-1-1-0", "Everyone"),
    ("S-1-5-7", "ANONYMOUS LOGON"),
    ("S-1-5-4", "INTERACTIVE"),
    ("S-1-5-11", "Authenticated Users"),
    ("S-1-5-32-545", "Users"),
    ("S-1-5-32-546", "Guests"),
];

/// The name of a broad group the DACL lets read the file, or `None` when only narrower principals
/// may (the owner, SYSTEM, Administrators). `dacl = None` is a NULL DACL: everyone has full access.
pub fn readable_by_others(dacl: Option<&[Ace]>) -> Option<&'static str> {
    let Some(aces) = dacl else {
        return Some("Everyone (the file has no DACL)");
    };
    aces.iter()
        .filter(|a| a.kind == ACCESS_ALLOWED && a.mask & READ_RIGHTS != 0)
        .find_map(|a| BROAD.iter().find(|(sid, _)| *sid == a.sid).map(|(_, n)| *n))
}

/// The rights that change a file: `FILE_WRITE_DATA`, `FILE_APPEND_DATA`, `WRITE_DAC`,
/// `WRITE_OWNER`, `GENERIC_WRITE`, `GENERIC_ALL`.
pub const WRITE_RIGHTS: u32 =
    0x0000_0002 | 0x0000_0004 | 0x0004_0000 | 0x0008_0000 | 0x4000_0000 | 0x1000_0000;

/// Who may change a file that is trusted without further checks (AMT's TLS pin): SYSTEM,
/// Administrators, TrustedInstaller, and `me` (the agent's own user).
const TRUSTED_WRITERS: &[&str] = &[
    "S-1-5-18",
    "S-1-5-32-544",
    "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464",
];

/// The counterpart of "mode & 022" for a file whose contents are trusted: the first principal
/// other than SYSTEM, Administrators, TrustedInstaller and `me` that the DACL lets change it (by
/// its group name when it is a broad one, else its SID), or `None`.
pub fn writable_by_others(dacl: Option<&[Ace]>, me: &str) -> Option<String> {
    let Some(aces) = dacl else {
        return Some("Everyone (the file has no DACL)".into());
    };
    aces.iter()
        .filter(|a| a.kind == ACCESS_ALLOWED && a.mask & WRITE_RIGHTS != 0)
        .find(|a| a.sid != me && !TRUSTED_WRITERS.contains(&a.sid.as_str()))
        .map(|a| {
            BROAD
                .iter()
                .find(|(sid, _)| *sid == a.sid)
                .map(|(_, n)| n.to_string())
                .unwrap_or_else(|| a.sid.clone())
        })
}

/// The DACL a private file or directory gets (SDDL): protected from inheritance, full control for
/// SYSTEM, Administrators and `me` only; a directory's entries are inherited by what is made in
/// it. The counterpart of mode 600 (700 for a directory).
pub fn private_sddl(me: &str, directory: bool) -> String {
    let inherit = if directory { "OICI" } else { "" };
    format!("D:P(A;{inherit};FA;;;SY)(A;{inherit};FA;;;BA)(A;{inherit};FA;;;{me})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ace(mask: u32, sid: &str) -> Ace {
        Ace {
            kind: ACCESS_ALLOWED,
            mask,
            sid: sid.into(),
        }
    }

    #[test]
    fn only_owner_system_and_administrators_is_private() {
        // What Wine reports for a mode-600 file, and what icacls /inheritance:r leaves.
        let private = [
            ace(0x001f_01ff, "S-1-5-18"),
            ace(0x001f_01ff, "S-1-5-21-0-0-0-1000"),
            ace(0x001f_01ff, "S-1-5-32-544"),
        ];
        assert_eq!(readable_by_others(Some(&private)), None);
    }

    #[test]
    fn everyone_users_or_no_dacl_is_exposed() {
        // Wine's DACL for a mode-644 file: Everyone gets read.
        let mut open = vec![ace(0x001f_01ff, "S-1-5-18"), ace(0x0012_00a9, "S-1-1-0")];
        assert_eq!(readable_by_others(Some(&open)), Some("Everyone"));
        open[1] = ace(0x8000_0000, "S-1-5-32-545");
        assert_eq!(readable_by_others(Some(&open)), Some("Users"));
        // A deny entry, or a right that does not read, is no exposure.
        open[1] = Ace {
            kind: 1,
            mask: 0x001f_01ff,
            sid: "S-1-1-0".into(),
        };
        assert_eq!(readable_by_others(Some(&open)), None);
        open[1] = ace(0x0010_0000, "S-1-5-11");
        assert_eq!(readable_by_others(Some(&open)), None);
        assert!(readable_by_others(None).is_some());
    }

    #[test]
    fn a_pin_writable_by_anyone_but_system_administrators_or_the_agent_is_refused() {
        let me = "S-1-5-21-0-0-0-1000";
        let ok = [
            ace(0x001f_01ff, "S-1-5-18"),
            ace(0x001f_01ff, "S-1-5-32-544"),
            ace(0x001f_01ff, me),
            // Others may read a pin: it is no secret, only its integrity matters.
            ace(0x0012_00a9, "S-1-1-0"),
        ];
        assert_eq!(writable_by_others(Some(&ok), me), None);
        // A file another user made (planted) carries that user's full control.
        let planted = [
            ace(0x001f_01ff, "S-1-5-32-544"),
            ace(0x001f_01ff, "S-1-5-21-0-0-0-1001"),
        ];
        assert_eq!(
            writable_by_others(Some(&planted), me).as_deref(),
            Some("S-1-5-21-0-0-0-1001")
        );
        // Wine's DACL for a mode-666 file: Everyone may write.
        let open = [ace(0x001f_01ff, me), ace(0x0012_019f, "S-1-1-0")];
        assert_eq!(
            writable_by_others(Some(&open), me).as_deref(),
            Some("Everyone")
        );
        assert!(writable_by_others(None, me).is_some());
    }

    #[test]
    fn the_private_dacl_names_system_administrators_and_the_user_only() {
        let me = "S-1-5-21-1-2-3-1000";
        assert_eq!(
            private_sddl(me, false),
            "D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FA;;;S-1-5-21-1-2-3-1000)"
        );
        assert!(private_sddl(me, true).starts_with("D:P(A;OICI;FA;;;SY)"));
    }
}
