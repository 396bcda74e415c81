//! `amt-sim`'s firmware model: the ME clients a real machine enumerates, driven as pure state
//! machines (message in, messages out at a time), with one handle type shared by every front end:
//! the in-process device, the Unix socket server and the FUSE device file.

pub mod amt;
pub mod amthi;
pub mod certs;
pub mod cli;
pub mod clients;
pub mod faults;
#[cfg(target_os = "linux")]
pub mod fuse;
pub mod lme;
pub mod profile;
pub mod server;
pub mod tls;
pub mod usb_setup;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::heci::{self, errno, guid, ClientProperties, Guid, HeciError, MeiConnection, MeiDevice};
use faults::FaultPlan;
pub use profile::DeviceProfile;

/// How long connects answer ENODEV after a simulated ME reset.
pub const RESET_WINDOW: Duration = Duration::from_millis(200);

/// A message a client session wants delivered to the host, not before `at`.
pub struct Outgoing {
    pub at: Instant,
    pub bytes: Vec<u8>,
}

/// One connected ME client as the firmware sees it.
pub trait ClientSession: Send {
    /// A message from the host. Replies are pushed to `out`.
    fn on_message(
        &mut self,
        fw: &mut FirmwareCore,
        msg: &[u8],
        now: Instant,
        out: &mut Vec<Outgoing>,
    );
    /// The host connected; the client may speak first (LME starts its APF session).
    fn on_connect(&mut self, _fw: &mut FirmwareCore, _now: Instant, _out: &mut Vec<Outgoing>) {}
}

/// The firmware's mutable state, behind the [`Firmware`] lock.
pub struct FirmwareCore {
    pub profile: DeviceProfile,
    pub faults: FaultPlan,
    pub started: Instant,
    state_path: Option<PathBuf>,
    generation: u64,
    resetting_until: Option<Instant>,
    connections: HashMap<String, u32>,
    messages: u64,
    dirty: bool,
    /// The AMT web server's transient state (nonces, enumeration contexts, the chain being added).
    pub web: amt::WebState,
    /// The UPID feature state (FeatureStateSet). Starts disabled and is not persisted: UNCONFIRMED
    /// what real firmware keeps across resets; starting disabled makes clients enable it first, as
    /// rpc-go does.
    pub upid_feature_enabled: bool,
}

impl FirmwareCore {
    /// Marks the profile changed; it is written to the state file after the current message.
    pub fn changed(&mut self) {
        self.dirty = true;
    }

    /// Writes the state file now if anything changed.
    pub fn save_state(&mut self) {
        self.save_if_dirty();
    }

    fn save_if_dirty(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        if let Some(path) = &self.state_path {
            if let Err(e) = save_state(path, &self.profile) {
                tracing::error!(path = %path.display(), error = %e, "could not write the state file");
            }
        }
    }
}

/// Writes the state atomically: a temporary file beside it, then a rename.
pub fn save_state(path: &std::path::Path, p: &DeviceProfile) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(p).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, path)
}

/// The simulated ME. Cheap to clone; all clones share one firmware.
#[derive(Clone)]
pub struct Firmware {
    core: Arc<Mutex<FirmwareCore>>,
}

impl Firmware {
    pub fn new(
        mut profile: DeviceProfile,
        faults: FaultPlan,
        state_path: Option<PathBuf>,
    ) -> Firmware {
        if profile.lsa_password.is_empty() {
            profile.lsa_password = random_password();
        }
        if profile.digest_realm.is_empty() {
            profile.digest_realm = amt::new_realm(&mut rand::thread_rng());
        }
        // A state written before a class existed gets that class's factory instances; the
        // classes it has keep what it holds.
        let mut factory = profile.clone();
        factory.instances.clear();
        amt::seed_instances(&mut factory);
        for (class, instances) in factory.instances {
            profile.instances.entry(class).or_insert(instances);
        }
        let mut core = FirmwareCore {
            profile,
            faults,
            started: Instant::now(),
            state_path,
            generation: 0,
            resetting_until: None,
            connections: HashMap::new(),
            messages: 0,
            dirty: true,
            web: amt::WebState::default(),
            upid_feature_enabled: false,
        };
        core.save_if_dirty();
        Firmware {
            core: Arc::new(Mutex::new(core)),
        }
    }

