//! File bytes of any content: sniffing never panics and is decided by the
//! first bytes only.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quota_core::upload::{FileKind, SNIFF_LEN};

fuzz_target!(|data: &[u8]| {
    let kind = FileKind::sniff(data);
    if data.len() > SNIFF_LEN {
        assert_eq!(FileKind::sniff(&data[..SNIFF_LEN]), kind);
    }
});
