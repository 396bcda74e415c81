//! What every WS-MAN command needs: the control mode, the right credentials, and a client on the
//! route to AMT (LMS or LME/APF), inside a small tokio runtime.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::amthi::{AmthiClient, ControlMode};
use crate::error::{AgentError, ExitCode};
use crate::heci::MeiDevice;
use crate::secret_source::SecretSource;
use crate::wsman::client::{Credentials, WsmanClient, WsmanOptions};
use crate::wsman::tls_stream::{wsman_endpoint, AmtTlsOptions};
use crate::wsman::transport::{LmsMode, Route, RouteOptions};

/// How to reach AMT and as whom.
#[derive(Args, Debug, Clone, Default)]
pub struct AmtConnArgs {
    /// Route to AMT's WS-MAN port: auto (LMS when it listens on 127.0.0.1, else LME/APF), only
    /// (LMS or fail), never (always LME/APF).
    #[arg(long, global = true, env = "AMT_AGENT_LMS", default_value = "auto", value_parser = parse_lms)]
    pub lms: LmsMode,
    /// LMS's port on 127.0.0.1, when not the standard 16992/16993.
    #[arg(long, global = true, env = "AMT_AGENT_LMS_PORT")]
    pub lms_port: Option<u16>,
    /// Digest user; default $$OsAdmin (from the ME) before activation, admin after.
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// The AMT password (prefer AMT_PASSWORD or --password-file: the command line is visible to others).
    #[arg(long, global = true)]
    pub password: Option<crate::secret::Secret>,
    /// A file holding the AMT password (first line; must not be readable by others).
    #[arg(long, global = true)]
    pub password_file: Option<std::path::PathBuf>,
    /// Accept any TLS certificate from AMT (AMT 19+ local port 16993). Unsafe: prefer --amt-ca-file.
    #[arg(long, global = true)]
    pub skip_amt_cert_check: bool,
    /// Extra trusted root for AMT's TLS certificate (PEM): for test and simulated AMTs only
    /// (`amt-sim serve --tls-root-out FILE`); real AMT chains to Intel's On-Die CA, built in.
    #[arg(long, global = true)]
    pub amt_ca_file: Vec<std::path::PathBuf>,
    /// Deadline for each WS-MAN request.
    #[arg(long, global = true, default_value = "30s", value_parser = crate::cli::parse_duration)]
    pub request_timeout: Duration,
    /// Where `configure tls` keeps the certificate AMT's TLS port must present (root-only).
    #[arg(long, global = true, env = "AMT_AGENT_TLS_PIN_DIR", default_value = super::tls_pin::DEFAULT_DIR)]
    pub tls_pin_dir: std::path::PathBuf,
}

impl AmtConnArgs {
    /// The store of TLS pins for `device`.
    pub fn pin_store(&self, device: &dyn MeiDevice) -> super::tls_pin::PinStore {
        let dir = if self.tls_pin_dir.as_os_str().is_empty() {
            std::path::Path::new(super::tls_pin::DEFAULT_DIR)
        } else {
            self.tls_pin_dir.as_path()
        };
        super::tls_pin::PinStore::for_device(device, &crate::os::expand_path(dir))
    }
}

fn parse_lms(s: &str) -> Result<LmsMode, String> {
    s.parse()
}

/// A connected WS-MAN client and the runtime that drives it.
pub struct AmtSession {
    pub runtime: tokio::runtime::Runtime,
    pub client: WsmanClient,
    pub control_mode: ControlMode,
    pub route: Route,
    /// The session runs TLS to port 16993.
    pub tls: bool,
    /// The certificate `configure tls` installed, when the session verifies against it.
    pub pin: Option<super::tls_pin::PinRecord>,
    /// A pending pin this TLS session verifies AMT by, made the pin at AMT's first answer.
    promote: Option<Pending>,
    next_id: u32,
}

impl AmtSession {
    /// Sends one typed call and decodes its answer (a non-zero ReturnValue is an error by name).
    pub fn call<T>(&mut self, call: crate::wsman::calls::Call<T>) -> Result<T, AgentError> {
        self.next_id += 1;
        let envelope = call.render(&self.next_id.to_string());
        let r = self.post(&envelope)?;
        Ok(call.decode_response(&r)?)
    }