    /// The in-process default, a named built-in profile, or a profile file.
    pub fn from_profile_name(name: Option<&str>) -> Result<Firmware, String> {
        let p = profile::load(name.unwrap_or(profile::DEFAULT_PROFILE))?;
        Ok(Firmware::new(p, FaultPlan::new(Vec::new()), None))
    }

    pub fn lock(&self) -> MutexGuard<'_, FirmwareCore> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn profile_name(&self) -> String {
        self.lock().profile.name.clone()
    }

    /// Simulates an ME reset: every open handle is dead, connects fail for a moment.
    pub fn reset(&self) {
        let mut c = self.lock();
        c.generation += 1;
        c.resetting_until = Some(Instant::now() + RESET_WINDOW);
        c.connections.clear();
        tracing::info!(generation = c.generation, "simulated ME reset");
    }

    /// Opens a handle and connects it to `client`, or answers the errno the kernel would give.
    pub fn connect(&self, client: Guid) -> Result<SimHandle, i32> {
        let mut c = self.lock();
        let now = Instant::now();
        if let Some(t) = c.resetting_until {
            if now < t {
                return Err(errno::ENODEV);
            }
            c.resetting_until = None;
        }
        let name = match client.client_name() {
            Some(n) => n.to_ascii_lowercase(),
            None => return Err(errno::ENOTTY),
        };
        let spec = c.profile.client(&name).cloned().ok_or(errno::ENOTTY)?;
        if c.faults.connect_busy(&name) {
            tracing::debug!(client = %name, "fault: EBUSY on connect");
            return Err(errno::EBUSY);
        }
        let open = c.connections.entry(name.clone()).or_insert(0);
        if *open >= spec.max_connections {
            return Err(errno::EBUSY);
        }
        *open += 1;
        let mut session: Box<dyn ClientSession> = match name.as_str() {
            "amthi" => Box::new(amthi::AmthiSession),
            "watchdog" => Box::new(clients::WatchdogSession),
            "mkhi" => Box::new(clients::MkhiSession),
            "upid" => Box::new(clients::UpidSession),
            "lme" => Box::new(lme::LmeSession::new(&c.profile, spec.max_msg_length)),
            _ => Box::new(clients::SilentSession),
        };
        let props = ClientProperties {
            max_msg_length: spec.max_msg_length,
            protocol_version: spec.protocol_version,
        };
        tracing::debug!(client = %name, mtu = props.max_msg_length, "simulated connect");
        let mut first = Vec::new();
        session.on_connect(&mut c, Instant::now(), &mut first);
        Ok(SimHandle {
            inner: Arc::new(HandleShared {
                state: Mutex::new(HandleState {
                    session,
                    outbox: first.into(),
                    closed: false,
                }),
                ready: Condvar::new(),
                notify: Mutex::new(None),
            }),
            fw: self.clone(),
            client: name,
            generation: c.generation,
            props,
        })
    }
}

fn random_password() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::thread_rng();
    (0..32)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

struct HandleState {
    session: Box<dyn ClientSession>,
    outbox: VecDeque<Outgoing>,
    closed: bool,
}

struct HandleShared {
    state: Mutex<HandleState>,
    ready: Condvar,
    /// Called when a message is queued (FUSE poll notifications).
    notify: Mutex<Option<Box<dyn Fn() + Send>>>,
}

/// Why a read on a handle did not return a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// The errno the kernel would give (ENODEV after an ME reset).
    Errno(i32),
    /// The deadline passed.
    TimedOut,
    /// Non-blocking read with nothing queued (EAGAIN).
    WouldBlock,
}

