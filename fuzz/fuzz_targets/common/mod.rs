//! Helpers shared by the targets.

/// Cuts `data` into pieces at points drawn from `seed` (an xorshift, so one input always splits
/// the same way): how a socket may deliver the same bytes in reads of any size.
pub fn splits(seed: u16, data: &[u8]) -> Vec<&[u8]> {
    let mut x = u32::from(seed) | 1;
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        // Mostly small reads, sometimes everything that is left.
        let n = match x % 8 {
            0 => rest.len(),
            1 => 1,
            _ => 1 + (x as usize >> 3) % 64,
        }
        .min(rest.len());
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    out
}

/// The first two bytes as a split seed, and the rest.
pub fn seed_and_rest(data: &[u8]) -> Option<(u16, &[u8])> {
    if data.len() < 2 {
        return None;
    }
    Some((u16::from_be_bytes([data[0], data[1]]), &data[2..]))
}
