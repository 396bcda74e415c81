//! The simulator as a MEI character-device *file*, served through FUSE, so the agent's real Linux
//! ioctl backend and unmodified MEI programs run against it (`amt-sim serve --mei-file PATH`).
//!
//! The FUSE filesystem is mounted directly on `PATH` (a regular file, created empty when absent):
//! its root inode is the device file. Each `open()` is one host client, exactly as on `/dev/mei0`
//! (transport.md §1.4): `IOCTL_MEI_CONNECT_CLIENT` binds it to an ME client, then every `write()`
//! and `read()` is one whole message. What real clients need from such a file, and why the open
//! answers `FOPEN_DIRECT_IO | FOPEN_STREAM`, is in mei-clients.md ("The device file").
//!
//! fuser runs one session thread; nothing here blocks it. A read that has to wait is answered from
//! its own thread (fuser's replies are `Send`), and poll notifications come from a waker thread.
//!
//! fuser 0.15 answers FUSE_INTERRUPT itself with ENOSYS, after which the kernel stops sending
//! interrupts and a client blocked in `read()` waits until the daemon answers. So a waiting read
//! checks the calling thread's pending signals in `/proc/<tid>/status` and answers EINTR when a
//! deliverable signal (or a kill) is pending: what a daemon honouring interrupts would answer.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};

use fuser::consts::{FOPEN_DIRECT_IO, FOPEN_NONSEEKABLE, FOPEN_STREAM, FUSE_POLL_SCHEDULE_NOTIFY};
use fuser::{
    FileAttr, FileType, Filesystem, MountOption, PollHandle, ReplyAttr, ReplyData, ReplyEmpty,
    ReplyIoctl, ReplyOpen, ReplyPoll, ReplyWrite, Request, TimeOrNow,
};

use super::{Firmware, ReadError, SimHandle};
use crate::heci::linux::IOCTL_MEI_CONNECT_CLIENT;
use crate::heci::Guid;

/// How often a waiting read looks for a signal sent to its caller.
const INTERRUPT_CHECK: Duration = Duration::from_millis(50);
/// How often the waker re-checks armed pollers for an ME reset (which queues nothing).
const RESET_CHECK: Duration = Duration::from_millis(100);
/// The waker's tick with nobody polling.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// How long the kernel may cache the file's attributes.
const ATTR_TTL: Duration = Duration::from_secs(1);
/// How many dead mounts stacked on the path are removed before giving up.
const STALE_MOUNTS_MAX: usize = 8;
/// How long to wait for the mount to disappear after unmounting.
const UNMOUNT_DEADLINE: Duration = Duration::from_secs(5);

// poll(2) bits as FUSE carries them (the kernel's own values, not libc's i16).
const POLLIN: u32 = libc::POLLIN as u32 | libc::POLLRDNORM as u32;
const POLLOUT: u32 = libc::POLLOUT as u32 | libc::POLLWRNORM as u32;
const POLLERR: u32 = libc::POLLERR as u32;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One `open()` of the device file: a host client, connected to an ME client or not yet.
#[derive(Default)]
struct OpenFile {
    handle: Mutex<Option<SimHandle>>,
    /// The rest of a message read with a short buffer; the next reads continue it (§1.8).
    leftover: Mutex<Vec<u8>>,
    /// The kernel's poll handle while a poller waits for this file to become ready.
    poller: Mutex<Option<PollHandle>>,
}

impl OpenFile {
    fn handle(&self) -> Option<SimHandle> {
        lock(&self.handle).clone()
    }

    /// What `poll` reports, as the driver's `mei_poll` does: only POLLERR when the file is not
    /// connected or the ME reset; otherwise writable, and readable when a message is due.
    fn revents(&self) -> u32 {
        let Some(h) = self.handle() else {
            return POLLERR;
        };
        if h.broken() {
            return POLLERR;
        }
        if h.readable() || !lock(&self.leftover).is_empty() {
            POLLOUT | POLLIN
        } else {
            POLLOUT
        }
    }

