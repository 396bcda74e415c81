//! The Windows backend: the Intel MEI driver's device interface, as rpc-go, MicroLMS and metee use
//! it (transport.md §2, rpc-go.md §6.3).
//!
//! The device is found through SetupAPI by `GUID_DEVINTERFACE_HECI`; every client connection opens
//! a fresh handle for overlapped I/O, connects with `IOCTL_HECI_CONNECT_CLIENT`, and then moves one
//! message per `ReadFile` / `WriteFile`. Every wait has a deadline; on timeout the operation is
//! cancelled with `CancelIoEx` and the driver gets a grace period to finish it. The codes, layouts
//! and error mapping live in [`super::winheci`], where they are unit-tested on any OS.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use windows_sys::core::GUID;
use windows_sys::Win32::Devices::DeviceAndDriverInstallation::{
    SetupDiDestroyDeviceInfoList, SetupDiEnumDeviceInterfaces, SetupDiGetClassDevsW,
    SetupDiGetDeviceInterfaceDetailW, DIGCF_DEVICEINTERFACE, DIGCF_PRESENT,
    SP_DEVICE_INTERFACE_DATA, SP_DEVICE_INTERFACE_DETAIL_DATA_W,
};
use windows_sys::Win32::Foundation::{
    CloseHandle, GetLastError, GENERIC_READ, GENERIC_WRITE, HANDLE, INVALID_HANDLE_VALUE,
    WAIT_OBJECT_0,
};
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, ReadFile, WriteFile, FILE_FLAG_OVERLAPPED, FILE_SHARE_READ, FILE_SHARE_WRITE,
    OPEN_EXISTING,
};
use windows_sys::Win32::System::Threading::{CreateEventW, ResetEvent, WaitForSingleObject};
use windows_sys::Win32::System::IO::{
    CancelIoEx, DeviceIoControl, GetOverlappedResult, OVERLAPPED,
};

use super::winheci::{
    self, decode_connect_output, decode_version, error_from_win32, wait_ms, win32, DriverVersion,
    Stage, CANCEL_GRACE, CONNECT_OUT_LEN, GUID_DEVINTERFACE_HECI, IOCTL_HECI_CONNECT_CLIENT,
    IOCTL_HECI_GET_VERSION, IOCTL_TIMEOUT, VERSION_OUT_LEN, WRITE_TIMEOUT,
};
use super::{client_label, ClientProperties, Guid, HeciError, MeiConnection, MeiDevice};

/// The interface GUID as the SetupAPI structure (its fields are the wire form's LE integers).
fn sys_guid(g: Guid) -> GUID {
    let b = g.0;
    GUID {
        data1: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        data2: u16::from_le_bytes([b[4], b[5]]),
        data3: u16::from_le_bytes([b[6], b[7]]),
        data4: [b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]],
    }
}

fn last_error() -> u32 {
    // SAFETY: reads the calling thread's last-error value.
    unsafe { GetLastError() }
}

/// The device interface paths of every present Intel MEI device (usually one), or the Win32 error
/// of SetupAPI itself.
pub fn interface_paths() -> Result<Vec<String>, u32> {
    let guid = sys_guid(GUID_DEVINTERFACE_HECI);
    // SAFETY: plain SetupAPI calls with valid pointers to locals; the set is destroyed on every
    // path out, and the detail buffer is u64-aligned and as large as SetupAPI asked for.
    unsafe {
        let set = SetupDiGetClassDevsW(
            &guid,
            std::ptr::null(),
            std::ptr::null_mut(),
            DIGCF_PRESENT | DIGCF_DEVICEINTERFACE,
        );
        if set == INVALID_HANDLE_VALUE as isize {
            return Err(last_error());
        }
        let mut paths = Vec::new();
        let mut result = Ok(());
        for index in 0.. {
            let mut data = SP_DEVICE_INTERFACE_DATA {
                cbSize: std::mem::size_of::<SP_DEVICE_INTERFACE_DATA>() as u32,
                ..Default::default()
            };
            if SetupDiEnumDeviceInterfaces(set, std::ptr::null(), &guid, index, &mut data) == 0 {
                let e = last_error();
                if e != win32::ERROR_NO_MORE_ITEMS {
                    result = Err(e);
                }
                break;
            }
            let mut need = 0u32;
            SetupDiGetDeviceInterfaceDetailW(
                set,
                &data,
                std::ptr::null_mut(),
                0,
                &mut need,
                std::ptr::null_mut(),
            );
            if need < 8 {
                continue;
            }
            let mut buf = vec![0u64; (need as usize).div_ceil(8)];
            let detail = buf.as_mut_ptr() as *mut SP_DEVICE_INTERFACE_DETAIL_DATA_W;
            (*detail).cbSize = std::mem::size_of::<SP_DEVICE_INTERFACE_DETAIL_DATA_W>() as u32;
            if SetupDiGetDeviceInterfaceDetailW(
                set,
                &data,
                detail,
                need,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            ) == 0
            {
                continue;
            }
            let start = std::ptr::addr_of!((*detail).DevicePath) as *const u16;
            let chars = (need as usize - 4) / 2;
            paths.push(winheci::path_from_wide(std::slice::from_raw_parts(
                start, chars,
            )));
        }
        SetupDiDestroyDeviceInfoList(set);
        result.map(|()| paths)
    }
}

