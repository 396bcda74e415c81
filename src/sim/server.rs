//! The simulator's Unix socket front end: one socket connection = one MEI file handle, framed as
//! `heci::simsock` documents.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Firmware, ReadError, SimHandle};
use crate::heci::simsock::{
    encode_frame, FrameReader, FRAME_CONNECT, FRAME_CONNECTED, FRAME_ERRNO, FRAME_MESSAGE,
    FRAME_MESSAGE_FROM_SIM,
};
use crate::heci::Guid;

/// Accepts connections until the listener fails; each connection gets its own threads.
pub fn serve(listener: UnixListener, fw: Firmware) {
    for stream in listener.incoming() {
        match stream {
            Ok(s) => {
                let fw = fw.clone();
                std::thread::spawn(move || {
                    if let Err(e) = connection(s, fw) {
                        tracing::debug!(error = %e, "connection ended");
                    }
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "accept failed");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn send(w: &Mutex<UnixStream>, kind: u8, payload: &[u8]) -> std::io::Result<()> {
    let mut s = w.lock().unwrap_or_else(|p| p.into_inner());
    s.write_all(&encode_frame(kind, payload))
}

fn connection(stream: UnixStream, fw: Firmware) -> std::io::Result<()> {
    let writer = Arc::new(Mutex::new(stream.try_clone()?));
    let mut reader_stream = stream;
    let mut frames = FrameReader::default();
    let mut handle: Option<SimHandle> = None;
    let mut buf = vec![0u8; 16384];
    let result = loop {
        let n = match reader_stream.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(e),
        };
        frames.feed(&buf[..n]);
        let mut done = false;
        loop {
            let frame = match frames.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "bad frame from client; closing");
                    done = true;
                    break;
                }
            };
            match (frame.0, &handle) {
                (FRAME_CONNECT, None) if frame.1.len() == 16 => {
                    let mut g = [0u8; 16];
                    g.copy_from_slice(&frame.1);
                    match fw.connect(Guid(g)) {
                        Ok(h) => {
                            let p = h.properties();
                            let mut payload = p.max_msg_length.to_le_bytes().to_vec();
                            payload.push(p.protocol_version);
                            send(&writer, FRAME_CONNECTED, &payload)?;
                            spawn_pump(h.clone(), writer.clone());
                            handle = Some(h);
                        }
                        Err(errno) => send(&writer, FRAME_ERRNO, &errno.to_le_bytes())?,
                    }
                }
                (FRAME_CONNECT, Some(_)) => {
                    // A handle connects once; the kernel says EBUSY.
                    send(&writer, FRAME_ERRNO, &libc::EBUSY.to_le_bytes())?
                }
                (FRAME_MESSAGE, Some(h)) => {
                    if let Err(errno) = h.write(&frame.1) {
                        send(&writer, FRAME_ERRNO, &errno.to_le_bytes())?;
                        if errno == libc::ENODEV {
                            done = true;
                            break;
                        }
                    }
                }
                (FRAME_MESSAGE, None) => send(&writer, FRAME_ERRNO, &libc::ENODEV.to_le_bytes())?,
                _ => {
                    send(&writer, FRAME_ERRNO, &libc::EINVAL.to_le_bytes())?;
                }
            }
        }
        if done {
            break Ok(());
        }
    };
    if let Some(h) = handle {
        h.close();
    }
    result
}

/// Moves the handle's outgoing messages to the socket as they become ready.
fn spawn_pump(h: SimHandle, writer: Arc<Mutex<UnixStream>>) {
    std::thread::spawn(move || loop {
        match h.read(Some(Instant::now() + Duration::from_millis(500)), false) {
            Ok(msg) => {
                if send(&writer, FRAME_MESSAGE_FROM_SIM, &msg).is_err() {
                    h.close();
                    return;
                }
            }
            Err(ReadError::TimedOut) | Err(ReadError::WouldBlock) => {}
            Err(ReadError::Errno(e)) => {
                // ENODEV after the client closed is the normal end; after an ME reset, say it.
                let reset = !h.alive();
                if e != libc::ENODEV || reset {
                    let _ = send(&writer, FRAME_ERRNO, &e.to_le_bytes());
                }
                if e == libc::ENODEV {
                    return;
                }
            }
        }
    });
}
