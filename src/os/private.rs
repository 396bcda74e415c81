//! Files and directories only their owner may touch: mode 600 (700 for a directory) on Unix; on
//! Windows a protected DACL for SYSTEM, Administrators and the agent's own user, nothing inherited
//! (`os::acl::private_sddl`), which is what `chmod 600` means there. For generated secrets, apply's
//! records and AMT's TLS pins.

use std::io::Write;
use std::path::Path;

/// Makes an existing file or directory private: mode 600 (a directory 700), or the private DACL.
pub fn make_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if path.is_dir() { 0o700 } else { 0o600 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(windows)]
    return super::windows::make_private(path);
    #[cfg(not(any(unix, windows)))]
    {
        let _ = path;
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "no private files on this OS",
        ))
    }
}

/// Creates `dir` when it is missing, private, and so every parent it has to create (as
/// `mkdir -p -m 700`); an existing one is left as it is.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        // Top down, so each new folder is private before the next is made in it.
        let missing: Vec<&Path> = dir.ancestors().take_while(|a| !a.is_dir()).collect();
        for d in missing.into_iter().rev() {
            if d.as_os_str().is_empty() {
                continue;
            }
            match std::fs::create_dir(d) {
                Ok(()) => make_private(d)?,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && d.is_dir() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Writes `bytes` to `path` atomically (a private file beside it, synced, then renamed over it),
/// readable by its owner only. The directory must exist.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    // Private before the first byte is written (on Windows the new file inherited its folder's
    // DACL); a file left from an earlier run is made private again too.
    make_private(&tmp)?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    drop(f);
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

/// Who besides the owner (and on Windows SYSTEM and Administrators) may read `path`: the mode's
/// group and other bits, or a broad group in its DACL (Everyone, Users, …); `None` when nobody.
pub fn readable_by_others(path: &Path) -> std::io::Result<Option<String>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let mode = std::fs::metadata(path)?.mode();
        Ok((mode & 0o077 != 0).then(|| format!("other users (mode {:o})", mode & 0o777)))
    }
    #[cfg(windows)]
    {
        let dacl = super::windows::file_dacl(path)?;
        Ok(super::acl::readable_by_others(dacl.as_deref()).map(str::to_string))
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = path;
        Ok(None)
    }
}

/// Who besides the owner (and on Windows SYSTEM, Administrators and this process's user) may
/// change `path`: the mode's group and other write bits, or such an entry in its DACL.
pub fn writable_by_others(path: &Path) -> std::io::Result<Option<String>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let mode = std::fs::metadata(path)?.mode();
        Ok((mode & 0o022 != 0).then(|| format!("others (mode {:o})", mode & 0o777)))
    }
    #[cfg(windows)]
    {
        let dacl = super::windows::file_dacl(path)?;
        let me = super::windows::current_user_sid()?;
        Ok(super::acl::writable_by_others(dacl.as_deref(), &me))
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = path;
        Ok(None)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn a_private_file_is_600_in_a_700_directory_and_replaced_whole() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("a/b");
        create_private_dir(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        let f = dir.join("x.json");
        write_private_file(&f, b"one").unwrap();
        write_private_file(&f, b"two").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&f).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary file left"
        );
        assert_eq!(readable_by_others(&f).unwrap(), None);
        assert_eq!(writable_by_others(&f).unwrap(), None);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o664)).unwrap();
        assert_eq!(
            readable_by_others(&f).unwrap().as_deref(),
            Some("other users (mode 664)")
        );
        assert_eq!(
            writable_by_others(&f).unwrap().as_deref(),
            Some("others (mode 664)")
        );
        // An existing directory is left as it is until made private.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o755);
        make_private(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    }
}
