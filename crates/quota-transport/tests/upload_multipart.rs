//! Multipart uploads checked part by part while the body streams.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod upload_support;

use std::sync::Arc;
use std::time::Duration;

use quota_core::upload::{FileKind, UnknownDuration, UploadRefusal, UploadRules};
use quota_transport::upload::{guard_body, UploadError};
use upload_support::*;

const MIB: usize = 1024 * 1024;

/// Streams `body` through the guard in `chunk`-byte frames.
async fn send(
    endpoint: &str,
    rules: UploadRules,
    body: Vec<u8>,
    chunk: usize,
) -> (Vec<u8>, Option<UploadError>) {
    let headers = multipart_headers(Some(body.len()));
    let (guarded, verdict) = guard_body(chunked(body, chunk), &headers, endpoint, Arc::new(rules));
    let (forwarded, error) = drain(guarded).await;
    // The verdict holds exactly the refusal the body yielded.
    assert_eq!(
        verdict.rejection().map(|e| e.to_string()),
        error.as_ref().map(|e| e.to_string())
    );
    (forwarded, error)
}

fn refusal(error: Option<UploadError>) -> UploadRefusal {
    match error {
        Some(UploadError::Refused(refusal)) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn image_audio_and_video_within_limits_pass_through_byte_for_byte() {
    let image = png(3 * MIB);
    let audio = wav_8k(599 * 60, 2 * MIB); // declares 599 minutes
    let video = mp4_secs(90, 4 * MIB);
    let body = multipart(&[
        field("prompt", "a cat playing the cello"),
        file("image", "cat.png", "image/png", &image),
        file("audio", "cello.wav", "audio/wav", &audio),
        file("video", "clip.mp4", "video/mp4", &video),
    ]);
    assert!(body.len() > 9 * MIB);
    for chunk in [8191, 64 * 1024] {
        let (forwarded, error) = send("vid2txt", UploadRules::seed(), body.clone(), chunk).await;
        assert!(error.is_none(), "{error:?}");
        assert!(forwarded == body, "forwarded bytes differ from the input");
    }
}

#[tokio::test]
async fn an_image_over_10_mib_is_refused_with_413_near_the_limit() {
    let image = png(10 * MIB + 1);
    let body = multipart(&[
        field("prompt", "x"),
        file("image", "big.png", "image/png", &image),
    ]);
    let (forwarded, error) = send("img2img", UploadRules::seed(), body.clone(), 16 * 1024).await;
    let refusal = refusal(error);
    assert_eq!(refusal.status_code(), 413);
    assert_eq!(
        refusal.message(),
        "image file exceeds the 10 MiB limit for img2img"
    );
    assert!(matches!(
        refusal,
        UploadRefusal::TooLarge {
            kind: FileKind::Image,
            ..
        }
    ));
    let image_start = body.len() - image.len() - BOUNDARY.len() - 8;
    // Cut within one boundary's length past the limit; the rest never forwarded.
    assert!(
        forwarded.len() <= image_start + 10 * MIB + BOUNDARY.len() + 8,
        "{}",
        forwarded.len()
    );
    assert!(forwarded.len() < body.len());
    assert_eq!(forwarded, body[..forwarded.len()]);
}

#[tokio::test]
async fn an_image_of_exactly_10_mib_passes() {
    let image = png(10 * MIB);
    assert_eq!(image.len(), 10 * MIB);
    let body = multipart(&[file("image", "ok.png", "image/png", &image)]);
    let (forwarded, error) = send("img2img", UploadRules::seed(), body.clone(), 64 * 1024).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(forwarded.len(), body.len());
}

#[tokio::test]
async fn aud2video_takes_15_mib_of_audio_that_aud2txt_refuses() {
    let audio = wav_8k(30 * 60, 15 * MIB);
    let body = multipart(&[file("audio", "talk.wav", "audio/wav", &audio)]);
    let (forwarded, error) = send("aud2video", UploadRules::seed(), body.clone(), 64 * 1024).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(forwarded.len(), body.len());

    let (_, error) = send("aud2txt", UploadRules::seed(), body, 64 * 1024).await;
    assert_eq!(
        refusal(error).message(),
        "audio file exceeds the 10 MiB limit for aud2txt"
    );
}

#[tokio::test]
async fn audio_declaring_601_minutes_is_refused_with_422_from_its_header() {
    let audio = wav_8k(601 * 60, 3 * MIB);
    let body = multipart(&[file("audio", "long.wav", "audio/wav", &audio)]);
    let (forwarded, error) = send("aud2txt", UploadRules::seed(), body, 4096).await;
    let refusal = refusal(error);
    assert_eq!(refusal.status_code(), 422);
    assert_eq!(
        refusal,
        UploadRefusal::TooLong {
            kind: FileKind::Audio,
            limit: Duration::from_secs(600 * 60),
            duration: Duration::from_secs(601 * 60)
        }
    );
    // Decided from the first bytes of the part, not at its end.
    assert!(forwarded.len() < 16 * 1024, "{}", forwarded.len());
}

#[tokio::test]
async fn exactly_600_minutes_passes() {
    let audio = wav_8k(600 * 60, 1000);
    let video = mp4(b"isom", mvhd_v0(1000, 600 * 60 * 1000), 1000, false);
    let body = multipart(&[
        file("a", "a.wav", "audio/wav", &audio),
        file("v", "v.mp4", "video/mp4", &video),
    ]);
    let (_, error) = send("vid2txt", UploadRules::seed(), body, 333).await;
    assert!(error.is_none(), "{error:?}");
}

#[tokio::test]
async fn video_with_moov_at_the_end_is_refused_when_too_long() {
    let video = mp4(b"isom", mvhd_v0(1000, 601 * 60 * 1000), 2 * MIB, false);
    let body = multipart(&[file("video", "late-moov.mp4", "video/mp4", &video)]);
    let (_, error) = send("vid2txt", UploadRules::seed(), body, 64 * 1024).await;
    assert!(matches!(
        refusal(error),
        UploadRefusal::TooLong {
            kind: FileKind::Video,
            ..
        }
    ));
}

#[tokio::test]
async fn the_kind_comes_from_the_bytes_not_the_claimed_type() {
    // Claims to be a PNG, is a WAV declaring 601 minutes: refused as audio.
    let audio = wav_8k(601 * 60, 100);
    let body = multipart(&[file("image", "innocent.png", "image/png", &audio)]);
    let (_, error) = send("img2img", UploadRules::seed(), body, 1000).await;
    assert!(matches!(
        refusal(error),
        UploadRefusal::TooLong {
            kind: FileKind::Audio,
            ..
        }
    ));

    // Claims to be audio on aud2video (20 MiB), is a 12 MiB PNG: refused as an image.
    let image = png(12 * MIB);
    let body = multipart(&[file("audio", "song.wav", "audio/wav", &image)]);
    let (_, error) = send("aud2video", UploadRules::seed(), body, 64 * 1024).await;
    assert_eq!(
        refusal(error).message(),
        "image file exceeds the 10 MiB limit for aud2video"
    );
}

#[tokio::test]
async fn a_video_over_10_mib_is_refused() {
    let video = mp4_secs(60, 10 * MIB);
    let body = multipart(&[file("video", "big.mp4", "video/mp4", &video)]);
    let (_, error) = send("img2video", UploadRules::seed(), body, 64 * 1024).await;
    assert_eq!(
        refusal(error).message(),
        "video file exceeds the 10 MiB limit for img2video"
    );
}

#[tokio::test]
async fn unreadable_duration_is_allowed_by_default_and_refused_when_configured() {
    let video = webm(100_000);
    let body = multipart(&[file("video", "clip.webm", "video/webm", &video)]);
    let (forwarded, error) = send("vid2txt", UploadRules::seed(), body.clone(), 4096).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(forwarded, body);

    let strict = UploadRules::seed().with_unknown_duration(UnknownDuration::Refuse);
    let (_, error) = send("vid2txt", strict, body, 4096).await;
    let refusal = refusal(error);
    assert_eq!(refusal.status_code(), 422);
    assert!(matches!(
        refusal,
        UploadRefusal::DurationUnknown {
            kind: FileKind::Video,
            ..
        }
    ));
}

#[tokio::test]
async fn many_parts_within_limits_but_over_the_body_limit_are_refused() {
    let image = png(4 * MIB);
    let body = multipart(&[
        file("a", "a.png", "image/png", &image),
        file("b", "b.png", "image/png", &image),
        file("c", "c.png", "image/png", &image),
    ]);
    let (forwarded, error) = send("img2img", UploadRules::seed(), body, 64 * 1024).await;
    assert!(matches!(refusal(error), UploadRefusal::BodyTooLarge { .. }));
    assert!(forwarded.len() <= 10 * MIB + 64 * 1024);
}

#[tokio::test]
async fn a_truncated_multipart_body_is_malformed_at_its_end() {
    let mut body = multipart(&[file("image", "a.png", "image/png", &png(1000))]);
    body.truncate(body.len() - 30);
    let (forwarded, error) = send("img2img", UploadRules::seed(), body.clone(), 100).await;
    let error = error.expect("a truncated body fails");
    assert!(matches!(error, UploadError::Malformed { .. }), "{error:?}");
    assert_eq!(error.status().as_u16(), 400);
    assert_eq!(forwarded, body);
}

#[tokio::test]
async fn a_multipart_content_type_without_boundary_fails_the_body() {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        "multipart/form-data".parse().unwrap(),
    );
    let (guarded, verdict) = guard_body(
        chunked(b"anything".to_vec(), 4),
        &headers,
        "img2img",
        Arc::new(UploadRules::seed()),
    );
    let (forwarded, error) = drain(guarded).await;
    assert!(forwarded.is_empty());
    assert!(matches!(error, Some(UploadError::Malformed { .. })));
    assert!(verdict.is_rejected());
}

#[tokio::test]
async fn garbage_parts_never_panic() {
    let mut seed = 0x0123_4567_89AB_CDEFu64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let samples = [
        wav_8k(10, 300),
        mp4_secs(3, 300),
        mp3_xing(10, 1),
        flac(8000, 100),
        png(300),
        webm(300),
    ];
    for round in 0..200 {
        let sample = &samples[round % samples.len()];
        let mut data = sample[..(next() as usize % sample.len())].to_vec();
        data.extend((0..next() % 2000).map(|_| next() as u8));
        let body = multipart(&[file("f", "f.bin", "application/octet-stream", &data)]);
        let chunk = 1 + next() as usize % 700;
        let _ = send("vid2txt", UploadRules::seed(), body, chunk).await;
    }
}
