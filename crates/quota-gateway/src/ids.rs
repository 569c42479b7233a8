//! New API keys and account ids, drawn from the operating system's
//! random source.

use rand::RngCore;

/// A new random API key: `qk_` and 32 hex digits (128 bits).
pub fn new_api_key() -> String {
    format!("qk_{}", random_hex(16))
}

/// A new random account id: `acct_` and 16 hex digits.
pub fn new_account_id() -> String {
    format!("acct_{}", random_hex(8))
}

/// A new random key id: `key_` and 12 hex digits (public; unique in its account).
pub fn new_key_id() -> String {
    format!("key_{}", random_hex(6))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}
