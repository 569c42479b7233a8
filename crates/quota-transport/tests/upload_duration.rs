//! Durations read from container headers of real, generated files.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod upload_support;

use std::time::Duration;

use quota_core::upload::FileFormat;
use quota_transport::upload::duration::{
    probe_duration, DurationProbe, DurationReader, HEADER_PREFIX_LIMIT,
};
use upload_support::*;

const MINUTE: u64 = 60;

fn known(secs: u64) -> DurationProbe {
    DurationProbe::Known(Duration::from_secs(secs))
}

/// Feeds `bytes` to a reader in `chunk`-byte pieces, then finishes.
fn stream_through(bytes: &[u8], chunk: usize) -> DurationProbe {
    let format = FileFormat::sniff(bytes).expect("a known format");
    let mut reader = DurationReader::for_format(format);
    for piece in bytes.chunks(chunk) {
        if let DurationProbe::Known(d) = reader.feed(piece) {
            return DurationProbe::Known(d);
        }
    }
    reader.finish()
}

#[test]
fn wav_of_one_second_lasts_one_second() {
    let one_second = wav_8k(1, 8000);
    assert_eq!(probe_duration(&one_second, true), known(1));
    let stereo_16bit = wav(44_100, 2, 16, 44_100 * 4 * 3, 1000);
    assert_eq!(probe_duration(&stereo_16bit, false), known(3));
}

#[test]
fn wav_header_declaring_601_minutes_reads_601_minutes_from_a_few_bytes() {
    let declared = wav_8k(601 * 60, 16);
    assert!(declared.len() < 100);
    assert_eq!(probe_duration(&declared, false), known(601 * MINUTE));
    assert_eq!(stream_through(&declared, 7), known(601 * MINUTE));
}

#[test]
fn wav_duration_has_millisecond_precision() {
    let b = wav(8000, 1, 8, 8000 * 36_000 + 8, 0); // 36000.001 s
    assert_eq!(
        probe_duration(&b, false),
        DurationProbe::Known(Duration::from_millis(36_000_001))
    );
}

#[test]
fn wav_with_a_placeholder_size_is_measured_at_its_end() {
    for placeholder in [0, u32::MAX] {
        let streamed = wav(8000, 1, 8, placeholder, 16_000);
        let mut reader = DurationReader::for_format(FileFormat::Wav);
        assert_eq!(reader.feed(&streamed), DurationProbe::NeedMore);
        assert_eq!(reader.finish(), known(2), "placeholder {placeholder:#x}");
    }
}

#[test]
fn wav_with_chunks_before_data_is_read_past_them() {
    let mut b = wav_8k(5, 0);
    let list = b"LIST\x05\0\0\0abcde\0"; // odd size, padded
    let at = b.len() - 8; // before the data chunk header
    b.splice(at..at, list.iter().copied());
    assert_eq!(probe_duration(&b, false), known(5));
}

#[test]
fn mp4_duration_comes_from_mvhd() {
    let v0 = mp4(b"isom", mvhd_v0(600, 600 * 90), 1000, true);
    assert_eq!(probe_duration(&v0, true), known(90));
    let v1 = mp4(b"mp42", mvhd_v1(90_000, 90_000 * 601 * 60), 1000, true);
    assert_eq!(probe_duration(&v1, false), known(601 * MINUTE));
    let m4a = mp4(b"M4A ", mvhd_v0(44_100, 44_100 * 30), 100, true);
    assert_eq!(FileFormat::sniff(&m4a), Some(FileFormat::M4a));
    assert_eq!(probe_duration(&m4a, false), known(30));
}

#[test]
fn mp4_with_moov_after_a_large_mdat_is_read_without_keeping_the_mdat() {
    // 5 MiB of media before the moov: larger than the header prefix.
    let file = mp4(b"isom", mvhd_v0(1000, 42_000), 5 << 20, false);
    assert!(file.len() > HEADER_PREFIX_LIMIT);
    assert_eq!(stream_through(&file, 64 * 1024), known(42));
    assert_eq!(stream_through(&file, 4093), known(42));
}

#[test]
fn mp4_with_a_64_bit_box_size_is_walked() {
    let mut file = ftyp(b"isom");
    let payload = vec![0u8; 300];
    file.extend_from_slice(&1u32.to_be_bytes());
    file.extend_from_slice(b"free");
    file.extend_from_slice(&(16 + payload.len() as u64).to_be_bytes());
    file.extend(payload);
    file.extend(iso_box(b"moov", &mvhd_v0(1, 77)));
    assert_eq!(stream_through(&file, 5), known(77));
}

#[test]
fn fragmented_mp4_counts_only_with_a_fragment_duration() {
    let mvex_without_mehd = iso_box(b"mvex", &iso_box(b"trex", &[0; 24]));
    let mut moov = mvhd_v0(1000, 0);
    moov.extend(mvex_without_mehd);
    let mut file = ftyp(b"iso6");
    file.extend(iso_box(b"moov", &moov));
    assert_eq!(probe_duration(&file, true), DurationProbe::Unknown);

    let mut mehd = vec![0, 0, 0, 0];
    mehd.extend_from_slice(&(700u32 * 60 * 1000).to_be_bytes());
    let mut moov = mvhd_v0(1000, 0);
    moov.extend(iso_box(b"mvex", &iso_box(b"mehd", &mehd)));
    let mut file = ftyp(b"iso6");
    file.extend(iso_box(b"moov", &moov));
    assert_eq!(probe_duration(&file, true), known(700 * MINUTE));
}