    /// One POST; when a pinned TLS session cannot even reach port 16993, says why that may be.
    pub fn post(&mut self, envelope: &str) -> Result<crate::wsman::http::Response, AgentError> {
        use crate::apf::ApfError;
        use crate::wsman::client::WsmanError as ClientError;
        use crate::wsman::transport::RouteError;
        match self.runtime.block_on(self.client.post(envelope)) {
            Ok(r) => {
                if let Some((store, rec)) = self.promote.take() {
                    // AMT answered over TLS verified against the pending certificate: it is AMT's.
                    // AMT's answer stands whatever happens to the pin files: a failure to write
                    // them leaves the pending pin, for the next session to promote.
                    match store
                        .save(&rec)
                        .and_then(|()| store.pending().remove(&rec.uuid))
                    {
                        Ok(_) => tracing::info!(
                            uuid = %rec.uuid,
                            "AMT serves the certificate of a configure tls whose commit was not answered: it is pinned now"
                        ),
                        Err(e) => tracing::warn!(
                            uuid = %rec.uuid,
                            error = %e,
                            "AMT serves the pending TLS certificate, but the pin could not be stored; the next session tries again"
                        ),
                    }
                    self.pin = Some(rec);
                }
                Ok(r)
            }
            Err(e) => {
                let unreachable = matches!(
                    &e,
                    ClientError::Route(RouteError::Apf(ApfError::Refused { .. }))
                        | ClientError::Route(RouteError::LmsConnect { .. })
                        | ClientError::Route(RouteError::TlsHandshake { .. })
                );
                let err = AgentError::from(e);
                match &self.pin {
                    Some(p) if unreachable => Err(err.help(format!(
                        "amt-agent configured TLS on this AMT ({} mode, certificate {}) and now talks \
                         to it on 16993 only; if another tool turned TLS off or unprovisioned AMT, \
                         remove the pin file amt-tls-{}.json from the pin directory (--tls-pin-dir) and retry",
                        p.mode,
                        p.instance_id,
                        p.uuid.to_ascii_uppercase()
                    ))),
                    _ => Err(err),
                }
            }
        }
    }

    /// Sends one typed call, keeping apart what the transport failed (the outer error: AMT
    /// unreachable, timeout) and what the firmware answered (the inner result: a fault, a
    /// ReturnValue, rejected credentials), so a caller can give the latter its own exit code.
    pub fn try_call<T>(
        &mut self,
        call: crate::wsman::calls::Call<T>,
    ) -> Result<Result<T, crate::wsman::calls::WsmanError>, AgentError> {
        self.next_id += 1;
        let envelope = call.render(&self.next_id.to_string());
        let r = self.post(&envelope)?;
        Ok(call.decode_response(&r))
    }

    /// Switches the Digest user (after Setup: `admin` and the new password), keeping the nonce.
    pub fn set_credentials(&mut self, c: Credentials) {
        self.client.set_credentials(c);
    }
}

pub fn runtime() -> Result<tokio::runtime::Runtime, AgentError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            AgentError::new(
                ExitCode::GenericFailure,
                format!("cannot start the async runtime: {e}"),
            )
        })
}

/// Reads the control mode over AMTHI and picks the credentials: the local system account before
/// activation, `admin` and the AMT password after.
pub fn credentials(
    device: &Arc<dyn MeiDevice>,
    args: &AmtConnArgs,
) -> Result<(Credentials, ControlMode), AgentError> {
    let mut amthi = AmthiClient::new(device.clone());
    let mode = amthi.control_mode()?;
    let user = args.user.clone().unwrap_or_else(|| {
        if mode == ControlMode::None {
            crate::amthi::LSA_USERNAME.into()
        } else {
            "admin".into()
        }
    });
    if user == crate::amthi::LSA_USERNAME {
        let lsa = amthi.local_system_account()?;
        return Ok((Credentials::new(lsa.username, lsa.password), mode));
    }
    let source = SecretSource {
        what: "AMT password",
        flag: args.password.as_ref().map(crate::secret::Secret::expose),
        file: args.password_file.as_deref(),
        env: &["AMT_PASSWORD"],
    };
    let password = source.resolve(true)?.ok_or_else(|| {
        AgentError::new(
            ExitCode::MissingOrIncorrectPassword,
            format!(
                "the AMT password for user {user} is needed (the device is in {})",
                mode.text()
            ),
        )
        .help("set AMT_PASSWORD, or pass --password-file FILE")
    })?;
    Ok((Credentials::new(user, password), mode))
}

