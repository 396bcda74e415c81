//! amt-agent: the on-device agent that brings an Intel AMT machine from pre-provisioned to managed,
//! and amt-sim, the firmware-faithful simulator it is tested against.
//!
//! Layers, lowest first (a lower layer never imports a higher one):
//! `heci` (MEI transports) → `amthi` (AMT host interface codec) → `commands` → `cli`.
//! `tls` (the verifier and client config for AMT's TLS port 16993) is sans-IO: whatever carries
//! the bytes (an APF channel, a socket) sits above it.
//! `heci` (MEI transports) → `amthi` (AMT host interface codec) → `commands` → `cli`; and for
//! WS-MAN, `heci` → `apf` (LME codec, Mux, driver) → `wsman` (HTTP, Digest, route, client).
//! `upid` (the UPID client's codec and driver) sits beside `amthi`, on `heci`; its CSME id feeds the
//! `tls` verifier's binding of AMT's chain to this host.
//! `rps` (the RPS websocket protocol, sans-IO) sits beside `wsman`; `commands::remote` drives it.
//! `profile` (desired-state profiles: YAML, rpc-go v3 import and decryption, checks) sits on
//! `provisioning` and `secret`; `commands::desired` plans and applies it with the `configure` areas.
//! `sim` is the simulator's firmware model; it shares codecs with the agent, which byte-exact tests
//! against the reference layouts keep honest.

pub mod amthi;
pub mod apf;
pub mod cli;
mod code_enum;
pub mod commands;
pub mod error;
pub mod heci;
pub mod os;
pub mod profile;
pub mod provisioning;
pub mod rps;
pub mod secret;
pub mod service;
pub mod sim;
pub mod tls;
pub mod upid;
pub mod wsman;