/// A Win32 handle that is closed on drop.
struct Owned(HANDLE);

// SAFETY: kernel handles may be used and closed from any thread.
unsafe impl Send for Owned {}
unsafe impl Sync for Owned {}

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: the handle is valid and owned by this value only.
        unsafe {
            CloseHandle(self.0);
        }
    }
}

/// One kind of overlapped operation on a handle (ioctl, read or write): its own manual-reset event,
/// and one operation at a time.
struct Lane {
    event: HANDLE,
    busy: Mutex<()>,
    /// A cancelled operation the driver never finished: its buffer and event were leaked to keep
    /// them valid for the driver, and the lane takes no more work.
    stuck: AtomicBool,
}

// SAFETY: the event handle is used from one thread at a time (under `busy`).
unsafe impl Send for Lane {}
unsafe impl Sync for Lane {}

impl Lane {
    fn new() -> Result<Lane, u32> {
        // SAFETY: creates an unnamed manual-reset event, initially not signalled.
        let event = unsafe { CreateEventW(std::ptr::null(), 1, 0, std::ptr::null()) };
        if event.is_null() {
            return Err(last_error());
        }
        Ok(Lane {
            event,
            busy: Mutex::new(()),
            stuck: AtomicBool::new(false),
        })
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        if !self.stuck.load(Ordering::SeqCst) {
            // SAFETY: no operation is pending on this event (it completed or was cancelled).
            unsafe {
                CloseHandle(self.event);
            }
        }
    }
}

/// The buffers and OVERLAPPED of one operation, kept together so they can outlive a cancelled
/// operation the driver does not finish.
struct Pending {
    ov: OVERLAPPED,
    input: Vec<u8>,
    output: Vec<u8>,
}

enum Failure {
    Win32(u32),
    TimedOut,
    Stuck,
}

/// Runs one overlapped operation until it completes or `timeout` passes, then cancels it. When
/// `interrupted` is given and already set once the operation is pending, it is cancelled at once:
/// an interrupt that came before the operation started had nothing to cancel.
fn run(
    file: HANDLE,
    lane: &Lane,
    timeout: Duration,
    input: Vec<u8>,
    out_len: usize,
    interrupted: Option<&AtomicBool>,
    start: impl FnOnce(HANDLE, &mut Pending) -> i32,
) -> Result<Vec<u8>, Failure> {
    let _one = lane.busy.lock().unwrap_or_else(|p| p.into_inner());
    if lane.stuck.load(Ordering::SeqCst) {
        return Err(Failure::Stuck);
    }
    // SAFETY: the OVERLAPPED and buffers live in a Box that is either kept until the operation
    // has completed (signalled event) or leaked; the handle and event are valid for this call.
    unsafe {
        ResetEvent(lane.event);
        let mut p = Box::new(Pending {
            ov: std::mem::zeroed(),
            input,
            output: vec![0u8; out_len],
        });
        p.ov.hEvent = lane.event;
        if start(file, &mut p) == 0 {
            let e = last_error();
            if e != win32::ERROR_IO_PENDING {
                return Err(Failure::Win32(e));
            }
            if interrupted.is_some_and(|i| i.load(Ordering::SeqCst)) {
                CancelIoEx(file, &p.ov);
            }
        }
        let mut timed_out = false;
        if WaitForSingleObject(lane.event, wait_ms(timeout)) != WAIT_OBJECT_0 {
            timed_out = true;
            CancelIoEx(file, &p.ov);
            if WaitForSingleObject(lane.event, wait_ms(CANCEL_GRACE)) != WAIT_OBJECT_0 {
                lane.stuck.store(true, Ordering::SeqCst);
                Box::leak(p);
                return Err(Failure::Stuck);
            }
        }
        let mut n = 0u32;
        // The event is signalled: this does not block (bWait only avoids ERROR_IO_INCOMPLETE).
        if GetOverlappedResult(file, &p.ov, &mut n, 1) == 0 {
            let e = last_error();
            return Err(if timed_out && e == win32::ERROR_OPERATION_ABORTED {
                Failure::TimedOut
            } else {
                Failure::Win32(e)
            });
        }
        // Completed, possibly just as the deadline passed: the data is good.
        let mut out = std::mem::take(&mut p.output);
        out.truncate(n as usize);
        Ok(out)
    }
}

