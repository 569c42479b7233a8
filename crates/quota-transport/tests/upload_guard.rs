//! Prechecking headers, and guarding bodies that are not multipart.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod upload_support;

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use quota_core::upload::{FileKind, UploadRefusal, UploadRules, MULTIPART_SLACK};
use quota_transport::upload::{guard_body, precheck, UploadError};
use upload_support::*;

const MIB: u64 = 1024 * 1024;

fn with_length(len: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from_str(len).unwrap());
    headers
}

#[test]
fn content_length_over_the_body_limit_is_refused_before_reading() {
    let rules = UploadRules::seed();
    let over = (10 * MIB + MULTIPART_SLACK + 1).to_string();
    let err = precheck(&with_length(&over), "txt2img", &rules).unwrap_err();
    assert_eq!(err.status().as_u16(), 413);
    assert!(matches!(
        err,
        UploadError::Refused(UploadRefusal::BodyTooLarge { .. })
    ));
    assert_eq!(
        err.json_body(),
        r#"{"message":"request body exceeds the 10 MiB limit for txt2img (plus 64 KiB for the multipart form around the file)"}"#
    );

    let at_limit = (10 * MIB + MULTIPART_SLACK).to_string();
    assert!(precheck(&with_length(&at_limit), "txt2img", &rules).is_ok());
    // aud2video's audio limit raises its body limit.
    assert!(precheck(&with_length(&(20 * MIB).to_string()), "aud2video", &rules).is_ok());
}

#[test]
fn no_content_length_passes_the_precheck() {
    assert!(precheck(&HeaderMap::new(), "txt2img", &UploadRules::seed()).is_ok());
}

#[test]
fn malformed_headers_are_400() {
    let rules = UploadRules::seed();
    for bad in ["-1", "ten", "1e6", "", " 5", "99999999999999999999999"] {
        let err = precheck(&with_length(bad), "txt2img", &rules).unwrap_err();
        assert_eq!(err.status().as_u16(), 400, "{bad:?}");
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("multipart/form-data; charset=utf-8"),
    );
    let err = precheck(&headers, "txt2img", &rules).unwrap_err();
    assert!(matches!(err, UploadError::Malformed { .. }));
    assert!(err.to_string().contains("boundary"), "{err}");
}

#[tokio::test]
async fn a_raw_body_is_checked_as_one_file() {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    let rules = Arc::new(UploadRules::seed());

    let long = wav_8k(601 * 60, 50_000);
    let (guarded, verdict) = guard_body(chunked(long, 1000), &headers, "aud2txt", rules.clone());
    let (forwarded, error) = drain(guarded).await;
    assert!(matches!(
        error,
        Some(UploadError::Refused(UploadRefusal::TooLong {
            kind: FileKind::Audio,
            ..
        }))
    ));
    assert!(forwarded.len() < 2000);
    assert_eq!(verdict.rejection().unwrap().status().as_u16(), 422);

    let fine = wav_8k(60, 480_000);
    let (guarded, _) = guard_body(chunked(fine.clone(), 4096), &headers, "aud2txt", rules);
    let (forwarded, error) = drain(guarded).await;
    assert!(error.is_none());
    assert_eq!(forwarded, fine);
}

#[tokio::test]
async fn a_json_body_passes_unchanged() {
    let json = br#"{"prompt":"a cat","steps":30}"#;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let (guarded, verdict) = guard_body(
        Full::new(Bytes::from_static(json)),
        &headers,
        "txt2img",
        Arc::new(UploadRules::seed()),
    );
    let collected = guarded.collect().await.unwrap().to_bytes();
    assert_eq!(&collected[..], json);
    assert!(!verdict.is_rejected());
}

#[tokio::test]
async fn a_short_file_is_checked_at_its_end_so_the_body_is_not_over_early() {
    // 60 bytes: shorter than the sniffing window, so only the end decides.
    let short = wav_8k(601 * 60, 16);
    let rules = UploadRules::seed();
    let (guarded, verdict) = guard_body(
        Full::new(Bytes::from(short)),
        &HeaderMap::new(),
        "aud2txt",
        Arc::new(rules),
    );
    assert!(!guarded.is_end_stream());
    let err = guarded.collect().await.unwrap_err();
    assert_eq!(err.status().as_u16(), 422);
    assert!(verdict.is_rejected());
}

#[test]
fn an_error_becomes_a_json_response() {
    let refusal = UploadRules::seed()
        .check_size("aud2video", FileKind::Audio, 21 * MIB)
        .unwrap_err();
    let response: http::Response<Full<Bytes>> = UploadError::from(refusal).to_response();
    assert_eq!(response.status().as_u16(), 413);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
}