/// Opens the route to AMT and a client on it, with the credentials [`credentials`] picks.
pub fn connect(device: Arc<dyn MeiDevice>, args: &AmtConnArgs) -> Result<AmtSession, AgentError> {
    let (creds, control_mode) = credentials(&device, args)?;
    connect_as(device, args, creds, control_mode)
}

/// Opens the route to AMT and a client on it, as `creds`.
pub fn connect_as(
    device: Arc<dyn MeiDevice>,
    args: &AmtConnArgs,
    creds: Credentials,
    control_mode: ControlMode,
) -> Result<AmtSession, AgentError> {
    connect_with(device, args, creds, control_mode, &ExtraTls::default())
}

/// What a flow adds to the TLS options the command line gives: the AMT 19+ local ACM flow pins
/// AMT's leaf to START_CONFIGURATION_HBASED's hash and presents the provisioning certificate.
#[derive(Clone, Debug, Default)]
pub struct ExtraTls {
    pub leaf_pin: Option<crate::tls::LeafPin>,
    pub client_cert: Option<crate::tls::ClientCert>,
}

/// [`connect_as`] with a leaf pin and/or a client certificate.
pub fn connect_with(
    device: Arc<dyn MeiDevice>,
    args: &AmtConnArgs,
    creds: Credentials,
    control_mode: ControlMode,
    extra: &ExtraTls,
) -> Result<AmtSession, AgentError> {
    connect_on(device, args, creds, control_mode, extra, None)
}

/// A new client on the route `old` runs on (its APF session or LMS), with the port and TLS
/// chosen again: after `configure tls` committed, TLS to 16993 pinned to the new certificate.
/// Keeping the route keeps the ME's LME client, which a new session would have to wait for.
pub fn reconnect(
    old: AmtSession,
    device: Arc<dyn MeiDevice>,
    args: &AmtConnArgs,
    creds: Credentials,
) -> Result<AmtSession, AgentError> {
    let AmtSession {
        runtime,
        route,
        control_mode,
        ..
    } = old;
    connect_on(
        device,
        args,
        creds,
        control_mode,
        &ExtraTls::default(),
        Some((runtime, route)),
    )
}

fn connect_on(
    device: Arc<dyn MeiDevice>,
    args: &AmtConnArgs,
    creds: Credentials,
    control_mode: ControlMode,
    extra: &ExtraTls,
    existing: Option<(tokio::runtime::Runtime, Route)>,
) -> Result<AmtSession, AgentError> {
    let enforced = crate::amthi::client::amt_enabled_flags(
        device.as_ref(),
        crate::amthi::client::DEFAULT_TIMEOUT,
    )
    .map(|f| f.new_interface() && f.tls_enforced())
    .unwrap_or(false);
    // After `configure tls` the agent talks TLS to AMT, verifying the certificate it installed.
    // A configure tls whose CommitChanges was not answered leaves a pending pin: its
    // certificate, used only where AMT serves its local port on 16993 anyway (the route's
    // choice), never to leave 16992.
    let (pin, pending) = if control_mode == ControlMode::None {
        (None, None)
    } else {
        installed_pin(&device, args)?
    };
    let tls = enforced || pin.is_some();
    // Before activation AMT presents its On-Die CA chain: bind it to this host's CSME first.
    let upid_csme_id = if tls && control_mode == ControlMode::None && !args.skip_amt_cert_check {
        upid_binding(device.as_ref())
    } else {
        None
    };
    let (runtime, route) = match existing {
        Some(r) => r,
        None => {
            let runtime = runtime()?;
            let opts = RouteOptions {
                lms: args.lms,
                lms_port: args.lms_port,
                tls: enforced,
                ..RouteOptions::default()
            };
            let route = runtime.block_on(Route::choose(&opts, device.clone()))?;
            (runtime, route)
        }
    };
    tracing::debug!(route = ?route_name(&route), "route to AMT chosen");
    if args.skip_amt_cert_check {
        tracing::warn!("--skip-amt-cert-check: AMT's TLS certificate is NOT verified; anyone on the path could impersonate AMT");
    }
    let ep = wsman_endpoint(
        &route,
        tls,
        device.as_ref(),
        control_mode,
        &AmtTlsOptions {
            skip_cert_check: args.skip_amt_cert_check,
            ca_files: args.amt_ca_file.clone(),
            leaf_pin: extra.leaf_pin.clone(),
            upid_csme_id,
            client_cert: extra.client_cert.clone(),
            installed: pin
                .as_ref()
                .or(pending.as_ref().map(|(_, p)| p))
                .map(|p| p.pin())
                .transpose()?,
        },
    )?;
    tracing::debug!(port = ep.port, tls = ep.tls, "WS-MAN endpoint");
    let client = WsmanClient::new(
        ep.connector,
        creds,
        WsmanOptions {
            port: ep.port,
            request_timeout: args.request_timeout,
        },
    );
    Ok(AmtSession {
        runtime,
        client,
        control_mode,
        route,
        tls: ep.tls,
        pin,
        promote: pending.filter(|_| ep.tls),
        next_id: 0,
    })
}