    /// Up to `size` bytes of the message; the rest stays queued for the next read.
    fn serve(&self, mut msg: Vec<u8>, size: usize) -> Vec<u8> {
        if msg.len() > size {
            *lock(&self.leftover) = msg.split_off(size);
        }
        msg
    }

    fn take_leftover(&self, size: usize) -> Option<Vec<u8>> {
        let mut rest = lock(&self.leftover);
        if rest.is_empty() {
            return None;
        }
        let at = size.min(rest.len());
        let tail = rest.split_off(at);
        Some(std::mem::replace(&mut *rest, tail))
    }
}

/// State shared by the filesystem, the reader threads and the waker.
#[derive(Default)]
struct Shared {
    files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    kicked: Mutex<bool>,
    kick_cv: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn file(&self, fh: u64) -> Option<Arc<OpenFile>> {
        lock(&self.files).get(&fh).cloned()
    }

    /// Makes the waker look at the pollers now.
    fn kick(&self) {
        *lock(&self.kicked) = true;
        self.kick_cv.notify_all();
    }
}

/// Sends poll notifications: when a message is queued, when a delayed message (simulated latency)
/// becomes due, and when an ME reset breaks a polled file.
fn waker(shared: Weak<Shared>) {
    loop {
        let Some(s) = shared.upgrade() else { return };
        if s.stop.load(Ordering::Acquire) {
            return;
        }
        let files: Vec<Arc<OpenFile>> = lock(&s.files).values().cloned().collect();
        let now = Instant::now();
        let mut wake = now + IDLE_TICK;
        for f in files {
            if lock(&f.poller).is_none() {
                continue;
            }
            if f.revents() & (POLLIN | POLLERR) != 0 {
                if let Some(ph) = lock(&f.poller).take() {
                    if let Err(e) = ph.notify() {
                        tracing::debug!(error = %e, "poll notification not delivered");
                    }
                }
                continue;
            }
            wake = wake.min(now + RESET_CHECK);
            if let Some(at) = f.handle().and_then(|h| h.next_ready_at()) {
                wake = wake.min(at.max(now));
            }
        }
        let mut kicked = lock(&s.kicked);
        if !*kicked {
            kicked = s
                .kick_cv
                .wait_timeout(kicked, wake.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        *kicked = false;
    }
}

/// Whether thread `tid` has a signal pending that it would take: a FUSE daemon honouring
/// interrupts answers EINTR then. False when it cannot tell (thread not visible).
fn signal_pending(tid: u32) -> bool {
    if tid == 0 {
        return false;
    }
    let Ok(status) = std::fs::read_to_string(format!("/proc/{tid}/status")) else {
        return false;
    };
    let mask = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0)
    };
    let pending = mask("SigPnd:") | mask("ShdPnd:");
    pending & !mask("SigBlk:") & !mask("SigIgn:") != 0
}

/// The FUSE filesystem: a single regular file, its root inode.
struct MeiFs {
    fw: Firmware,
    shared: Arc<Shared>,
    next_fh: u64,
    attr: FileAttr,
}

impl MeiFs {
    fn new(fw: Firmware, shared: Arc<Shared>) -> MeiFs {
        let now = SystemTime::now();
        MeiFs {
            fw,
            shared,
            next_fh: 1,
            attr: FileAttr {
                ino: fuser::FUSE_ROOT_ID,
                size: 0,
                blocks: 0,
                atime: now,
                mtime: now,
                ctime: now,
                crtime: now,
                kind: FileType::RegularFile,
                // Like /dev/mei0 (crw------- root); FUSE's default ACL admits only the mounting user.
                perm: 0o600,
                nlink: 1,
                uid: nix::unistd::getuid().as_raw(),
                gid: nix::unistd::getgid().as_raw(),
                rdev: 0,
                blksize: 4096,
                flags: 0,
            },
        }
    }

