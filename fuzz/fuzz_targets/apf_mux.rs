//! APF: a Host-role `Mux` (the agent's side of LME) driven by a peer that sends arbitrary bytes,
//! interleaved with the calls the agent makes. Input: records `[op][u16 BE length][bytes]`.
//! Every message the Mux transmits must fit the MTU and survive encode → decode unchanged.
#![no_main]

use std::time::{Duration, Instant};

use amt_agent::apf::{ChannelId, Config, Message, Mux};
use libfuzzer_sys::fuzz_target;

struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn chunk(&mut self) -> Option<&'a [u8]> {
        let n = u16::from_be_bytes([self.byte()?, self.byte()?]) as usize;
        let n = n.min(self.0.len());
        let (c, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(c)
    }
}

fn drain(mux: &mut Mux) {
    let mtu = mux.config().mtu;
    while let Some(m) = mux.poll_transmit() {
        let bytes = m.encode();
        assert!(
            bytes.len() <= mtu,
            "{} of {} bytes exceeds the MTU",
            m.name(),
            bytes.len()
        );
        assert_eq!(Message::decode(&bytes), Ok(m));
    }
    while let Some(e) = mux.poll_event() {
        let _ = format!("{e:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let mut now = Instant::now();
    let mut mux = Mux::new(Config::host());
    // rpc-go starts with its version; LMS waits for the firmware's.
    if input.byte().is_some_and(|b| b & 1 == 1) {
        mux.start();
    }
    drain(&mut mux);
    let mut steps = 0;
    while let Some(op) = input.byte() {
        steps += 1;
        if steps > 512 {
            break;
        }
        match op % 12 {
            0..=5 => {
                let Some(bytes) = input.chunk() else { break };
                let _ = mux.handle_bytes(bytes, now);
            }
            6 => {
                let port = if op & 0x80 != 0 { 16993 } else { 16992 };
                let _ = mux.open_channel(port, now);
            }
            7 => {
                let ch = ChannelId(u32::from(input.byte().unwrap_or(2)));
                let Some(bytes) = input.chunk() else { break };
                let _ = mux.send(ch, bytes);
            }
            8 => {
                let ch = ChannelId(u32::from(input.byte().unwrap_or(2)));
                let n = u32::from(input.byte().unwrap_or(0)) << (op >> 4);
                let _ = mux.consume(ch, n);
            }
            9 => {
                let ch = ChannelId(u32::from(input.byte().unwrap_or(2)));
                let _ = mux.close(ch);
            }
            10 => {
                now += Duration::from_secs(u64::from(op >> 4) * 4);
                mux.handle_timeout(now);
            }
            _ => mux.start(),
        }
        drain(&mut mux);
        // Queries the driver makes between messages.
        let _ = (mux.is_established(), mux.port_pair(), mux.poll_timeout());
        for id in 0..4 {
            let ch = ChannelId(id);
            let _ = (mux.channel_state(ch), mux.send_window(ch), mux.buffered(ch));
        }
    }
});