/// A pending pin with the store it becomes the pin in.
type Pending = (super::tls_pin::PinStore, super::tls_pin::PinRecord);

/// The pin `configure tls` left for this AMT (by UUID, read over AMTHI), if any; else its pending
/// pin, if a commit was not answered.
fn installed_pin(
    device: &Arc<dyn MeiDevice>,
    args: &AmtConnArgs,
) -> Result<(Option<super::tls_pin::PinRecord>, Option<Pending>), AgentError> {
    let store = args.pin_store(device.as_ref());
    let uuid = AmthiClient::new(device.clone()).uuid()?.text();
    let pin = store.load(&uuid)?;
    if pin.is_none() {
        let pending = store.pending().load(&uuid)?;
        if let Some(p) = &pending {
            tracing::debug!(uuid = %p.uuid, sha256 = %p.sha256, "a pending TLS pin (a commit not answered)");
        }
        return Ok((None, pending.map(|p| (store, p))));
    }
    if let Some(p) = &pin {
        tracing::debug!(
            uuid = %p.uuid,
            sha256 = %p.sha256,
            file = %store.path(&uuid).map(|f| f.display().to_string()).unwrap_or_else(|| "(memory)".into()),
            "AMT's TLS was configured by amt-agent: port 16993, pinned to its certificate"
        );
    }
    Ok((pin, None))
}

/// The UPID CSME id (bytes 0–19) that AMT's pre-activation TLS chain must be bound to
/// (rpc-go.md §5.4 step 3, §5.6). A UPID that cannot be read only leaves the chain unbound, as in
/// rpc-go: said once per run at info level, later at debug.
fn upid_binding(device: &dyn MeiDevice) -> Option<[u8; crate::upid::CSME_BINDING_LEN]> {
    static TOLD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    match crate::upid::client::read_platform_id(device, crate::upid::client::DEFAULT_TIMEOUT) {
        Ok(id) => {
            let binding = id.csme_binding();
            tracing::debug!(
                csme_id = %crate::upid::upper_hex(&binding),
                "AMT's TLS chain will be bound to this host's CSME (UPID CSME id bytes 0–19)"
            );
            Some(binding)
        }
        Err(e) => {
            if TOLD.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::debug!(error = %e, "UPID unreadable: AMT's TLS chain is not bound to this CSME");
            } else {
                tracing::info!(error = %e, "UPID unreadable: AMT's TLS chain is not bound to this CSME (the other certificate rules still apply)");
            }
            None
        }
    }
}

pub fn route_name(r: &Route) -> String {
    match r {
        Route::Lms { addr, .. } => format!("LMS at {addr}"),
        Route::Apf(_) => "LME/APF through the ME".into(),
    }
}
