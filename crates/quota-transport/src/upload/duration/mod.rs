//! Reading the duration of audio and video from container headers.
//!
//! ```
//! use std::time::Duration;
//! use quota_transport::upload::duration::{probe_duration, DurationProbe};
//!
//! // A WAV header: 8 kHz, mono, 8-bit (8000 bytes a second), 16000 data bytes declared.
//! let mut wav = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0".to_vec();
//! wav.extend_from_slice(&8000u32.to_le_bytes()); // sample rate
//! wav.extend_from_slice(&8000u32.to_le_bytes()); // byte rate
//! wav.extend_from_slice(&[1, 0, 8, 0]); // block align, bits per sample
//! wav.extend_from_slice(b"data");
//! wav.extend_from_slice(&16000u32.to_le_bytes());
//! assert_eq!(probe_duration(&wav, false), DurationProbe::Known(Duration::from_secs(2)));
//! ```
//!
//! # What is read, from where
//!
//! The duration is what the container *declares*, read from the first bytes
//! of the file (never the whole file):
//!
//! | format | read from | by |
//! |---|---|---|
//! | WAV, RF64 | `data` chunk size / `fmt ` byte rate (a placeholder size of 0 or `0xFFFFFFFF` uses the file's real length at its end) | hand |
//! | AIFF | `COMM` frames / sample rate | hand |
//! | AVI | `avih` frame count × frame period | hand |
//! | MP4, MOV, M4A, 3GP | `moov/mvhd` duration / timescale, *wherever `moov` is*: the top-level boxes are walked as they stream and only `moov` is kept (up to [`HEADER_PREFIX_LIMIT`]); a fragmented file (`mvex`) counts only with a `mehd` | hand |
//! | MP3 (also an ID3-tagged FLAC or AAC) | Xing/Info/VBRI header of the first frame, after any ID3 tag | symphonia |
//! | FLAC | `STREAMINFO` total samples / sample rate | hand |
//! | Ogg (Vorbis, Opus, FLAC), ADTS AAC | only when the whole file is within the prefix | symphonia |
//! | Matroska/WebM, MPEG-TS/PS, FLV, ASF, MIDI, AMR, CAF, MP3 without a Xing header larger than the prefix | not read: [`DurationProbe::Unknown`] | |
//!
//! A file is read from at most [`HEADER_PREFIX_LIMIT`] bytes of its start
//! (plus, for ISO media, its `moov` box). Every reader is bounded by its input
//! and never panics on garbage; symphonia is additionally run under
//! `catch_unwind`, and a panic inside it counts as [`DurationProbe::Unknown`].
//!
//! # When the duration cannot be read
//!
//! [`DurationProbe::Unknown`] is decided by the upload rules'
//! [`UnknownDuration`](quota_core::upload::UnknownDuration): by default the
//! file is **allowed** (its size limit still applies and bounds its length);
//! with `unknown_duration = "refuse"` it is refused with
//! [`UploadRefusal::DurationUnknown`](quota_core::upload::UploadRefusal::DurationUnknown)
//! (HTTP 422). A declared duration can lie; the size limit is what bounds a
//! file whose header understates its length.

mod fixed;
mod iso;
mod symph;

use core::time::Duration;

use quota_core::upload::{FileFormat, SNIFF_LEN};

use iso::IsoWalker;

/// The most bytes of a file's start kept to read its duration: 1 MiB.
///
/// Also the most of an MP4 `moov` box kept. Memory per file being inspected
/// is bounded by this, whatever the file's size.
pub const HEADER_PREFIX_LIMIT: usize = 1 << 20;

/// What reading a duration found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DurationProbe {
    /// The container declares this duration.
    Known(Duration),
    /// The bytes so far end before the header that holds the duration.
    NeedMore,
    /// The duration cannot be read from this file's headers.
    Unknown,
}

impl DurationProbe {
    /// The duration, if known.
    pub const fn known(self) -> Option<Duration> {
        match self {
            DurationProbe::Known(d) => Some(d),
            _ => None,
        }
    }
}

/// Reads the duration of a file from `bytes`, its first bytes; `complete`
/// says `bytes` is the whole file.
///
/// Returns [`NeedMore`](DurationProbe::NeedMore) only when `complete` is
/// false. The format is sniffed from `bytes` (see
/// [`FileFormat::sniff`]); a file of no timed format is
/// [`Unknown`](DurationProbe::Unknown).
pub fn probe_duration(bytes: &[u8], complete: bool) -> DurationProbe {
    let Some(format) = FileFormat::sniff(bytes) else {
        return DurationProbe::Unknown;
    };
    let total_len = complete.then_some(bytes.len() as u64);
    let probe = match DurationReader::for_format(format).how {
        How::Unreadable => DurationProbe::Unknown,
        How::Iso(mut walker) => match walker.feed(bytes) {
            DurationProbe::NeedMore if complete => walker.finish(),
            probe => probe,
        },
        How::Prefix(parser) => {
            let prefix = bytes.get(..HEADER_PREFIX_LIMIT).unwrap_or(bytes);
            parser.probe(prefix, total_len.filter(|_| prefix.len() == bytes.len()))
        }
    };
    match probe {
        DurationProbe::NeedMore if complete => DurationProbe::Unknown,
        probe => probe,
    }
}