/// An open handle to the driver with its three lanes.
struct DriverHandle {
    file: Owned,
    ioctl: Lane,
    read: Lane,
    write: Lane,
}

impl DriverHandle {
    fn open(path: &str, client: &str) -> Result<DriverHandle, HeciError> {
        let wide = winheci::to_wide(path);
        // SAFETY: a NUL-terminated path; the returned handle is owned below.
        let h = unsafe {
            CreateFileW(
                wide.as_ptr(),
                GENERIC_READ | GENERIC_WRITE,
                FILE_SHARE_READ | FILE_SHARE_WRITE,
                std::ptr::null(),
                OPEN_EXISTING,
                FILE_FLAG_OVERLAPPED,
                std::ptr::null_mut(),
            )
        };
        if h == INVALID_HANDLE_VALUE {
            return Err(error_from_win32(last_error(), Stage::Open, client, path, 0));
        }
        let file = Owned(h);
        let lane = || Lane::new().map_err(|e| error_from_win32(e, Stage::Open, client, path, 0));
        Ok(DriverHandle {
            file,
            ioctl: lane()?,
            read: lane()?,
            write: lane()?,
        })
    }

    fn ioctl(&self, code: u32, input: Vec<u8>, out_len: usize) -> Result<Vec<u8>, Failure> {
        run(
            self.file.0,
            &self.ioctl,
            IOCTL_TIMEOUT,
            input,
            out_len,
            None,
            |file, p| {
                let mut n = 0u32;
                // SAFETY: the buffers and OVERLAPPED are in `p`, which outlives the operation.
                unsafe {
                    DeviceIoControl(
                        file,
                        code,
                        if p.input.is_empty() {
                            std::ptr::null()
                        } else {
                            p.input.as_ptr() as *const c_void
                        },
                        p.input.len() as u32,
                        p.output.as_mut_ptr() as *mut c_void,
                        p.output.len() as u32,
                        &mut n,
                        &mut p.ov,
                    )
                }
            },
        )
    }
}

/// The Intel MEI driver, at a device interface path.
pub struct WindowsMeiDevice {
    path: String,
}

impl WindowsMeiDevice {
    /// The first present HECI device interface (as rpc-go takes index 0).
    pub fn discover() -> Result<WindowsMeiDevice, HeciError> {
        let tried = format!(
            "the Intel MEI driver's device interface {{{}}}",
            GUID_DEVINTERFACE_HECI
        );
        match interface_paths() {
            Ok(paths) => match paths.into_iter().next() {
                Some(path) => Ok(WindowsMeiDevice { path }),
                None => Err(HeciError::NoDevice {
                    tried: format!("{tried}: SetupAPI lists none"),
                }),
            },
            Err(e) => Err(HeciError::NoDevice {
                tried: format!("{tried}: SetupAPI failed with {}", win32::describe(e)),
            }),
        }
    }

    /// A device interface path given with `--device`.
    pub fn at_path(path: String) -> WindowsMeiDevice {
        WindowsMeiDevice { path }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// The driver's version (`IOCTL_HECI_GET_VERSION`), for `doctor`.
    pub fn driver_version(&self) -> Result<DriverVersion, HeciError> {
        let h = DriverHandle::open(&self.path, "driver")?;
        match h.ioctl(IOCTL_HECI_GET_VERSION, Vec::new(), VERSION_OUT_LEN) {
            Ok(out) => decode_version(&out, out.len()).ok_or_else(|| HeciError::Os {
                client: "driver".into(),
                op: "DeviceIoControl(GET_VERSION)",
                errno: format!("{} bytes returned", out.len()),
            }),
            Err(f) => Err(failure(
                f,
                Stage::Connect,
                "driver",
                &self.path,
                0,
                IOCTL_TIMEOUT,
            )),
        }
    }
}

fn failure(
    f: Failure,
    stage: Stage,
    client: &str,
    path: &str,
    mtu: u32,
    waited: Duration,
) -> HeciError {
    match f {
        Failure::Win32(code) => error_from_win32(code, stage, client, path, mtu),
        Failure::TimedOut => HeciError::Timeout {
            client: client.to_string(),
            timeout_ms: waited.as_millis() as u64,
        },
        Failure::Stuck => HeciError::Os {
            client: client.to_string(),
            op: "CancelIoEx",
            errno: format!(
                "the driver did not finish a cancelled operation within {} s; the handle is abandoned",
                CANCEL_GRACE.as_secs()
            ),
        },
    }
}

impl MeiDevice for WindowsMeiDevice {
    fn describe(&self) -> String {
        format!("Intel MEI driver at {}", self.path)
    }

