//! Host name, DNS suffix and adapters on Windows (windows.md §4): `GetComputerNameExW` and
//! `GetAdaptersAddresses`. Local calls only, no DNS query.

use std::net::Ipv4Addr;

use windows_sys::Win32::NetworkManagement::IpHelper::{
    GetAdaptersAddresses, GAA_FLAG_SKIP_ANYCAST, GAA_FLAG_SKIP_DNS_SERVER, GAA_FLAG_SKIP_MULTICAST,
    IF_TYPE_SOFTWARE_LOOPBACK, IP_ADAPTER_ADDRESSES_LH, IP_ADAPTER_UNICAST_ADDRESS_LH,
};
use windows_sys::Win32::NetworkManagement::Ndis::IfOperStatusUp;
use windows_sys::Win32::Networking::WinSock::{AF_INET, SOCKADDR_IN};
use windows_sys::Win32::System::SystemInformation::{
    ComputerNameDnsDomain, ComputerNameDnsHostname, ComputerNamePhysicalDnsHostname,
    GetComputerNameExW, COMPUTER_NAME_FORMAT,
};

use super::acl::Ace;
use super::adapters::{self, Adapter};

const ERROR_BUFFER_OVERFLOW: u32 = 111;

/// The ProgramData folder (`FOLDERID_ProgramData`), from the shell rather than the environment: a
/// service's environment need not carry `%ProgramData%` (Wine's service manager gives it another).
pub fn program_data() -> Option<std::path::PathBuf> {
    use windows_sys::Win32::System::Com::CoTaskMemFree;
    use windows_sys::Win32::UI::Shell::{FOLDERID_ProgramData, SHGetKnownFolderPath};
    let mut p: windows_sys::core::PWSTR = std::ptr::null_mut();
    // SAFETY: on success the shell allocates a NUL-terminated string, copied and then freed.
    unsafe {
        let hr = SHGetKnownFolderPath(&FOLDERID_ProgramData, 0, std::ptr::null_mut(), &mut p);
        let path = (hr == 0).then(|| wide_to_string(p));
        CoTaskMemFree(p as *const std::ffi::c_void);
        path.filter(|s| !s.is_empty()).map(Into::into)
    }
}

fn computer_name(format: COMPUTER_NAME_FORMAT) -> String {
    let mut len = 0u32;
    // SAFETY: the first call only reports the size; the second fills a buffer of that size.
    unsafe {
        GetComputerNameExW(format, std::ptr::null_mut(), &mut len);
        if len == 0 {
            return String::new();
        }
        let mut buf = vec![0u16; len as usize + 1];
        let mut n = buf.len() as u32;
        if GetComputerNameExW(format, buf.as_mut_ptr(), &mut n) == 0 {
            return String::new();
        }
        String::from_utf16_lossy(&buf[..(n as usize).min(buf.len())])
    }
}

/// The host name as Go's `os.Hostname()` gives it on Windows, and so rpc-go's `Hostname (OS)`:
/// `ComputerNamePhysicalDnsHostname`.
pub fn node_name() -> String {
    computer_name(ComputerNamePhysicalDnsHostname)
}

/// The DNS host name of this computer (its first label).
pub fn hostname() -> String {
    let h = computer_name(ComputerNameDnsHostname);
    h.split('.').next().unwrap_or_default().to_string()
}

/// The primary DNS suffix, else the first connection-specific suffix of an up adapter.
pub fn dns_suffix() -> String {
    adapters::dns_suffix(&computer_name(ComputerNameDnsDomain), &list_adapters())
}

/// The first IPv4 address of an up, non-loopback adapter whose MAC is `mac`.
pub fn ipv4_for_mac(mac: &[u8; 6]) -> Option<Ipv4Addr> {
    adapters::ipv4_for_mac(&list_adapters(), mac)
}

fn wide_to_string(p: *const u16) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: `p` is a NUL-terminated UTF-16 string inside the adapters buffer.
    unsafe {
        let mut len = 0;
        while *p.add(len) != 0 {
            len += 1;
        }
        String::from_utf16_lossy(std::slice::from_raw_parts(p, len))
    }
}