/// Reads a duration from a file that arrives in chunks, keeping at most
/// [`HEADER_PREFIX_LIMIT`] bytes.
///
/// 1. Create it with the format sniffed from the file's first bytes.
/// 2. [`feed`](Self::feed) every chunk, in order, from the first byte;
///    stop early if it returns [`Known`](DurationProbe::Known) (or
///    [`Unknown`](DurationProbe::Unknown) for a format with no reader).
/// 3. At the end of the file call [`finish`](Self::finish): it returns
///    `Known` or `Unknown`, never `NeedMore`.
///
/// ```
/// use quota_core::upload::FileFormat;
/// use quota_transport::upload::duration::{DurationProbe, DurationReader};
///
/// let mut reader = DurationReader::for_format(FileFormat::Matroska);
/// assert_eq!(reader.feed(&[0x1A, 0x45, 0xDF, 0xA3]), DurationProbe::Unknown);
/// assert_eq!(reader.finish(), DurationProbe::Unknown);
/// ```
#[derive(Debug)]
pub struct DurationReader {
    how: How,
    /// The file's first bytes, up to [`HEADER_PREFIX_LIMIT`] (prefix readers only).
    prefix: Vec<u8>,
    /// Bytes fed so far.
    seen: u64,
    /// Prefix length at which the next parse is tried (doubling, so a file
    /// costs a logarithmic number of parses).
    next_attempt: usize,
    found: Option<Duration>,
}

#[derive(Debug)]
enum How {
    Prefix(PrefixParser),
    Iso(IsoWalker),
    Unreadable,
}

#[derive(Clone, Copy, Debug)]
enum PrefixParser {
    Wav,
    Aiff,
    Avi,
    Flac,
    Symphonia,
}

impl PrefixParser {
    fn probe(self, prefix: &[u8], total_len: Option<u64>) -> DurationProbe {
        let complete = total_len == Some(prefix.len() as u64);
        match self {
            PrefixParser::Wav => fixed::wav(prefix, total_len),
            PrefixParser::Aiff => fixed::aiff(prefix),
            PrefixParser::Avi => fixed::avi(prefix),
            PrefixParser::Flac => fixed::flac(prefix),
            PrefixParser::Symphonia => symph::probe(prefix, complete),
        }
    }
}

impl DurationReader {
    /// A reader for a file of `format`.
    pub fn for_format(format: FileFormat) -> Self {
        use FileFormat::*;
        let how = match format {
            Wav => How::Prefix(PrefixParser::Wav),
            Aiff => How::Prefix(PrefixParser::Aiff),
            Avi => How::Prefix(PrefixParser::Avi),
            Mp4 | M4a => How::Iso(IsoWalker::new()),
            Flac => How::Prefix(PrefixParser::Flac),
            Mp3 | OggAudio | OggVideo | Aac => How::Prefix(PrefixParser::Symphonia),
            _ => How::Unreadable,
        };
        DurationReader {
            how,
            prefix: Vec::new(),
            seen: 0,
            next_attempt: SNIFF_LEN,
            found: None,
        }
    }

    /// Feeds the next chunk of the file. Returns `Known` once the duration
    /// is read, `Unknown` if this format's duration is never read, and
    /// `NeedMore` otherwise.
    pub fn feed(&mut self, chunk: &[u8]) -> DurationProbe {
        if let Some(d) = self.found {
            return DurationProbe::Known(d);
        }
        self.seen = self.seen.saturating_add(chunk.len() as u64);
        let probe = match &mut self.how {
            How::Unreadable => DurationProbe::Unknown,
            How::Iso(walker) => match walker.feed(chunk) {
                // A final Unknown from the walker is reported by `finish`.
                DurationProbe::Unknown => DurationProbe::NeedMore,
                probe => probe,
            },
            How::Prefix(parser) => {
                let room = HEADER_PREFIX_LIMIT - self.prefix.len();
                self.prefix
                    .extend_from_slice(&chunk[..chunk.len().min(room)]);
                let full = self.prefix.len() == HEADER_PREFIX_LIMIT;
                if self.prefix.len() >= self.next_attempt || (full && room > 0) {
                    self.next_attempt = self.prefix.len().saturating_mul(2);
                    match parser.probe(&self.prefix, None) {
                        DurationProbe::Known(d) => DurationProbe::Known(d),
                        _ => DurationProbe::NeedMore,
                    }
                } else {
                    DurationProbe::NeedMore
                }
            }
        };
        if let DurationProbe::Known(d) = probe {
            self.found = Some(d);
            self.prefix = Vec::new();
        }
        probe
    }

    /// Ends the file: returns `Known` or `Unknown`.
    pub fn finish(&mut self) -> DurationProbe {
        if let Some(d) = self.found {
            return DurationProbe::Known(d);
        }
        let probe = match &mut self.how {
            How::Unreadable => DurationProbe::Unknown,
            How::Iso(walker) => walker.finish(),
            How::Prefix(parser) => parser.probe(&self.prefix, Some(self.seen)),
        };
        match probe {
            DurationProbe::Known(d) => {
                self.found = Some(d);
                DurationProbe::Known(d)
            }
            _ => DurationProbe::Unknown,
        }
    }
}

/// `num / den` seconds, exactly to the nanosecond (rounded down); `None`
/// when `den` is 0 or the result does not fit a `Duration`.
fn ratio(num: u64, den: u64) -> Option<Duration> {
    if den == 0 {
        return None;
    }
    let secs = num / den;
    let rem = u128::from(num % den);
    let nanos = u32::try_from(rem * 1_000_000_000 / u128::from(den)).ok()?;
    Some(Duration::new(secs, nanos))
}

/// `Known(ratio)`, or `Unknown` when the ratio is undefined.
fn known_ratio(num: u64, den: u64) -> DurationProbe {
    ratio(num, den).map_or(DurationProbe::Unknown, DurationProbe::Known)
}
