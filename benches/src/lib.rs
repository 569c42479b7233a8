//! Benchmarks for quota live in `benches/benches/`; this crate has no library code.