    /// IOCTL_MEI_CONNECT_CLIENT (transport.md §1.3, §1.5).
    fn connect(&self, file: &OpenFile, input: &[u8], reply: ReplyIoctl) {
        let Ok(guid) = <[u8; 16]>::try_from(input) else {
            reply.error(libc::EINVAL);
            return;
        };
        let mut slot = lock(&file.handle);
        if slot.is_some() {
            reply.error(libc::EBUSY);
            return;
        }
        match self.fw.connect(Guid(guid)) {
            Ok(h) => {
                let weak = Arc::downgrade(&self.shared);
                h.set_notify(Box::new(move || {
                    if let Some(s) = weak.upgrade() {
                        s.kick();
                    }
                }));
                let p = h.properties();
                // The kernel writes only `struct mei_client`'s first fields into the union and
                // copies the whole 16 bytes back: bytes 5..15 keep the caller's GUID bytes.
                let mut out = guid;
                out[..4].copy_from_slice(&p.max_msg_length.to_le_bytes());
                out[4] = p.protocol_version;
                *slot = Some(h);
                reply.ioctl(0, &out);
            }
            Err(errno) => reply.error(errno),
        }
    }
}

impl Filesystem for MeiFs {
    fn destroy(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        for (_, f) in lock(&self.shared.files).drain() {
            if let Some(h) = f.handle() {
                h.close();
            }
        }
        self.shared.kick();
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        if ino == fuser::FUSE_ROOT_ID {
            reply.attr(&ATTR_TTL, &self.attr);
        } else {
            reply.error(libc::ENOENT);
        }
    }

    /// Accepted and ignored (a shell's `>` truncates first), as a character device does.
    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        self.getattr(_req, ino, None, reply);
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        if ino != fuser::FUSE_ROOT_ID {
            reply.error(libc::ENOENT);
            return;
        }
        let fh = self.next_fh;
        self.next_fh += 1;
        lock(&self.shared.files).insert(fh, Arc::new(OpenFile::default()));
        // Direct I/O: every read/write reaches us with the caller's size, no page cache. Stream:
        // no file position, so the kernel does not serialise a blocked read and a write on the
        // same descriptor (mei-clients.md, "Open with direct I/O and stream semantics").
        reply.opened(fh, FOPEN_DIRECT_IO | FOPEN_NONSEEKABLE | FOPEN_STREAM);
    }

    fn ioctl(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: u32,
        cmd: u32,
        in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        let Some(file) = self.shared.file(fh) else {
            reply.error(libc::EBADF);
            return;
        };
        if u64::from(cmd) == IOCTL_MEI_CONNECT_CLIENT {
            self.connect(&file, in_data, reply);
        } else {
            // The driver answers ENOIOCTLCMD, which userspace sees as ENOTTY (§1.5).
            reply.error(libc::ENOTTY);
        }
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        let Some(file) = self.shared.file(fh) else {
            reply.error(libc::EBADF);
            return;
        };
        match file.handle() {
            None => reply.error(libc::ENODEV),
            Some(h) => match h.write(data) {
                Ok(()) => reply.written(data.len() as u32),
                Err(errno) => reply.error(errno),
            },
        }
    }

    fn read(
        &mut self,
        req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _offset: i64,
        size: u32,
        flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let Some(file) = self.shared.file(fh) else {
            reply.error(libc::EBADF);
            return;
        };
        let size = size as usize;
        if size == 0 {
            reply.data(&[]);
            return;
        }
        if let Some(chunk) = file.take_leftover(size) {
            reply.data(&chunk);
            return;
        }
        let Some(h) = file.handle() else {
            reply.error(libc::ENODEV);
            return;
        };
        // O_NONBLOCK comes with each request: clients set it with fcntl after open.
        match h.read(None, true) {
            Ok(msg) => reply.data(&file.serve(msg, size)),
            Err(ReadError::Errno(errno)) => reply.error(errno),
            Err(_) if flags & libc::O_NONBLOCK != 0 => reply.error(libc::EAGAIN),
            Err(_) => {
                let tid = req.pid();
                let shared = self.shared.clone();
                let spawned = std::thread::Builder::new()
                    .name("mei-read".into())
                    .spawn(move || blocking_read(h, file, size, tid, shared, reply));
                // On failure the reply was dropped with the closure, and fuser answers EIO.
                if let Err(e) = spawned {
                    tracing::error!(error = %e, "could not start a reader thread");
                }
            }
        }
    }

    fn poll(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        ph: PollHandle,
        _events: u32,
        flags: u32,
        reply: ReplyPoll,
    ) {
        let Some(file) = self.shared.file(fh) else {
            reply.error(libc::EBADF);
            return;
        };
        let revents = file.revents();
        if flags & FUSE_POLL_SCHEDULE_NOTIFY != 0 && revents & (POLLIN | POLLERR) == 0 {
            *lock(&file.poller) = Some(ph);
            self.shared.kick();
        }
        reply.poll(revents);
    }

    fn flush(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        _fh: u64,
        _lock_owner: u64,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    /// Writes complete synchronously, so there is never anything to wait for.
    fn fsync(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        _fh: u64,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if let Some(f) = lock(&self.shared.files).remove(&fh) {
            if let Some(h) = f.handle() {
                h.close();
            }
        }
        reply.ok();
    }
}