/// One open, connected file handle on the simulated device.
#[derive(Clone)]
pub struct SimHandle {
    inner: Arc<HandleShared>,
    fw: Firmware,
    client: String,
    generation: u64,
    props: ClientProperties,
}

impl SimHandle {
    pub fn properties(&self) -> ClientProperties {
        self.props
    }

    pub fn client(&self) -> &str {
        &self.client
    }

    fn alive(&self) -> bool {
        self.fw.lock().generation == self.generation
    }

    /// Registers a callback run whenever a message becomes readable.
    pub fn set_notify(&self, f: Box<dyn Fn() + Send>) {
        *self.inner.notify.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    /// One whole message from the host.
    pub fn write(&self, msg: &[u8]) -> Result<(), i32> {
        if msg.len() > self.props.max_msg_length as usize {
            return Err(errno::EFBIG);
        }
        let mut st = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.closed {
            return Err(errno::ENODEV);
        }
        let now = Instant::now();
        let mut out = Vec::new();
        {
            let mut fw = self.fw.lock();
            if fw.generation != self.generation {
                return Err(errno::ENODEV);
            }
            if msg.is_empty() {
                return Ok(());
            }
            fw.messages += 1;
            let count = fw.messages;
            st.session.on_message(&mut fw, msg, now, &mut out);
            fw.save_if_dirty();
            if fw.faults.reset_after() == Some(count) {
                drop(fw);
                // The reset happens after the firmware consumed the message and before it answers.
                self.fw.reset();
                self.inner.ready.notify_all();
                return Ok(());
            }
        }
        if !out.is_empty() {
            st.outbox.extend(out);
            drop(st);
            self.inner.ready.notify_all();
            if let Some(f) = self
                .inner
                .notify
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
            {
                f();
            }
        }
        Ok(())
    }

    /// Whether a read would return a message now (for poll).
    pub fn readable(&self) -> bool {
        let st = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        st.outbox.front().is_some_and(|m| m.at <= Instant::now())
    }

    /// When the next queued message becomes readable, if one is queued.
    pub fn next_ready_at(&self) -> Option<Instant> {
        let st = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        st.outbox.front().map(|m| m.at)
    }

    /// Whether the handle died (ME reset or close): poll reports POLLERR.
    pub fn broken(&self) -> bool {
        !self.alive() || self.inner.state.lock().map(|s| s.closed).unwrap_or(true)
    }

    /// Waits until a message is readable, the handle breaks, or `deadline` passes; true when readable.
    pub fn wait_readable(&self, deadline: Instant) -> bool {
        let mut st = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let now = Instant::now();
            let head_at = st.outbox.front().map(|m| m.at);
            if head_at.is_some_and(|at| at <= now) {
                return true;
            }
            if st.closed || now >= deadline || !self.alive() {
                return false;
            }
            let mut wake = deadline.min(now + Duration::from_millis(50));
            if let Some(at) = head_at {
                wake = wake.min(at);
            }
            let (g, _) = self
                .inner
                .ready
                .wait_timeout(st, wake.saturating_duration_since(now))
                .unwrap_or_else(|p| p.into_inner());
            st = g;
        }
    }

