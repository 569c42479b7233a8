//! Uploads through the layer: a streamed body cut at its limit, multipart
//! parts classified by their bytes and checked for size and duration, and
//! bodies that pass reaching the service unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod enforce_support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use enforce_support::{accounts, checksum, policy_with_price, serve, TestServer, VirtualClock, T0};
use quota_core::account::AccountAdmin;
use quota_core::policy::Money;
use quota_core::MemoryStore;
use quota_transport::enforce::EnforceLayer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server() -> TestServer {
    let layer = EnforceLayer::new(
        policy_with_price(),
        Arc::new(MemoryStore::new()),
        Arc::new(accounts().await),
    )
    .clock(VirtualClock::at(T0).func());
    serve(layer).await
}

/// Sends a chunked body of up to `total` bytes in 64 KiB chunks over a raw
/// socket, stopping when the server answers or stops reading. Returns the
/// answer and how many body bytes were written.
async fn stream_chunked(
    server: &TestServer,
    path: &str,
    key: &str,
    total: usize,
) -> (String, usize) {
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\nx-api-key: {key}\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    wr.write_all(head.as_bytes()).await.unwrap();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 8192];
        while !got.ends_with(b"}") {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    });
    let chunk = vec![b'x'; 64 * 1024];
    let mut written = 0;
    while written < total && !reader.is_finished() {
        let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        match tokio::time::timeout(Duration::from_secs(2), wr.write_all(&frame)).await {
            Ok(Ok(())) => written += chunk.len(),
            _ => break, // the server stopped reading
        }
    }
    let answer = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("an answer")
        .unwrap();
    (answer, written)
}

#[tokio::test]
async fn a_streamed_50_mib_body_is_cut_at_the_limit_and_answered_413() {
    let server = server().await;
    let (answer, written) = stream_chunked(&server, "/v1/txt2img", "k-basic", 50 << 20).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    // The body is one file of no known kind: the 10 MiB limit of `other` cuts it.
    assert!(
        answer.ends_with(r#"{"message":"file exceeds the 10 MiB limit for txt2img"}"#),
        "{answer}"
    );
    assert!(
        written < 30 << 20,
        "the server stopped reading early, {written} bytes were sent"
    );
    // The service read at most the limit, then a failed read.
    let answers = server.seen.answers.lock().unwrap().clone();
    assert_eq!(answers.len(), 1);
    let read: usize = answers[0]
        .strip_prefix("read failed after ")
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(read <= 10 << 20, "{read}");
}

#[tokio::test]
async fn a_cut_upload_gives_back_its_charge() {
    let accounts = Arc::new(accounts().await);
    let layer = EnforceLayer::new(
        policy_with_price(),
        Arc::new(MemoryStore::new()),
        Arc::clone(&accounts),
    )
    .clock(VirtualClock::at(T0).func());
    let server = serve(layer).await;
    let (answer, _) = stream_chunked(&server, "/v1/paid", "k-basic", 12 << 20).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("x-ratelimit-remaining: 99"),
        "the request was counted: {answer}"
    );
    assert_eq!(
        accounts.get("acct-basic").await.unwrap().unwrap().credit,
        Money::from_dollars(5)
    );
}

/// A WAV header: 8 kHz mono 8-bit (8000 bytes a second) declaring `secs`
/// seconds of data, followed by `data` bytes.
fn wav(secs: u32, data: usize) -> Vec<u8> {
    let mut w = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0".to_vec();
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&[1, 0, 8, 0]);
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(secs * 8000).to_le_bytes());
    w.extend(std::iter::repeat_n(0x80, data));
    w
}