/// A read that waits for the firmware, answered from its own thread.
fn blocking_read(
    h: SimHandle,
    file: Arc<OpenFile>,
    size: usize,
    tid: u32,
    shared: Arc<Shared>,
    reply: ReplyData,
) {
    loop {
        if shared.stop.load(Ordering::Acquire) {
            reply.error(libc::ENODEV);
            return;
        }
        match h.read(Some(Instant::now() + INTERRUPT_CHECK), false) {
            Ok(msg) => {
                reply.data(&file.serve(msg, size));
                return;
            }
            Err(ReadError::Errno(errno)) => {
                reply.error(errno);
                return;
            }
            Err(ReadError::TimedOut) | Err(ReadError::WouldBlock) => {
                if signal_pending(tid) {
                    reply.error(libc::EINTR);
                    return;
                }
            }
        }
    }
}

/// The mounted device file. Dropping it unmounts (lazily when a client still has it open) and
/// removes the placeholder file when this process created it.
pub struct MeiFile {
    path: PathBuf,
    created: bool,
    /// Mounts already stacked on the path before ours: those are not ours to remove.
    mounts_before: usize,
    shared: Arc<Shared>,
    session: Option<fuser::BackgroundSession>,
}

impl MeiFile {
    /// Mounts the simulated device at `path` (a regular file, created when absent).
    pub fn mount(path: &Path, fw: Firmware) -> Result<MeiFile, String> {
        if !Path::new("/dev/fuse").exists() {
            return Err(
                "FUSE is not available: /dev/fuse is missing (modprobe fuse; in a container, pass --device /dev/fuse)"
                    .into(),
            );
        }
        let shown = path.display().to_string();
        remove_stale_mount(path)?;
        let created = match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_file() => false,
            Ok(_) => {
                return Err(format!(
                    "{shown} exists and is not a regular file; --mei-file needs a file path"
                ))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| format!("creating {shown}: {e}"))?;
                true
            }
            Err(e) => return Err(format!("{shown}: {e}")),
        };
        let cleanup = |msg: String| {
            if created {
                let _ = std::fs::remove_file(path);
            }
            msg
        };
        let canonical = path
            .canonicalize()
            .map_err(|e| cleanup(format!("{shown}: {e}")))?;
        let mounts_before = mounts_at(&canonical);
        let shared = Arc::new(Shared::default());
        let options = [
            MountOption::FSName("amt-sim".into()),
            MountOption::RW,
            MountOption::NoExec,
        ];
        let session = fuser::spawn_mount2(MeiFs::new(fw, shared.clone()), &canonical, &options)
            .map_err(|e| {
                cleanup(format!(
                    "mounting FUSE on {shown}: {e} (needs /dev/fuse, and root or fusermount3 from the fuse3 package)"
                ))
            })?;
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("mei-poll-waker".into())
            .spawn(move || waker(weak))
            .map_err(|e| cleanup(format!("starting the poll waker: {e}")))?;
        tracing::info!(path = %canonical.display(), "MEI device file mounted");
        Ok(MeiFile {
            path: canonical,
            created,
            mounts_before,
            shared,
            session: Some(session),
        })
    }

    /// Where the device file is (canonical).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for MeiFile {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.kick();
        // fuser unmounts on drop, but not lazily: with a client still holding the file the umount
        // fails with EBUSY and the mount would stay. Detach whatever is left.
        drop(self.session.take());
        if mounts_at(&self.path) > self.mounts_before {
            if let Err(e) = unmount(&self.path) {
                tracing::error!(path = %self.path.display(), error = %e, "could not unmount the MEI device file");
            }
        }
        let deadline = Instant::now() + UNMOUNT_DEADLINE;
        while mounts_at(&self.path) > self.mounts_before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.created && mounts_at(&self.path) <= self.mounts_before {
            let _ = std::fs::remove_file(&self.path);
        }
        tracing::info!(path = %self.path.display(), "MEI device file unmounted");
    }
}

