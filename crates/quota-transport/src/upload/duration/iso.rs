//! ISO base media (MP4, MOV, M4A, 3GP): `moov/mvhd`, wherever `moov` is.
//!
//! The top-level boxes are walked as the bytes stream: every box but `moov`
//! is skipped without being kept (an `mdat` of any size costs nothing), and
//! `moov` is kept up to [`HEADER_PREFIX_LIMIT`](super::HEADER_PREFIX_LIMIT)
//! bytes, which is enough for its `mvhd` (its first child in practice).

use super::{known_ratio, DurationProbe, HEADER_PREFIX_LIMIT};

/// The streaming walker over top-level boxes.
#[derive(Debug)]
pub(super) struct IsoWalker {
    /// Bytes fed so far.
    offset: u64,
    /// End of the top-level box being skipped.
    skip_until: u64,
    /// The header of the next top-level box, as it arrives (8 or 16 bytes).
    header: Vec<u8>,
    /// The `moov` payload being kept, and how many bytes of it to keep.
    moov: Option<(Vec<u8>, usize)>,
    outcome: Option<DurationProbe>,
}

impl IsoWalker {
    pub(super) fn new() -> Self {
        IsoWalker {
            offset: 0,
            skip_until: 0,
            header: Vec::with_capacity(16),
            moov: None,
            outcome: None,
        }
    }

    /// Feeds the next chunk; `Known` or `Unknown` once decided, else `NeedMore`.
    pub(super) fn feed(&mut self, mut data: &[u8]) -> DurationProbe {
        while !data.is_empty() && self.outcome.is_none() {
            if let Some((moov, want)) = &mut self.moov {
                let take = (*want - moov.len()).min(data.len());
                moov.extend_from_slice(&data[..take]);
                data = &data[take..];
                self.offset += take as u64;
                if moov.len() == *want {
                    self.outcome = Some(parse_moov(moov));
                    self.moov = None;
                }
                continue;
            }
            if self.offset < self.skip_until {
                let skip = usize::try_from(self.skip_until - self.offset)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                data = &data[skip..];
                self.offset += skip as u64;
                continue;
            }
            let need = if self.header.len() >= 8 && self.header[..4] == [0, 0, 0, 1] {
                16
            } else {
                8
            };
            let take = (need - self.header.len()).min(data.len());
            self.header.extend_from_slice(&data[..take]);
            data = &data[take..];
            self.offset += take as u64;
            if self.header.len() == need && !(need == 8 && self.header[..4] == [0, 0, 0, 1]) {
                self.start_box();
            }
        }
        self.outcome.unwrap_or(DurationProbe::NeedMore)
    }

    /// A complete top-level box header has arrived: decide what to do with the box.
    fn start_box(&mut self) {
        let header = std::mem::take(&mut self.header);
        let header_len = header.len() as u64;
        let Some((size, kind)) = box_size(&header) else {
            self.outcome = Some(DurationProbe::Unknown);
            return;
        };
        let is_moov = kind == *b"moov";
        match size {
            // The box runs to the end of the file.
            0 if is_moov => self.moov = Some((Vec::new(), HEADER_PREFIX_LIMIT)),
            0 => self.outcome = Some(DurationProbe::Unknown),
            size if size < header_len => self.outcome = Some(DurationProbe::Unknown),
            size => {
                let payload = size - header_len;
                self.skip_until = self.offset.saturating_add(payload);
                if is_moov {
                    let want = usize::try_from(payload)
                        .unwrap_or(usize::MAX)
                        .min(HEADER_PREFIX_LIMIT);
                    self.moov = Some((Vec::with_capacity(want.min(64 * 1024)), want));
                    if want == 0 {
                        self.outcome = Some(DurationProbe::Unknown);
                    }
                }
            }
        }
        self.header = header;
        self.header.clear();
    }

    /// The file ended: read a `moov` cut short by the end, else `Unknown`.
    pub(super) fn finish(&mut self) -> DurationProbe {
        if let Some((moov, _)) = self.moov.take() {
            self.outcome = Some(parse_moov(&moov));
        }
        *self.outcome.get_or_insert(DurationProbe::Unknown)
    }
}

/// A box header's total size (0 = to the end) and type.
fn box_size(header: &[u8]) -> Option<(u64, [u8; 4])> {
    let size32 = u32::from_be_bytes(header.get(0..4)?.try_into().ok()?);
    let kind: [u8; 4] = header.get(4..8)?.try_into().ok()?;
    if size32 == 1 {
        Some((
            u64::from_be_bytes(header.get(8..16)?.try_into().ok()?),
            kind,
        ))
    } else {
        Some((u64::from(size32), kind))
    }
}

/// The children of `moov`: `mvhd` gives the duration; `mvex` marks a
/// fragmented file, whose duration only its `mehd` tells.
fn parse_moov(moov: &[u8]) -> DurationProbe {
    let mut mvhd: Option<(u64, u32)> = None;
    let mut fragmented = false;
    let mut fragment_duration: Option<u64> = None;
    for (kind, body) in children(moov) {
        match &kind {
            b"mvhd" => mvhd = parse_mvhd(body),
            b"mvex" => {
                fragmented = true;
                fragment_duration = children(body)
                    .find(|(k, _)| k == b"mehd")
                    .and_then(|(_, mehd)| full_box_duration(mehd, 4));
            }
            _ => {}
        }
    }
    let Some((duration, timescale)) = mvhd else {
        return DurationProbe::Unknown;
    };
    let duration = match (fragmented, fragment_duration) {
        (false, _) if duration != 0 => duration,
        (true, Some(fragments)) => duration.max(fragments),
        _ => return DurationProbe::Unknown,
    };
    known_ratio(duration, u64::from(timescale))
}

/// `mvhd`: version 0 has 32-bit times, version 1 64-bit; all ones means unknown.
fn parse_mvhd(body: &[u8]) -> Option<(u64, u32)> {
    let version = *body.first()?;
    let timescale_at = if version == 1 { 20 } else { 12 };
    let timescale = u32::from_be_bytes(body.get(timescale_at..timescale_at + 4)?.try_into().ok()?);
    let duration = full_box_duration(body, timescale_at + 4)?;
    Some((duration, timescale))
}

/// A full box's duration field at `at` (for version 0; version 1 fields
/// before it are twice as wide, which the caller accounts for): 32 bits in
/// version 0, 64 in version 1, `None` when all ones ("unknown").
fn full_box_duration(body: &[u8], at: usize) -> Option<u64> {
    let version = *body.first()?;
    if version == 1 {
        let v = u64::from_be_bytes(body.get(at..at + 8)?.try_into().ok()?);
        (v != u64::MAX).then_some(v)
    } else {
        let v = u32::from_be_bytes(body.get(at..at + 4)?.try_into().ok()?);
        (v != u32::MAX).then_some(u64::from(v))
    }
}

/// The child boxes of a container payload, stopping at the first malformed
/// or truncated one (a truncated last child is given with what is there).
fn children(payload: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut rest = payload;
    std::iter::from_fn(move || {
        let (size, kind) = box_size(rest)?;
        let header_len: usize = if rest.get(0..4) == Some(&[0, 0, 0, 1]) {
            16
        } else {
            8
        };
        let end = match size {
            0 => rest.len(),
            s if s < header_len as u64 => return None,
            s => usize::try_from(s).unwrap_or(usize::MAX).min(rest.len()),
        };
        let body = rest.get(header_len..end)?;
        rest = &rest[end..];
        Some((kind, body))
    })
}
