//! The Linux MEI character device backend (transport.md §1).
//!
//! One `open()` = one host client; `IOCTL_MEI_CONNECT_CLIENT` binds it to an ME client by GUID and
//! returns the client's MTU; then each `write()`/`read()` is one whole message.

use std::fs::OpenOptions;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::{client_label, ClientProperties, Guid, HeciError, MeiConnection, MeiDevice};

/// `struct mei_client` from `<linux/mei.h>`: 8 bytes, align 4.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct MeiClient {
    pub max_msg_length: u32,
    pub protocol_version: u8,
    pub reserved: [u8; 3],
}

/// `struct mei_connect_client_data`: a 16-byte union of the client GUID (in) and the client's
/// properties (out). The kernel writes only the first 5 bytes back; the rest keep the GUID's bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub union MeiConnectClientData {
    pub in_client_uuid: [u8; 16],
    pub out_client_properties: MeiClient,
}

// IOCTL_MEI_CONNECT_CLIENT = _IOWR('H', 0x01, struct mei_connect_client_data) = 0xC0104801.
nix::ioctl_readwrite!(mei_connect_client, b'H', 0x01, MeiConnectClientData);

/// The ioctl number as the kernel header defines it.
pub const IOCTL_MEI_CONNECT_CLIENT: u64 =
    nix::request_code_readwrite!(b'H', 0x01, std::mem::size_of::<MeiConnectClientData>()) as u64;

pub struct LinuxMeiDevice {
    paths: Vec<PathBuf>,
    /// The path that last connected, so later connects go straight there.
    preferred: AtomicUsize,
}

impl LinuxMeiDevice {
    pub fn new(path: PathBuf) -> LinuxMeiDevice {
        LinuxMeiDevice {
            paths: vec![path],
            preferred: AtomicUsize::new(0),
        }
    }

    /// Tries each present node in turn, moving on when a node lacks the client (as MeTee does).
    pub fn probing(paths: Vec<PathBuf>) -> LinuxMeiDevice {
        LinuxMeiDevice {
            paths,
            preferred: AtomicUsize::new(0),
        }
    }

    fn connect_path(&self, path: &PathBuf, client: Guid) -> Result<LinuxMeiConnection, HeciError> {
        let label = client_label(client);
        let shown = path.display().to_string();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| match Errno::from_raw(e.raw_os_error().unwrap_or(0)) {
                Errno::ENOENT | Errno::ENXIO => HeciError::NoDevice {
                    tried: shown.clone(),
                },
                Errno::EACCES | Errno::EPERM => HeciError::PermissionDenied {
                    path: shown.clone(),
                },
                Errno::ENODEV => HeciError::DeviceNotReady {
                    path: shown.clone(),
                },
                Errno::EBUSY | Errno::EMFILE => HeciError::Busy {
                    client: label.clone(),
                    attempts: 1,
                    waited_ms: 0,
                },
                other => HeciError::Os {
                    client: label.clone(),
                    op: "open",
                    errno: errno_text(other),
                },
            })?;
        let fd: OwnedFd = file.into();
        let mut data = MeiConnectClientData {
            in_client_uuid: *client.wire(),
        };
        loop {
            // SAFETY: `data` is a valid, exclusively borrowed 16-byte union that outlives the call;
            // the ioctl number encodes exactly that size.
            let r = unsafe { mei_connect_client(fd.as_raw_fd(), &mut data) };
            match r {
                Ok(_) => break,
                Err(Errno::EINTR) => continue,
                Err(Errno::ENOTTY) | Err(Errno::ENOENT) => {
                    return Err(HeciError::ClientNotFound { client: label })
                }
                Err(Errno::EBUSY) => {
                    return Err(HeciError::Busy {
                        client: label,
                        attempts: 1,
                        waited_ms: 0,
                    })
                }
                Err(Errno::ENODEV) => return Err(HeciError::DeviceNotReady { path: shown }),
                Err(Errno::EFAULT) | Err(Errno::ETIMEDOUT) => {
                    return Err(HeciError::Timeout {
                        client: label,
                        timeout_ms: 15_000,
                    })
                }
                Err(e) => {
                    return Err(HeciError::Os {
                        client: label,
                        op: "IOCTL_MEI_CONNECT_CLIENT",
                        errno: errno_text(e),
                    })
                }
            }
        }
        // SAFETY: after a successful connect the kernel has written `mei_client` into the union.
        let out = unsafe { data.out_client_properties };
        let props = ClientProperties {
            max_msg_length: out.max_msg_length,
            protocol_version: out.protocol_version,
        };
        tracing::debug!(device = %shown, client = %label, mtu = props.max_msg_length, protocol = props.protocol_version, "connected");
        // A pipe whose read end `recv` polls beside the device, so `interrupt` can wake it.
        let (wake_rx, wake_tx) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(|e| {
                HeciError::Os {
                    client: label.clone(),
                    op: "pipe2",
                    errno: errno_text(e),
                }
            })?;
        Ok(LinuxMeiConnection {
            fd,
            props,
            client: label,
            wake_rx,
            wake_tx,
            interrupted: AtomicBool::new(false),
        })
    }
}