    fn connect_once(&self, client: Guid) -> Result<Box<dyn MeiConnection>, HeciError> {
        let label = client_label(client);
        let handle = DriverHandle::open(&self.path, &label)?;
        let out = handle
            .ioctl(
                IOCTL_HECI_CONNECT_CLIENT,
                winheci::connect_input(client).to_vec(),
                CONNECT_OUT_LEN,
            )
            .map_err(|f| failure(f, Stage::Connect, &label, &self.path, 0, IOCTL_TIMEOUT))?;
        let props = decode_connect_output(&out, out.len()).map_err(|e| HeciError::Os {
            client: label.clone(),
            op: "DeviceIoControl(CONNECT_CLIENT)",
            errno: e,
        })?;
        tracing::debug!(client = %label, mtu = props.max_msg_length, version = props.protocol_version, "connected through the Intel MEI driver");
        Ok(Box::new(WindowsMeiConnection {
            handle,
            props,
            client: label,
            path: self.path.clone(),
            interrupted: AtomicBool::new(false),
        }))
    }
}

/// One connected client on its own handle; closed (and disconnected) on drop.
pub struct WindowsMeiConnection {
    handle: DriverHandle,
    props: ClientProperties,
    client: String,
    path: String,
    /// Set by `interrupt`: every `recv` from then on answers Closed.
    interrupted: AtomicBool,
}

impl MeiConnection for WindowsMeiConnection {
    fn properties(&self) -> ClientProperties {
        self.props
    }

    /// Cancels the read pending in another thread (its wait ends with ERROR_OPERATION_ABORTED,
    /// answered as Closed), so that thread lets go of the handle now.
    fn interrupt(&self) {
        self.interrupted.store(true, Ordering::SeqCst);
        // SAFETY: a valid handle; a null OVERLAPPED cancels every I/O of this handle.
        unsafe {
            CancelIoEx(self.handle.file.0, std::ptr::null());
        }
    }

    fn send(&self, msg: &[u8]) -> Result<(), HeciError> {
        let mtu = self.props.max_msg_length;
        if msg.len() > mtu as usize {
            return Err(HeciError::MessageTooBig {
                client: self.client.clone(),
                len: msg.len(),
                max: mtu,
            });
        }
        let len = msg.len();
        let written = run(
            self.handle.file.0,
            &self.handle.write,
            WRITE_TIMEOUT,
            msg.to_vec(),
            0,
            None,
            |file, p| {
                let mut n = 0u32;
                // SAFETY: the message and OVERLAPPED are in `p`, which outlives the operation.
                unsafe {
                    WriteFile(
                        file,
                        p.input.as_ptr(),
                        p.input.len() as u32,
                        &mut n,
                        &mut p.ov,
                    )
                }
            },
        );
        match written {
            // `run` returns the output buffer truncated to the bytes moved; a write has none, so
            // a short write shows as an error from GetOverlappedResult or not at all. The driver
            // moves whole messages (one WriteFile = one ME message).
            Ok(_) => Ok(()),
            Err(f) => Err(failure(
                f,
                Stage::Write,
                &self.client,
                &self.path,
                mtu,
                WRITE_TIMEOUT,
            )),
        }
        .inspect(|()| tracing::trace!(client = %self.client, len, "message written"))
    }

    fn recv(&self, deadline: Instant) -> Result<Vec<u8>, HeciError> {
        let closed = || HeciError::Closed {
            client: self.client.clone(),
        };
        if self.interrupted.load(Ordering::SeqCst) {
            return Err(closed());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HeciError::Timeout {
                client: self.client.clone(),
                timeout_ms: 0,
            });
        }
        let mtu = self.props.max_msg_length;
        let msg = run(
            self.handle.file.0,
            &self.handle.read,
            left,
            Vec::new(),
            mtu as usize,
            Some(&self.interrupted),
            |file, p| {
                let mut n = 0u32;
                // SAFETY: the buffer and OVERLAPPED are in `p`, which outlives the operation.
                unsafe {
                    ReadFile(
                        file,
                        p.output.as_mut_ptr(),
                        p.output.len() as u32,
                        &mut n,
                        &mut p.ov,
                    )
                }
            },
        )
        .map_err(|f| {
            if self.interrupted.load(Ordering::SeqCst) {
                closed()
            } else {
                failure(f, Stage::Read, &self.client, &self.path, mtu, left)
            }
        })?;
        if msg.is_empty() {
            return Err(HeciError::Closed {
                client: self.client.clone(),
            });
        }
        Ok(msg)
    }
}