    /// One whole message for the host, waiting until `deadline` (None: forever; `nonblock`: not at all).
    pub fn read(&self, deadline: Option<Instant>, nonblock: bool) -> Result<Vec<u8>, ReadError> {
        let mut st = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if !self.alive() {
                return Err(ReadError::Errno(errno::ENODEV));
            }
            if st.closed {
                return Err(ReadError::Errno(errno::ENODEV));
            }
            let now = Instant::now();
            let head_at = st.outbox.front().map(|m| m.at);
            if let Some(at) = head_at {
                if at <= now {
                    let m = st.outbox.pop_front().expect("head exists");
                    if m.bytes.len() > self.props.max_msg_length as usize {
                        // The kernel discards a message larger than the receive buffer.
                        return Err(ReadError::Errno(errno::EMSGSIZE));
                    }
                    return Ok(m.bytes);
                }
            }
            if nonblock {
                return Err(ReadError::WouldBlock);
            }
            if let Some(d) = deadline {
                if now >= d {
                    return Err(ReadError::TimedOut);
                }
            }
            // Wake for the earliest of: the head message's time, the deadline, a 50 ms tick (to
            // notice an ME reset or a close).
            let mut wake = now + Duration::from_millis(50);
            if let Some(at) = head_at {
                wake = wake.min(at);
            }
            if let Some(d) = deadline {
                wake = wake.min(d);
            }
            let (g, _) = self
                .inner
                .ready
                .wait_timeout(st, wake.saturating_duration_since(now))
                .unwrap_or_else(|p| p.into_inner());
            st = g;
        }
    }

    /// Closes the handle (the file was closed): frees the client's connection slot.
    pub fn close(&self) {
        let mut st = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.closed {
            return;
        }
        st.closed = true;
        drop(st);
        self.inner.ready.notify_all();
        let mut fw = self.fw.lock();
        if fw.generation == self.generation {
            if let Some(n) = fw.connections.get_mut(&self.client) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

/// The simulator inside this process (`--device sim`).
pub struct InProcessDevice {
    fw: Firmware,
    /// Tells instances apart within one process (see [`MeiDevice::ephemeral`]).
    instance: u64,
}

impl InProcessDevice {
    pub fn new(fw: Firmware) -> InProcessDevice {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        InProcessDevice {
            fw,
            instance: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }
}

impl MeiDevice for InProcessDevice {
    fn describe(&self) -> String {
        format!("in-process simulator (profile {})", self.fw.profile_name())
    }

    fn simulated_profile(&self) -> Option<String> {
        Some(self.fw.profile_name())
    }

    fn simulator_tls_root(&self) -> Option<Vec<u8>> {
        Some(tls::odca_chain().root_der().to_vec())
    }

    fn ephemeral(&self) -> Option<String> {
        Some(format!("in-process simulator #{}", self.instance))
    }

    fn connect_once(&self, client: Guid) -> Result<Box<dyn MeiConnection>, HeciError> {
        let label = heci::client_label(client);
        match self.fw.connect(client) {
            Ok(handle) => Ok(Box::new(InProcessConnection { handle, label })),
            Err(errno) => Err(heci::error_from_errno(errno, &label, "sim", true, 0)),
        }
    }
}

struct InProcessConnection {
    handle: SimHandle,
    label: String,
}

impl MeiConnection for InProcessConnection {
    fn properties(&self) -> ClientProperties {
        self.handle.properties()
    }

    /// Closes the simulated handle: the firmware frees the client, a blocked read returns.
    fn interrupt(&self) {
        self.handle.close();
    }

    fn send(&self, msg: &[u8]) -> Result<(), HeciError> {
        self.handle.write(msg).map_err(|e| {
            heci::error_from_errno(
                e,
                &self.label,
                "sim",
                false,
                self.handle.props.max_msg_length,
            )
        })
    }

    fn recv(&self, deadline: Instant) -> Result<Vec<u8>, HeciError> {
        self.handle
            .read(Some(deadline), false)
            .map_err(|e| match e {
                ReadError::Errno(n) => heci::error_from_errno(
                    n,
                    &self.label,
                    "sim",
                    false,
                    self.handle.props.max_msg_length,
                ),
                ReadError::TimedOut | ReadError::WouldBlock => HeciError::Timeout {
                    client: self.label.clone(),
                    timeout_ms: 0,
                },
            })
    }
}

impl Drop for InProcessConnection {
    fn drop(&mut self) {
        self.handle.close();
    }
}

/// The ME client GUIDs the simulator knows by name.
pub fn client_guid(name: &str) -> Option<Guid> {
    guid::by_name(name)
}