impl MeiDevice for LinuxMeiDevice {
    fn describe(&self) -> String {
        let p: Vec<String> = self.paths.iter().map(|p| p.display().to_string()).collect();
        p.join(", ")
    }

    fn connect_once(&self, client: Guid) -> Result<Box<dyn MeiConnection>, HeciError> {
        let n = self.paths.len();
        let start = self.preferred.load(Ordering::Relaxed).min(n - 1);
        let mut last = None;
        for k in 0..n {
            let i = (start + k) % n;
            match self.connect_path(&self.paths[i], client) {
                Ok(c) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    return Ok(Box::new(c));
                }
                // Another node may be the ME with AMT (mei1..3 when mei0 is something else).
                Err(e @ HeciError::ClientNotFound { .. }) | Err(e @ HeciError::NoDevice { .. })
                    if n > 1 =>
                {
                    last = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(HeciError::NoDevice {
            tried: self.describe(),
        }))
    }
}

pub struct LinuxMeiConnection {
    fd: OwnedFd,
    props: ClientProperties,
    client: String,
    /// `interrupt` writes a byte here; `recv` polls the read end beside the device.
    wake_rx: OwnedFd,
    wake_tx: OwnedFd,
    interrupted: AtomicBool,
}

impl MeiConnection for LinuxMeiConnection {
    fn properties(&self) -> ClientProperties {
        self.props
    }

    fn interrupt(&self) {
        self.interrupted.store(true, Ordering::SeqCst);
        // Non-blocking: a full pipe already wakes the poll.
        let _ = nix::unistd::write(&self.wake_tx, &[1]);
    }

    fn send(&self, msg: &[u8]) -> Result<(), HeciError> {
        if msg.len() > self.props.max_msg_length as usize {
            return Err(HeciError::MessageTooBig {
                client: self.client.clone(),
                len: msg.len(),
                max: self.props.max_msg_length,
            });
        }
        loop {
            match nix::unistd::write(&self.fd, msg) {
                Ok(n) if n == msg.len() => return Ok(()),
                Ok(n) => {
                    return Err(HeciError::Os {
                        client: self.client.clone(),
                        op: "write",
                        errno: format!("short write ({n} of {} bytes)", msg.len()),
                    })
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EFBIG) => {
                    return Err(HeciError::MessageTooBig {
                        client: self.client.clone(),
                        len: msg.len(),
                        max: self.props.max_msg_length,
                    })
                }
                Err(Errno::ENODEV) => {
                    return Err(HeciError::Reset {
                        client: self.client.clone(),
                        attempts: 0,
                    })
                }
                Err(Errno::ENOTTY) => {
                    return Err(HeciError::ClientNotFound {
                        client: self.client.clone(),
                    })
                }
                Err(e) => {
                    return Err(HeciError::Os {
                        client: self.client.clone(),
                        op: "write",
                        errno: errno_text(e),
                    })
                }
            }
        }
    }

