//! Benchmarks for quota live in `benches/benches/` and `benches/examples/`;
//! this crate holds what they share: the keys they decide on and the order
//! they walk them in.

/// `n` account keys, `acct-00000000` on.
pub fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("acct-{i:08}")).collect()
}

/// The order the calls walk `keys(n)` in: a fixed shuffle (Fisher-Yates
/// with a fixed xorshift, the same in every run), so that a decision's
/// memory is found at random as with real traffic.
///
/// ```
/// let order = quota_benches::walk_order(5);
/// let mut sorted = order.clone();
/// sorted.sort();
/// assert_eq!(sorted, [0, 1, 2, 3, 4]);
/// assert_eq!(order, quota_benches::walk_order(5));
/// ```
pub fn walk_order(n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for i in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    order
}