/// A FUSE mount whose daemon died (killed with SIGKILL) answers ENOTCONN; detach it (and any
/// more stacked under it) so a new server can mount there. `statfs` always reaches the daemon,
/// where `stat` may be answered from the kernel's attribute cache.
fn remove_stale_mount(path: &Path) -> Result<(), String> {
    for _ in 0..STALE_MOUNTS_MAX {
        match nix::sys::statfs::statfs(path) {
            Err(nix::errno::Errno::ENOTCONN) => {
                tracing::warn!(path = %path.display(), "removing a stale FUSE mount left by a killed run");
                unmount(path)?;
            }
            _ => return Ok(()),
        }
    }
    Err(format!(
        "{}: more than {STALE_MOUNTS_MAX} dead FUSE mounts are stacked here",
        path.display()
    ))
}

/// Detaches the mount at `path`: umount2(MNT_DETACH) as root, else fusermount3/fusermount -u -z.
fn unmount(path: &Path) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
        return Ok(());
    }
    let os_err = std::io::Error::last_os_error();
    for tool in ["fusermount3", "fusermount"] {
        match std::process::Command::new(tool)
            .args([OsStr::new("-u"), OsStr::new("-q"), OsStr::new("-z")])
            .arg(path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
        {
            Ok(s) if s.success() => return Ok(()),
            _ => continue,
        }
    }
    Err(format!(
        "umount2: {os_err}; fusermount3 -u failed or is not installed"
    ))
}

/// How many mounts sit on `path` now, from this process's mount table (0 without /proc).
fn mounts_at(path: &Path) -> usize {
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return 0;
    };
    let want = path.as_os_str().as_encoded_bytes();
    table
        .lines()
        .filter(|l| {
            l.split(' ')
                .nth(4)
                .is_some_and(|mp| unescape_mountinfo(mp) == want)
        })
        .count()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 4])
                .ok()
                .and_then(|oct| u8::from_str_radix(oct, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo("/tmp/a\\040b"), b"/tmp/a b");
        assert_eq!(unescape_mountinfo("/tmp/x\\134y"), b"/tmp/x\\y");
        assert_eq!(unescape_mountinfo("/tmp/plain"), b"/tmp/plain");
        assert_eq!(unescape_mountinfo("/end\\04"), b"/end\\04");
    }

    #[test]
    fn a_short_read_leaves_the_rest_of_the_message_for_the_next_reads() {
        let f = OpenFile::default();
        assert_eq!(f.serve(vec![1, 2, 3, 4, 5], 2), vec![1, 2]);
        assert_eq!(f.take_leftover(2), Some(vec![3, 4]));
        assert_eq!(f.take_leftover(10), Some(vec![5]));
        assert_eq!(f.take_leftover(10), None);
    }

    #[test]
    fn an_unconnected_file_polls_as_an_error_like_the_driver() {
        assert_eq!(OpenFile::default().revents(), POLLERR);
    }

    #[test]
    fn no_signal_is_pending_for_an_unknown_thread() {
        assert!(!signal_pending(0));
        assert!(!signal_pending(u32::MAX));
    }
}