/// Every adapter with its IPv4 unicast addresses; empty when the call fails.
fn list_adapters() -> Vec<Adapter> {
    let flags = GAA_FLAG_SKIP_ANYCAST | GAA_FLAG_SKIP_MULTICAST | GAA_FLAG_SKIP_DNS_SERVER;
    let mut size = 16 * 1024u32;
    for _ in 0..4 {
        // u64 elements: the buffer is aligned for IP_ADAPTER_ADDRESSES_LH.
        let mut buf = vec![0u64; (size as usize).div_ceil(8)];
        let first = buf.as_mut_ptr() as *mut IP_ADAPTER_ADDRESSES_LH;
        // SAFETY: the buffer is `size` bytes and aligned; on success it holds a linked list of
        // adapters whose pointers all point inside it, read before the buffer is dropped.
        let rc = unsafe {
            GetAdaptersAddresses(AF_INET as u32, flags, std::ptr::null(), first, &mut size)
        };
        if rc == ERROR_BUFFER_OVERFLOW {
            continue;
        }
        if rc != 0 {
            tracing::debug!(error = rc, "GetAdaptersAddresses failed");
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut a = first as *const IP_ADAPTER_ADDRESSES_LH;
        // SAFETY: see above.
        unsafe {
            while !a.is_null() {
                let ad = &*a;
                let mac_len = (ad.PhysicalAddressLength as usize).min(ad.PhysicalAddress.len());
                let mut ipv4 = Vec::new();
                let mut u = ad.FirstUnicastAddress as *const IP_ADAPTER_UNICAST_ADDRESS_LH;
                while !u.is_null() {
                    let ua = &*u;
                    let sa = ua.Address.lpSockaddr;
                    if !sa.is_null() && (*sa).sa_family == AF_INET {
                        let sin = &*(sa as *const SOCKADDR_IN);
                        ipv4.push(Ipv4Addr::from(u32::from_be(sin.sin_addr.S_un.S_addr)));
                    }
                    u = ua.Next;
                }
                out.push(Adapter {
                    mac: ad.PhysicalAddress[..mac_len].to_vec(),
                    up: ad.OperStatus == IfOperStatusUp,
                    loopback: ad.IfType == IF_TYPE_SOFTWARE_LOOPBACK,
                    ipv4,
                    dns_suffix: wide_to_string(ad.DnsSuffix),
                });
                a = ad.Next;
            }
        }
        return out;
    }
    Vec::new()
}

/// A file's DACL (`None` for a NULL DACL, which grants everyone everything).
pub fn file_dacl(path: &std::path::Path) -> std::io::Result<Option<Vec<Ace>>> {
    use windows_sys::Win32::Foundation::LocalFree;
    use windows_sys::Win32::Security::Authorization::{
        ConvertSidToStringSidW, GetNamedSecurityInfoW, SE_FILE_OBJECT,
    };
    use windows_sys::Win32::Security::{
        GetAce, ACCESS_ALLOWED_ACE, ACL, DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR,
    };
    let wide = to_wide(&path.as_os_str().to_string_lossy());
    let mut dacl: *mut ACL = std::ptr::null_mut();
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: the DACL points into the security descriptor, which is read and then freed with
    // LocalFree; each ACE is read within the DACL's AceCount, and each SID string freed.
    unsafe {
        let rc = GetNamedSecurityInfoW(
            wide.as_ptr(),
            SE_FILE_OBJECT,
            DACL_SECURITY_INFORMATION,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut dacl,
            std::ptr::null_mut(),
            &mut sd,
        );
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc as i32));
        }
        let result = if dacl.is_null() {
            None
        } else {
            let mut aces = Vec::new();
            for i in 0..u32::from((*dacl).AceCount) {
                let mut ace: *mut std::ffi::c_void = std::ptr::null_mut();
                if GetAce(dacl, i, &mut ace) == 0 || ace.is_null() {
                    continue;
                }
                // Allowed and denied ACEs share this layout: header, mask, then the SID.
                let a = ace as *const ACCESS_ALLOWED_ACE;
                let sid_ptr = std::ptr::addr_of!((*a).SidStart) as *mut std::ffi::c_void;
                let mut text: windows_sys::core::PWSTR = std::ptr::null_mut();
                let sid = if ConvertSidToStringSidW(sid_ptr, &mut text) != 0 {
                    let s = wide_to_string(text);
                    LocalFree(text as *mut std::ffi::c_void);
                    s
                } else {
                    String::new()
                };
                aces.push(Ace {
                    kind: (*a).Header.AceType,
                    mask: (*a).Mask,
                    sid,
                });
            }
            Some(aces)
        };
        LocalFree(sd);
        Ok(result)
    }
}

