//! Durations that symphonia's format readers declare (MP3, Ogg, ADTS).

use core::time::Duration;
use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};

use symphonia::core::formats::FormatOptions;
use symphonia::core::io::{MediaSource, MediaSourceStream, ReadOnlySource};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::{ratio, DurationProbe};

/// Probes `bytes` with symphonia; `complete` says they are the whole file.
///
/// A prefix is given as an unseekable source, so readers only report what
/// the headers declare (an MP3 Xing/VBRI frame count, a FLAC `STREAMINFO`
/// behind an ID3 tag) and never extrapolate from the prefix's length. The whole
/// file is given as a seekable one, so readers may also measure it (the last
/// Ogg page, an MP3 or ADTS bitrate estimate). A panic inside symphonia is
/// caught and reported as `Unknown`.
pub(super) fn probe(bytes: &[u8], complete: bool) -> DurationProbe {
    let owned = bytes.to_vec();
    catch_unwind(AssertUnwindSafe(|| probe_owned(owned, complete)))
        .unwrap_or(DurationProbe::Unknown)
}

fn probe_owned(bytes: Vec<u8>, complete: bool) -> DurationProbe {
    let source: Box<dyn MediaSource> = if complete {
        Box::new(Cursor::new(bytes))
    } else {
        Box::new(ReadOnlySource::new(Cursor::new(bytes)))
    };
    let stream = MediaSourceStream::new(source, Default::default());
    let probed = symphonia::default::get_probe().format(
        &Hint::new(),
        stream,
        &FormatOptions::default(),
        &MetadataOptions::default(),
    );
    let Ok(probed) = probed else {
        // A prefix may end inside a header; the whole file cannot.
        return if complete {
            DurationProbe::Unknown
        } else {
            DurationProbe::NeedMore
        };
    };
    let Some(track) = probed.format.default_track() else {
        return DurationProbe::Unknown;
    };
    let params = &track.codec_params;
    let (Some(frames), Some(time_base)) = (
        params.n_frames,
        params
            .time_base
            .map(|tb| (tb.numer, tb.denom))
            .or(params.sample_rate.map(|rate| (1, rate))),
    ) else {
        return DurationProbe::Unknown;
    };
    let (numer, denom) = time_base;
    frames
        .checked_mul(u64::from(numer))
        .and_then(|ticks| ratio(ticks, u64::from(denom)))
        .filter(|d| *d < Duration::from_secs(u64::MAX / 2))
        .map_or(DurationProbe::Unknown, DurationProbe::Known)
}
