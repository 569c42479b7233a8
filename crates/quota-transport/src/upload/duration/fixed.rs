//! Hand-read durations of WAV/RF64, AIFF, AVI and FLAC: fixed header fields.

use core::time::Duration;

use super::{known_ratio, DurationProbe};

fn u32_le(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_le(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

fn u32_be(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// The chunk header at `pos`: its id, its declared size, where its body starts.
fn chunk_header(
    b: &[u8],
    pos: usize,
    read_size: fn(&[u8], usize) -> Option<u32>,
) -> Option<(&[u8], u32, usize)> {
    let id = b.get(pos..pos.checked_add(4)?)?;
    let size = read_size(b, pos.checked_add(4)?)?;
    Some((id, size, pos.checked_add(8)?))
}

/// WAV: walk the chunks after `WAVE`; duration = data size / `fmt ` byte rate.
///
/// A data size of 0 or `0xFFFFFFFF` is a placeholder written by streaming
/// encoders: the real size is the file's length after the chunk header,
/// known only at the end (`total_len`). RF64 keeps the real size in `ds64`.
pub(super) fn wav(b: &[u8], total_len: Option<u64>) -> DurationProbe {
    let rf64 = !b.starts_with(b"RIFF");
    let mut pos: usize = 12;
    let mut byte_rate: Option<u32> = None;
    let mut ds64_data: Option<u64> = None;
    loop {
        let Some((id, size, body)) = chunk_header(b, pos, u32_le) else {
            return DurationProbe::NeedMore;
        };
        match id {
            b"ds64" => match u64_le(b, body.saturating_add(8)) {
                Some(size) => ds64_data = Some(size),
                None => return DurationProbe::NeedMore,
            },
            b"fmt " => match u32_le(b, body.saturating_add(8)) {
                Some(rate) => byte_rate = Some(rate),
                None => return DurationProbe::NeedMore,
            },
            b"data" => {
                let Some(rate) = byte_rate else {
                    return DurationProbe::Unknown;
                };
                let declared = match (size, ds64_data) {
                    (u32::MAX, Some(real)) if rf64 => Some(real),
                    (0 | u32::MAX, _) => None,
                    (n, _) => Some(u64::from(n)),
                };
                let data_len = match (declared, total_len) {
                    (Some(n), _) => n,
                    (None, Some(total)) => total.saturating_sub(body as u64),
                    (None, None) => return DurationProbe::NeedMore,
                };
                return known_ratio(data_len, u64::from(rate));
            }
            _ => {}
        }
        let padded = u64::from(size) + u64::from(size & 1);
        match usize::try_from(padded)
            .ok()
            .and_then(|p| body.checked_add(p))
        {
            Some(next) => pos = next,
            None => return DurationProbe::Unknown,
        }
    }
}

/// AIFF/AIFF-C: the `COMM` chunk's frame count over its 80-bit sample rate.
pub(super) fn aiff(b: &[u8]) -> DurationProbe {
    let mut pos: usize = 12;
    loop {
        let Some((id, size, body)) = chunk_header(b, pos, u32_be) else {
            return DurationProbe::NeedMore;
        };
        if id == b"COMM" {
            let (Some(frames), Some(rate)) = (
                u32_be(b, body.saturating_add(2)),
                b.get(body.saturating_add(8)..body.saturating_add(18)),
            ) else {
                return DurationProbe::NeedMore;
            };
            let Some(rate) = extended_to_f64(rate) else {
                return DurationProbe::Unknown;
            };
            return match Duration::try_from_secs_f64(f64::from(frames) / rate) {
                Ok(d) if rate > 0.0 => DurationProbe::Known(d),
                _ => DurationProbe::Unknown,
            };
        }
        let padded = u64::from(size) + u64::from(size & 1);
        match usize::try_from(padded)
            .ok()
            .and_then(|p| body.checked_add(p))
        {
            Some(next) => pos = next,
            None => return DurationProbe::Unknown,
        }
    }
}

/// An IEEE 754 80-bit extended float (big-endian), as AIFF stores sample rates.
fn extended_to_f64(b: &[u8]) -> Option<f64> {
    let exponent = i32::from(u16::from_be_bytes([*b.first()?, *b.get(1)?]) & 0x7FFF);
    let mut m = [0u8; 8];
    m.copy_from_slice(b.get(2..10)?);
    let mantissa = u64::from_be_bytes(m);
    if exponent == 0x7FFF || mantissa == 0 {
        return None;
    }
    let value = mantissa as f64 * 2f64.powi(exponent - 16383 - 63);
    value.is_finite().then_some(value)
}

/// AVI: `RIFF AVI ` `LIST hdrl` `avih`: total frames × microseconds per frame.
pub(super) fn avi(b: &[u8]) -> DurationProbe {
    if b.len() < 52 {
        return DurationProbe::NeedMore;
    }
    if &b[12..16] != b"LIST" || &b[20..24] != b"hdrl" || &b[24..28] != b"avih" {
        return DurationProbe::Unknown;
    }
    let (Some(micros_per_frame), Some(frames)) = (u32_le(b, 32), u32_le(b, 48)) else {
        return DurationProbe::NeedMore;
    };
    if micros_per_frame == 0 || frames == 0 {
        return DurationProbe::Unknown;
    }
    known_ratio(u64::from(micros_per_frame) * u64::from(frames), 1_000_000)
}

/// FLAC: the `STREAMINFO` block, which must come first, holds the sample
/// rate (20 bits) and the total samples (36 bits, 0 = unknown).
pub(super) fn flac(b: &[u8]) -> DurationProbe {
    let Some(&block_type) = b.get(4) else {
        return DurationProbe::NeedMore;
    };
    if block_type & 0x7F != 0 {
        return DurationProbe::Unknown;
    }
    let Some(packed) = b.get(18..26) else {
        return DurationProbe::NeedMore;
    };
    let mut a = [0u8; 8];
    a.copy_from_slice(packed);
    let packed = u64::from_be_bytes(a);
    let rate = packed >> 44;
    let samples = packed & 0xF_FFFF_FFFF;
    if samples == 0 {
        return DurationProbe::Unknown;
    }
    known_ratio(samples, rate)
}
