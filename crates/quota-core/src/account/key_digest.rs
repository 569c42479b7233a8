//! The one digest of an API key that every account store keeps: SHA-256.
//!
//! No store keeps an API key in clear, on disk or in memory: each keeps
//! [`key_digest`] of it, and resolving a request's key hashes it once and
//! looks the digest up. A digest read from a dump of a store does not
//! authenticate anyone, since the gateway hashes whatever a client sends.
//! [`key_digest`]'s docs say why it is an unkeyed SHA-256.
//!
//! ```
//! use quota_core::account::key_digest;
//! let d = key_digest("qk_0123456789abcdef0123456789abcdef");
//! assert_eq!(d, key_digest("qk_0123456789abcdef0123456789abcdef"));
//! assert_ne!(d, key_digest("qk_0123456789abcdef0123456789abcdee"));
//! assert_eq!(d.to_string().len(), 64); // lowercase hex, as the Redis store keeps it
//! ```

use core::fmt;

use sha2::{Digest as _, Sha256};

/// The SHA-256 digest of an API key: what the account stores keep instead
/// of the key. Its [`Display`](fmt::Display) is 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyDigest([u8; 32]);

/// The digest every account store keeps for `api_key`.
///
/// Why an unkeyed SHA-256, and not a password hash or an HMAC:
///
/// 1. The keys the gateway issues are 128 bits from the OS's random number
///    generator (`qk_` and 32 hex digits). Nobody can search 2^128
///    candidates, however fast the hash, so a slow hash (argon2, bcrypt)
///    would buy no safety and cost its whole work factor on every request.
/// 2. A keyed hash (an HMAC with a server secret, a "pepper") would add a
///    secret that every gateway of a fleet sharing Redis must hold, and that
///    must be rotated, again without making a 128-bit key any harder to
///    guess. It would only help keys with little entropy, which the gateway
///    never issues: a program that embeds these stores with keys it chooses
///    itself must make them as random (or hash them itself first).
/// 3. SHA-256 rather than the SHA-1 the Redis store used before: SHA-1 is
///    broken for collisions (not for preimages, which is what matters here,
///    but no store should lean on a broken hash), while SHA-256 is the usual
///    well-studied choice, hardware-accelerated on current CPUs, and a few
///    hundred nanoseconds for a key of 35 bytes.
pub fn key_digest(api_key: &str) -> KeyDigest {
    KeyDigest(Sha256::digest(api_key.as_bytes()).into())
}

impl KeyDigest {
    /// A digest as stored (for a store that reads its own digests back).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        KeyDigest(bytes)
    }

    /// The digest's 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (pair, byte) in out.chunks_exact_mut(2).zip(self.0) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0xf)];
        }
        // Only ASCII hex digits were written.
        f.write_str(core::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyDigest({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_sha256_in_lowercase_hex() {
        // FIPS 180-2, appendix B.1.
        assert_eq!(
            key_digest("abc").to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            key_digest("").to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn bytes_round_trip() {
        let d = key_digest("qk_1");
        assert_eq!(KeyDigest::from_bytes(*d.as_bytes()), d);
    }
}
