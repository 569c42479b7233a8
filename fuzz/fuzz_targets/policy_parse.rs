//! Policy files of any content: parsing, validation and error location never
//! panic, and a policy that parses survives an export/parse round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quota_core::policy::Policy;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    match Policy::parse(src) {
        Ok(policy) => {
            let again = Policy::from_toml(&policy.to_toml()).expect("exported TOML parses");
            assert_eq!(again.spec(), policy.spec());
            let again = Policy::from_json(&policy.to_json()).expect("exported JSON parses");
            assert_eq!(again.spec(), policy.spec());
        }
        Err(e) => {
            let _ = Policy::locate(src, &e);
            let _ = e.to_string();
        }
    }
});