#[test]
fn mp4_whose_mvhd_says_unknown_is_unknown() {
    let file = mp4(b"isom", mvhd_v0(1000, u32::MAX), 10, true);
    assert_eq!(probe_duration(&file, true), DurationProbe::Unknown);
    let no_moov = {
        let mut f = ftyp(b"isom");
        f.extend(iso_box(b"mdat", &[0; 100]));
        f
    };
    assert_eq!(probe_duration(&no_moov, false), DurationProbe::NeedMore);
    assert_eq!(probe_duration(&no_moov, true), DurationProbe::Unknown);
}

#[test]
fn aiff_and_avi_durations_come_from_their_headers() {
    assert_eq!(probe_duration(&aiff(44_100 * 10, 44_100), false), known(10));
    assert_eq!(
        probe_duration(&aiff(8000 * 36_060, 8000), false),
        known(601 * MINUTE)
    );
    assert_eq!(probe_duration(&avi(25 * 60, 40_000), false), known(60));
}

#[test]
fn mp3_duration_comes_from_its_xing_header() {
    // 2297 frames × 1152 samples / 44100 Hz = 60.0 s (to the millisecond).
    let file = mp3_xing(2297, 3);
    let probe = probe_duration(&file, false);
    let d = probe.known().expect("xing duration");
    assert_eq!(d.as_millis(), 60_003);
    // 601 minutes declared by the Xing header of a 2 KB file.
    let long = mp3_xing(1_383_000, 3);
    let d = probe_duration(&long, false).known().unwrap();
    assert!(d > Duration::from_secs(600 * 60), "{d:?}");
}

#[test]
fn mp3_without_xing_is_measured_only_when_whole() {
    let file = mp3_plain(200);
    let mut reader = DurationReader::for_format(FileFormat::Mp3);
    assert_eq!(
        reader.feed(&file[..HEADER_PREFIX_LIMIT.min(file.len())]),
        DurationProbe::NeedMore
    );
    // The whole file is in the prefix: its length is known, so its bitrate gives a duration.
    let whole = reader
        .finish()
        .known()
        .expect("estimated from the whole file");
    assert!(
        whole > Duration::from_millis(5000) && whole < Duration::from_millis(5400),
        "{whole:?}"
    );
}

#[test]
fn flac_duration_comes_from_streaminfo() {
    let file = flac(48_000, 48_000 * 125);
    assert_eq!(probe_duration(&file, false), known(125));
}

#[test]
fn containers_without_a_cheap_duration_are_unknown() {
    let mut reader = DurationReader::for_format(FileFormat::Matroska);
    assert_eq!(reader.feed(&webm(4096)), DurationProbe::Unknown);
    assert_eq!(reader.finish(), DurationProbe::Unknown);
    assert_eq!(
        probe_duration(b"not media at all", true),
        DurationProbe::Unknown
    );
}

#[test]
fn truncated_headers_need_more_and_end_unknown() {
    let file = wav_8k(60, 0);
    for cut in 0..file.len() {
        let probe = probe_duration(&file[..cut], false);
        assert!(
            matches!(probe, DurationProbe::NeedMore | DurationProbe::Unknown),
            "cut {cut}: {probe:?}"
        );
        let probe = probe_duration(&file[..cut], true);
        assert!(
            matches!(probe, DurationProbe::Unknown) || probe.known().is_some(),
            "cut {cut}: {probe:?}"
        );
    }
}

/// xorshift: deterministic noise.
fn noise(seed: &mut u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            (*seed >> 24) as u8
        })
        .collect()
}

#[test]
fn garbage_after_every_magic_number_never_panics() {
    let samples: Vec<Vec<u8>> = vec![
        wav_8k(3, 100),
        mp4_secs(5, 200),
        mp4(b"M4A ", mvhd_v1(1, 5), 10, false),
        aiff(100, 8000),
        avi(10, 1000),
        mp3_xing(100, 2),
        mp3_plain(3),
        flac(44_100, 1000),
        webm(64),
        b"OggS\0\x02\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01\x1e\x01vorbis".to_vec(),
        vec![0xFF, 0xF1, 0x50, 0x80, 0x02, 0x1F, 0xFC],
    ];
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for sample in &samples {
        // Every truncation, whole or as a prefix.
        for cut in 0..sample.len().min(600) {
            let _ = probe_duration(&sample[..cut], false);
            let _ = probe_duration(&sample[..cut], true);
        }
        // The magic number, then noise; and the file with bytes flipped.
        for round in 0..40 {
            let keep = (round * 7) % sample.len().max(1);
            let mut b = sample[..keep].to_vec();
            b.extend(noise(&mut seed, 64 + round * 31));
            let _ = probe_duration(&b, round % 2 == 0);
            let mut flipped = sample.clone();
            for byte in noise(&mut seed, 4) {
                let i = usize::from(byte) % flipped.len();
                flipped[i] ^= byte | 1;
            }
            let _ = probe_duration(&flipped, round % 2 == 1);
            let _ = stream_through_any(&flipped, 1 + round);
        }
    }
}

fn stream_through_any(bytes: &[u8], chunk: usize) -> DurationProbe {
    let Some(format) = FileFormat::sniff(bytes) else {
        return DurationProbe::Unknown;
    };
    let mut reader = DurationReader::for_format(format);
    for piece in bytes.chunks(chunk) {
        let _ = reader.feed(piece);
    }
    reader.finish()
}