    fn recv(&self, deadline: Instant) -> Result<Vec<u8>, HeciError> {
        let mtu = self.props.max_msg_length.max(1) as usize;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.timeout(deadline));
            }
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
            let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
            if self.interrupted.load(Ordering::SeqCst) {
                return Err(self.closed());
            }
            let mut fds = [
                PollFd::new(self.fd.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.wake_rx.as_fd(), PollFlags::POLLIN),
            ];
            match nix::poll::poll(&mut fds, timeout) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    return Err(HeciError::Os {
                        client: self.client.clone(),
                        op: "poll",
                        errno: errno_text(e),
                    })
                }
            }
            if self.interrupted.load(Ordering::SeqCst) {
                return Err(self.closed());
            }
            let rev = fds[0].revents().unwrap_or(PollFlags::empty());
            if rev.intersects(PollFlags::POLLERR | PollFlags::POLLHUP | PollFlags::POLLNVAL)
                && !rev.contains(PollFlags::POLLIN)
            {
                return Err(HeciError::Reset {
                    client: self.client.clone(),
                    attempts: 0,
                });
            }
            if !rev.contains(PollFlags::POLLIN) {
                continue;
            }
            let mut buf = vec![0u8; mtu];
            match nix::unistd::read(self.fd.as_raw_fd(), &mut buf) {
                Ok(0) => {
                    return Err(HeciError::Closed {
                        client: self.client.clone(),
                    })
                }
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(buf);
                }
                Err(Errno::EINTR) | Err(Errno::EAGAIN) => continue,
                Err(Errno::EMSGSIZE) => {
                    return Err(HeciError::ReplyTooBig {
                        client: self.client.clone(),
                    })
                }
                Err(Errno::ENODEV) => {
                    return Err(HeciError::Reset {
                        client: self.client.clone(),
                        attempts: 0,
                    })
                }
                Err(e) => {
                    return Err(HeciError::Os {
                        client: self.client.clone(),
                        op: "read",
                        errno: errno_text(e),
                    })
                }
            }
        }
    }
}

impl LinuxMeiConnection {
    fn closed(&self) -> HeciError {
        HeciError::Closed {
            client: self.client.clone(),
        }
    }

    fn timeout(&self, _deadline: Instant) -> HeciError {
        HeciError::Timeout {
            client: self.client.clone(),
            timeout_ms: 0,
        }
    }
}

fn errno_text(e: Errno) -> String {
    format!("{} ({})", e.desc(), e as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Layout facts from `<linux/mei.h>` (transport.md §1.2–1.3).
    #[test]
    fn ioctl_number_and_union_layout_match_the_uapi_header() {
        assert_eq!(IOCTL_MEI_CONNECT_CLIENT, 0xC010_4801);
        assert_eq!(std::mem::size_of::<MeiConnectClientData>(), 16);
        assert_eq!(std::mem::align_of::<MeiConnectClientData>(), 4);
        assert_eq!(std::mem::size_of::<MeiClient>(), 8);
        assert_eq!(std::mem::align_of::<MeiClient>(), 4);
        let c = MeiClient::default();
        let base = &c as *const MeiClient as usize;
        assert_eq!(&c.max_msg_length as *const u32 as usize - base, 0);
        assert_eq!(&c.protocol_version as *const u8 as usize - base, 4);
        assert_eq!(&c.reserved as *const [u8; 3] as usize - base, 5);
    }

    /// The numbers must agree with the installed `<linux/mei.h>`, computed by the C compiler.
    #[test]
    fn ioctl_number_and_layout_agree_with_the_installed_header() {
        if !std::path::Path::new("/usr/include/linux/mei.h").exists() {
            eprintln!(
                "skipped: /usr/include/linux/mei.h not installed (Debian package linux-libc-dev)"
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("mei.c");
        let exe = dir.path().join("mei");
        std::fs::write(
            &src,
            "#include <stdio.h>\n#include <stddef.h>\n#include <sys/ioctl.h>\n#include <linux/mei.h>\n\
             int main(void){printf(\"%lx %zu %zu %zu %zu\", (unsigned long)IOCTL_MEI_CONNECT_CLIENT, \
             sizeof(struct mei_connect_client_data), _Alignof(struct mei_connect_client_data), \
             offsetof(struct mei_client, protocol_version), sizeof(struct mei_client));return 0;}\n",
        )
        .unwrap();
        let cc = std::process::Command::new("cc")
            .arg(&src)
            .arg("-o")
            .arg(&exe)
            .status();
        match cc {
            Ok(s) => assert!(
                s.success(),
                "the header probe did not compile against <linux/mei.h>"
            ),
            Err(_) => {
                eprintln!("skipped: no C compiler to read the header with");
                return;
            }
        }
        let out = std::process::Command::new(&exe).output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            text,
            format!(
                "{:x} {} {} {} {}",
                IOCTL_MEI_CONNECT_CLIENT,
                std::mem::size_of::<MeiConnectClientData>(),
                std::mem::align_of::<MeiConnectClientData>(),
                4,
                std::mem::size_of::<MeiClient>()
            )
        );
    }
}
