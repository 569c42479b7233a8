//! Bytes of state per (key, limit) pair in the memory store, measured with a
//! counting allocator, beside governor's keyed limiter. Prints a table.
//! Run: `cargo bench -p quota-benches --bench memory`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicIsize, Ordering};

use governor::{Quota, RateLimiter};
use quota_core::policy::{Policy, Request};
use quota_core::{MemoryStore, Timestamp};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; this
// wrapper only counts bytes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn main() {
    let policy = Policy::seed();
    println!("| keys | limits per key | quota bytes per (key, limit) | governor bytes per key (1 limit) |");
    println!("|---|---|---|---|");
    for &n in &[10_000usize, 1_000_000] {
        let keys: Vec<String> = (0..n).map(|i| format!("acct-{i:08}")).collect();
        for (tier, limits) in [("basic", 2usize), ("premium", 1)] {
            let before = LIVE.load(Ordering::Relaxed);
            let store = MemoryStore::new();
            for k in &keys {
                let req = Request {
                    account: k,
                    tier,
                    endpoint: "txt2img",
                    cost: 1,
                };
                let _ = store.check(&policy, &req, Timestamp::from_secs(1_795_860_000));
            }
            let quota_bytes = (LIVE.load(Ordering::Relaxed) - before) as f64 / (n * limits) as f64;
            drop(store);
            let before = LIVE.load(Ordering::Relaxed);
            let gov =
                RateLimiter::keyed(Quota::per_minute(NonZeroU32::new(300).expect("non-zero")));
            for k in &keys {
                let _ = gov.check_key(k);
            }
            let gov_bytes = (LIVE.load(Ordering::Relaxed) - before) as f64 / n as f64;
            drop(gov);
            println!("| {n} | {limits} ({tier}) | {quota_bytes:.1} | {gov_bytes:.1} |");
        }
    }
    println!("\nKey strings (\"acct-00000000\", 13 bytes) are counted on both sides: each store keeps its own copy.");
}
