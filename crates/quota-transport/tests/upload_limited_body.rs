//! `LimitedBody` cuts a body at its limit without buffering it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod upload_support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{stream, StreamExt};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full, StreamBody};
use quota_core::upload::{UploadRefusal, UploadRules};
use quota_transport::upload::{LimitedBody, UploadError};
use upload_support::drain;

const CHUNK: usize = 64 * 1024;
const FIFTY_MB: usize = 50 * 1000 * 1000;

/// A 50 MB body made lazily of one shared 64 KiB buffer; counts the chunks pulled.
fn fifty_mb_stream(
    pulled: Arc<AtomicUsize>,
) -> StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>>> {
    let chunk = Bytes::from(vec![0x42u8; CHUNK]);
    let count = FIFTY_MB.div_ceil(CHUNK);
    StreamBody::new(stream::iter(0..count).map(move |i| {
        pulled.fetch_add(1, Ordering::SeqCst);
        let len = if i + 1 == count {
            FIFTY_MB - i * CHUNK
        } else {
            CHUNK
        };
        Ok(Frame::data(chunk.slice(..len)))
    }))
}

#[tokio::test]
async fn a_50_mb_stream_is_cut_at_the_limit_without_reading_the_rest() {
    let rules = UploadRules::seed();
    let limit = rules.max_body("txt2img");
    let pulled = Arc::new(AtomicUsize::new(0));
    let body = LimitedBody::for_endpoint(fifty_mb_stream(pulled.clone()), "txt2img", &rules);
    let verdict = body.verdict();

    let (forwarded, error) = drain(body).await;

    assert!(
        forwarded.len() as u64 <= limit,
        "forwarded {} > limit {limit}",
        forwarded.len()
    );
    assert!(
        forwarded.len() as u64 > limit - CHUNK as u64,
        "cut well before the limit"
    );
    let error = error.expect("the body fails at the limit");
    assert!(matches!(
        &error,
        UploadError::Refused(UploadRefusal::BodyTooLarge { limit_bytes, .. }) if *limit_bytes == limit
    ));
    assert_eq!(error.status().as_u16(), 413);
    // Only the chunks up to and including the one that crossed the limit were pulled.
    assert_eq!(pulled.load(Ordering::SeqCst), forwarded.len() / CHUNK + 1);
    let recorded = verdict.rejection().expect("recorded for the layer");
    assert_eq!(
        recorded.json_body(),
        r#"{"message":"request body exceeds the 10 MiB limit for txt2img (plus 64 KiB for the multipart form around the file)"}"#
    );
}

#[tokio::test]
async fn a_body_within_the_limit_passes_unchanged() {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let body = LimitedBody::new(
        upload_support::chunked(data.clone(), 999),
        "img2img",
        100_000,
    );
    let verdict = body.verdict();
    let (forwarded, error) = drain(body).await;
    assert!(error.is_none());
    assert_eq!(forwarded, data);
    assert!(!verdict.is_rejected());
}

#[tokio::test]
async fn one_byte_over_the_limit_is_refused() {
    let body = LimitedBody::new(Full::new(Bytes::from(vec![0u8; 1001])), "x", 1000);
    let err = body.collect().await.unwrap_err();
    assert!(matches!(
        err,
        UploadError::Refused(UploadRefusal::BodyTooLarge { size: 1001, .. })
    ));
}

#[tokio::test]
async fn after_the_cut_the_body_is_over() {
    let mut body = std::pin::pin!(LimitedBody::new(
        Full::new(Bytes::from(vec![0u8; 10])),
        "x",
        5
    ));
    assert!(body.frame().await.unwrap().is_err());
    assert!(body.is_end_stream());
    assert!(body.frame().await.is_none());
}
