//! Any bytes as the start of a client connection's read buffer: the own
//! HTTP/1.1 path's head parser never panics, and what it takes holds
//! together: every part is inside the head, the path starts the target, the
//! head parsed alone gives the same answer, and a head that needs more bytes
//! still needs them with fewer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quota_gateway::http1::request::{parse, Parsed, MAX_HEAD};

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Parsed::Simple(s) => {
            assert!(s.len <= data.len());
            let head = &data[..s.len];
            let target = s.target.of(head);
            let path = s.path.of(head);
            assert!(target.starts_with(path) && target.starts_with(b"/"));
            assert!(!s.method.of(head).is_empty());
            for (name, _value) in s.fields(head) {
                assert!(!name.is_empty());
            }
            assert_eq!(parse(head), Parsed::Simple(s));
        }
        Parsed::Partial => {
            assert!(data.len() <= MAX_HEAD);
            for cut in [0, data.len() / 2, data.len().saturating_sub(1)] {
                assert_eq!(parse(&data[..cut]), Parsed::Partial, "cut at {cut}");
            }
        }
        Parsed::Other | Parsed::Refused { .. } => {}
    }
});
