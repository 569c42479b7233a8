//! Equality of short byte strings without a call to `memcmp`.
//!
//! Keys, scopes, tier names and endpoint paths are mostly under 16 bytes;
//! comparing them as one or two overlapping machine words is several times
//! cheaper than the library call, which dominated the store's lookups.

/// `a == b`, comparing strings of up to 16 bytes as words.
#[inline]
pub(crate) fn eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n >= 8 {
        if n > 16 {
            return a == b;
        }
        // Two overlapping 8-byte words cover 8..=16 bytes.
        return word8(a, 0) == word8(b, 0) && word8(a, n - 8) == word8(b, n - 8);
    }
    if n >= 4 {
        return word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4);
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

#[inline]
fn word8(s: &[u8], at: usize) -> u64 {
    match s.get(at..at + 8).map(<[u8; 8]>::try_from) {
        Some(Ok(w)) => u64::from_le_bytes(w),
        _ => 0,
    }
}

#[inline]
fn word4(s: &[u8], at: usize) -> u32 {
    match s.get(at..at + 4).map(<[u8; 4]>::try_from) {
        Some(Ok(w)) => u32::from_le_bytes(w),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::eq;

    #[test]
    fn agrees_with_slice_equality_at_every_length_and_position() {
        let base: Vec<u8> = (0u8..40).collect();
        for n in 0..40 {
            let a = &base[..n];
            assert!(eq(a, a));
            assert!(!eq(a, &base[..n + 1]));
            for at in 0..n {
                let mut b = a.to_vec();
                b[at] ^= 0x80;
                assert!(!eq(a, &b), "length {n}, differing at {at}");
            }
        }
    }
}
