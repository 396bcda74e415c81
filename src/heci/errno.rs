//! The errno numbers of the Linux MEI driver (transport.md §1.11, x86_64), as plain constants.
//!
//! The simulator imitates that driver and its socket protocol carries these numbers, so they are the
//! same on every platform: a Windows agent talking to `amt-sim serve --tcp` reads `EBUSY` as 16
//! whatever its own C runtime calls 16. On Linux they equal `libc`'s (a unit test checks).

pub const EPERM: i32 = 1;
pub const ENOENT: i32 = 2;
pub const EINTR: i32 = 4;
pub const EAGAIN: i32 = 11;
pub const EACCES: i32 = 13;
pub const EFAULT: i32 = 14;
pub const EBUSY: i32 = 16;
pub const ENODEV: i32 = 19;
pub const EINVAL: i32 = 22;
pub const ENOTTY: i32 = 25;
pub const EFBIG: i32 = 27;
pub const EMSGSIZE: i32 = 90;

/// The kernel's wording for an errno the MEI driver gives, for messages.
pub fn describe(errno: i32) -> String {
    let text = match errno {
        EPERM => "Operation not permitted",
        ENOENT => "No such file or directory",
        EINTR => "Interrupted system call",
        EAGAIN => "Resource temporarily unavailable",
        EACCES => "Permission denied",
        EFAULT => "Bad address",
        EBUSY => "Device or resource busy",
        ENODEV => "No such device",
        EINVAL => "Invalid argument",
        ENOTTY => "Inappropriate ioctl for device",
        EFBIG => "File too large",
        EMSGSIZE => "Message too long",
        _ => return format!("errno {errno}"),
    };
    format!("{text} ({errno})")
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn the_numbers_are_the_linux_kernels() {
        for (ours, theirs) in [
            (EPERM, libc::EPERM),
            (ENOENT, libc::ENOENT),
            (EINTR, libc::EINTR),
            (EAGAIN, libc::EAGAIN),
            (EACCES, libc::EACCES),
            (EFAULT, libc::EFAULT),
            (EBUSY, libc::EBUSY),
            (ENODEV, libc::ENODEV),
            (EINVAL, libc::EINVAL),
            (ENOTTY, libc::ENOTTY),
            (EFBIG, libc::EFBIG),
            (EMSGSIZE, libc::EMSGSIZE),
        ] {
            assert_eq!(ours, theirs);
        }
        assert_eq!(describe(EBUSY), "Device or resource busy (16)");
        assert_eq!(describe(999), "errno 999");
    }
}
