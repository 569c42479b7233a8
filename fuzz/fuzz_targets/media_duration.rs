//! Media files of any content: reading a duration from container headers
//! (WAV, AIFF, AVI, FLAC, MP4/M4A, MP3, Ogg, ...) never panics or hangs, and
//! feeding the bytes in chunks never panics either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quota_core::upload::FileFormat;
use quota_transport::upload::duration::{probe_duration, DurationReader};

fuzz_target!(
    init: {
        // symphonia panics on some malformed streams; the duration reader
        // catches those panics (`catch_unwind`) and answers "unknown". The
        // fuzzer's own hook would abort on any panic, caught or not: keep the
        // process alive, so that only a panic that escapes our code (which
        // libfuzzer-sys still turns into a crash) is reported.
        std::panic::set_hook(Box::new(|_| {}));
    },
    |data: &[u8]| {
    let _ = probe_duration(data, true);
    let _ = probe_duration(data, false);
    if let Some(format) = FileFormat::sniff(data) {
        let mut reader = DurationReader::for_format(format);
        let step = 1 + usize::from(data.first().copied().unwrap_or(0) % 64);
        for chunk in data.chunks(step) {
            let _ = reader.feed(chunk);
        }
        let _ = reader.finish();
    }
    }
);
