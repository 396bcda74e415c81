//! amt-agent: the on-device agent that brings an Intel AMT machine from pre-provisioned to managed,
//! and amt-sim, the firmware-faithful simulator it is tested against.
//!
//! # Layers
//!
//! Lowest first. Each line names a module and the only modules it may import, so a lower layer
//! never imports a higher one and the transport never imports its imitation: the choice of MEI
//! backend, simulator included, is made in `device`, above both `heci` and `sim`. `make lint`
//! checks every `crate::` path in `src/` against this block (`scripts/check_layers.rs`). Test code
//! (`#[cfg(test)]` modules, `*tests.rs` files) is exempt: tests drive a layer from above, with the
//! simulator as the peer or the WS-MAN client over APF.
//!
//! ```text
//! code_enum:                                  # wire enums with Unknown(n) and the firmware's names
//! secret:                                     # secrets that print as ***
//! os:                                         # host name, DNS suffix, the IP of AMT's MAC, private files (Linux, Windows)
//! heci:                                       # MEI transports: interface, Linux and Windows backends, sim frames
//! amthi: heci secret code_enum                # AMT host interface codec, typed commands, client
//! tls: amthi secret                           # sans-IO verifier and client config for AMT's port 16993, certificates for AMT's key
//! upid: amthi heci tls                        # the UPID client; its CSME id binds AMT's chain to this host
//! apf: heci secret code_enum                  # LME/APF codec, channel multiplexer, driver
//! wsman: amthi apf heci secret code_enum tls  # HTTP, Digest, WS-MAN envelopes and calls, the route to AMT
//! rps: secret wsman                           # the RPS websocket protocol and relay session (sans-IO)
//! error: amthi apf heci upid wsman            # the agent's errors, rpc-go's exit codes, help lines
//! provisioning: amthi error heci os secret wsman  # certificate rules, ACM signing, setup.bin
//! secret_source: error os secret              # where secrets come from: file (private), flag, env, no-echo prompt
//! profile: amthi error os provisioning secret secret_source  # desired-state profiles: YAML, rpc-go v3 import, checks
//! sim: amthi apf code_enum heci provisioning secret tls upid wsman  # the simulator's firmware model
//! device: heci sim                            # --device: the factory that knows every backend
//! commands: amthi apf cli device error heci os profile provisioning rps secret secret_source service tls upid wsman
//! service: amthi cli commands device error heci os profile secret secret_source
//! cli: commands device error heci os secret secret_source service
//! ```
//!
//! `commands`, `service` and `cli` are one application layer (the commands, the service loop that
//! runs them, and the command line that parses for both), so they may import each other.

pub mod amthi;
pub mod apf;
pub mod cli;
mod code_enum;
pub mod commands;
pub mod device;
pub mod error;
pub mod heci;
pub mod os;
pub mod profile;
pub mod provisioning;
pub mod rps;
pub mod secret;
pub mod secret_source;
pub mod service;
pub mod sim;
pub mod tls;
pub mod upid;
pub mod wsman;