/// An MP4 (`ftyp isom`, `moov/mvhd` of `secs` seconds, an `mdat` of `data` bytes).
fn mp4(secs: u32, data: usize) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&24u32.to_be_bytes());
    f.extend_from_slice(b"ftypisom\0\0\x02\0isommp41");
    let mut mvhd = vec![0u8; 100];
    mvhd[12..16].copy_from_slice(&1000u32.to_be_bytes()); // timescale
    mvhd[16..20].copy_from_slice(&(secs * 1000).to_be_bytes()); // duration
    f.extend_from_slice(&(8 + 8 + 100u32).to_be_bytes());
    f.extend_from_slice(b"moov");
    f.extend_from_slice(&(8 + 100u32).to_be_bytes());
    f.extend_from_slice(b"mvhd");
    f.extend_from_slice(&mvhd);
    f.extend_from_slice(&(8 + data as u32).to_be_bytes());
    f.extend_from_slice(b"mdat");
    f.extend(std::iter::repeat_n(7, data));
    f
}

fn png(data: usize) -> Vec<u8> {
    let mut p = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    p.extend(std::iter::repeat_n(1, data));
    p
}

/// A `multipart/form-data` body with a prompt field and the given files
/// (name, claimed content type, bytes).
fn multipart(files: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut b =
        b"--BOUNDARY\r\ncontent-disposition: form-data; name=\"prompt\"\r\n\r\na cat\r\n".to_vec();
    for (name, claimed, bytes) in files {
        b.extend_from_slice(
            format!("--BOUNDARY\r\ncontent-disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\ncontent-type: {claimed}\r\n\r\n")
                .as_bytes(),
        );
        b.extend_from_slice(bytes);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(b"--BOUNDARY--\r\n");
    b
}

async fn post_multipart(server: &TestServer, path: &str, body: Vec<u8>) -> enforce_support::Answer {
    post_multipart_as(server, "k-basic", path, body).await
}

async fn post_multipart_as(
    server: &TestServer,
    key: &str,
    path: &str,
    body: Vec<u8>,
) -> enforce_support::Answer {
    let headers = [
        ("x-api-key", key),
        ("content-type", "multipart/form-data; boundary=BOUNDARY"),
    ];
    server.post(path, &headers, Bytes::from(body)).await
}

#[tokio::test]
async fn image_audio_and_video_parts_within_the_limits_reach_the_service_unchanged() {
    let server = server().await;
    let body = multipart(&[
        ("image", "image/png", &png(300_000)),
        ("audio", "audio/wav", &wav(2, 16_000)),
        ("video", "video/mp4", &mp4(5, 500_000)),
    ]);
    let a = post_multipart(&server, "/v1/aud2video", body.clone()).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.body,
        format!("read {} bytes, checksum {}", body.len(), checksum(&body))
    );
}

#[tokio::test]
async fn audio_declaring_more_than_600_minutes_is_422_naming_the_limit() {
    let server = server().await;
    let body = multipart(&[("audio", "audio/wav", &wav(601 * 60, 4000))]);
    let a = post_multipart(&server, "/v1/aud2txt", body).await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert_eq!(
        a.message(),
        "audio file lasts 601 minutes, over the 600 minutes duration limit"
    );
}

#[tokio::test]
async fn a_part_is_limited_by_the_kind_of_its_bytes_not_its_claimed_type() {
    let server = server().await;
    // 11 MiB of PNG claimed to be audio: aud2video takes 20 MiB of audio
    // but only 10 MiB of image.
    let body = multipart(&[("audio", "audio/wav", &png(11 << 20))]);
    let a = post_multipart(&server, "/v1/aud2video", body).await;
    assert_eq!(a.status, 413, "{}", a.body);
    assert_eq!(
        a.message(),
        "image file exceeds the 10 MiB limit for aud2video"
    );
    // 15 MiB of real audio is fine there (another account: aud2video
    // takes 1 a minute).
    let body = multipart(&[("audio", "audio/wav", &wav(60, 15 << 20))]);
    assert_eq!(
        post_multipart_as(&server, "k-basic2", "/v1/aud2video", body)
            .await
            .status,
        200
    );
}