/// The SID (as text) of the user this process runs as: SYSTEM for the service.
pub fn current_user_sid() -> std::io::Result<String> {
    use windows_sys::Win32::Foundation::{CloseHandle, LocalFree, HANDLE};
    use windows_sys::Win32::Security::Authorization::ConvertSidToStringSidW;
    use windows_sys::Win32::Security::{GetTokenInformation, TokenUser, TOKEN_QUERY, TOKEN_USER};
    use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};
    // SAFETY: the token handle is closed before returning; TOKEN_USER is read from a u64-aligned
    // buffer of the size the first call reported, and its SID string is copied, then freed.
    unsafe {
        let mut token: HANDLE = std::ptr::null_mut();
        if OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) == 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut len = 0u32;
        GetTokenInformation(token, TokenUser, std::ptr::null_mut(), 0, &mut len);
        let mut buf = vec![0u64; (len as usize).div_ceil(8).max(1)];
        let ok = GetTokenInformation(
            token,
            TokenUser,
            buf.as_mut_ptr() as *mut std::ffi::c_void,
            (buf.len() * 8) as u32,
            &mut len,
        );
        let err = std::io::Error::last_os_error();
        CloseHandle(token);
        if ok == 0 {
            return Err(err);
        }
        let user = &*(buf.as_ptr() as *const TOKEN_USER);
        let mut text: windows_sys::core::PWSTR = std::ptr::null_mut();
        if ConvertSidToStringSidW(user.User.Sid, &mut text) == 0 {
            return Err(std::io::Error::last_os_error());
        }
        let s = wide_to_string(text);
        LocalFree(text as *mut std::ffi::c_void);
        Ok(s)
    }
}

/// Gives `path` the private DACL of [`super::acl::private_sddl`] (SYSTEM, Administrators and this
/// process's user; nothing inherited): the counterpart of `chmod 600` (`700` for a directory).
pub fn make_private(path: &std::path::Path) -> std::io::Result<()> {
    use windows_sys::Win32::Foundation::LocalFree;
    use windows_sys::Win32::Security::Authorization::{
        ConvertStringSecurityDescriptorToSecurityDescriptorW, SetNamedSecurityInfoW,
        SDDL_REVISION_1, SE_FILE_OBJECT,
    };
    use windows_sys::Win32::Security::{
        GetSecurityDescriptorDacl, ACL, DACL_SECURITY_INFORMATION,
        PROTECTED_DACL_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR,
    };
    let sddl = super::acl::private_sddl(&current_user_sid()?, path.is_dir());
    let sddl = to_wide(&sddl);
    let name = to_wide(&path.as_os_str().to_string_lossy());
    // SAFETY: the security descriptor comes from the SDDL parser and is freed with LocalFree after
    // the DACL inside it has been applied; both strings are NUL-terminated.
    unsafe {
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        if ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.as_ptr(),
            SDDL_REVISION_1,
            &mut sd,
            std::ptr::null_mut(),
        ) == 0
        {
            return Err(std::io::Error::last_os_error());
        }
        let (mut present, mut defaulted) = (0, 0);
        let mut dacl: *mut ACL = std::ptr::null_mut();
        let rc = if GetSecurityDescriptorDacl(sd, &mut present, &mut dacl, &mut defaulted) == 0 {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(1) as u32
        } else {
            SetNamedSecurityInfoW(
                name.as_ptr(),
                SE_FILE_OBJECT,
                DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                dacl,
                std::ptr::null(),
            )
        };
        LocalFree(sd);
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc as i32));
        }
        Ok(())
    }
}

/// A NUL-terminated UTF-16 string for the W functions (`heci::winheci` has its own: `os` sits
/// below `heci` and imports nothing of it).
fn to_wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}
