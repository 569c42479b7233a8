//! `quota call`: a curl-like client that applies the seed's retry strategy.
//!
//! On a 429 it follows [`quota_core::client::Retry`]: a daily limit gives up
//! at once; a minute limit waits `max(Retry-After, 2^attempt + uniform(0,1))`
//! seconds and tries again, five attempts at most; any other error status
//! gives up. Each wait is printed on stderr (attempt, limit type, seconds);
//! the response body goes to stdout. With `--pace` a
//! [`Pacer`](quota_core::client::Pacer) fed with the `X-RateLimit-*` headers
//! delays requests before they are sent, so that a run of `--repeat N`
//! requests meets no 429.
//!
//! Exit codes: 0 for a final 1xx-3xx answer; 1 when it gave up (an error
//! status, a daily limit, or every attempt refused); 2 when no answer came
//! (bad URL, connection refused, unreadable file).

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use quota_core::client::{GiveUp, LimitType, Pacer, Retry, RetryAction, RetryPolicy};
use quota_core::Timestamp;
use rand::Rng;

use crate::cli::CallArgs;

/// The request to send, ready to be replayed.
struct Prepared {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

fn now() -> Timestamp {
    quota_transport::enforce::system_clock()
}

fn limit_name(t: LimitType) -> &'static str {
    match t {
        LimitType::Minute => "minute",
        LimitType::Daily => "daily",
        _ => "unnamed",
    }
}

fn prepare(args: &CallArgs) -> anyhow::Result<Prepared> {
    let uri: Uri = args
        .url
        .parse()
        .with_context(|| format!("invalid URL {:?}", args.url))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(s) => anyhow::bail!(
            "URL {:?}: scheme {s:?} is not supported (http only)",
            args.url
        ),
        None => anyhow::bail!(
            "URL {:?} needs a scheme, e.g. http://{}",
            args.url,
            args.url
        ),
    }
    let mut headers = HeaderMap::new();
    let mut body = Bytes::new();
    if let Some(data) = &args.data {
        body = match data.strip_prefix('@') {
            Some(path) => std::fs::read(path)
                .with_context(|| format!("cannot read {path}"))?
                .into(),
            None => Bytes::from(data.clone()),
        };
        let ct = if serde_json::from_slice::<serde_json::Value>(&body).is_ok() {
            "application/json"
        } else {
            "application/x-www-form-urlencoded"
        };
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    } else if !args.form.is_empty() {
        let (ct, b) = multipart(&args.form)?;
        headers.insert(CONTENT_TYPE, HeaderValue::from_str(&ct)?);
        body = b;
    }
    if let Some(key) = &args.key {
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {key}")).context("invalid key")?,
        );
    }
    for h in &args.headers {
        let (name, value) = h
            .split_once(':')
            .with_context(|| format!("header {h:?}: expected `Name: value`"))?;
        headers.insert(
            HeaderName::from_bytes(name.trim().as_bytes())
                .with_context(|| format!("invalid header name {name:?}"))?,
            HeaderValue::from_str(value.trim())
                .with_context(|| format!("invalid header value {value:?}"))?,
        );
    }
    let method = match &args.method {
        Some(m) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
            .with_context(|| format!("invalid method {m:?}"))?,
        None if args.data.is_some() || !args.form.is_empty() => Method::POST,
        None => Method::GET,
    };
    Ok(Prepared {
        method,
        uri,
        headers,
        body,
    })
}

/// A `multipart/form-data` body of `name=value` and `name=@path` fields.
fn multipart(fields: &[String]) -> anyhow::Result<(String, Bytes)> {
    let boundary = format!("quota-{:032x}", rand::thread_rng().gen::<u128>());
    let mut out = Vec::new();
    for f in fields {
        let (name, value) = f
            .split_once('=')
            .with_context(|| format!("form field {f:?}: expected name=value or name=@path"))?;
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match value.strip_prefix('@') {
            Some(path) => {
                let bytes = std::fs::read(path).with_context(|| format!("cannot read {path}"))?;
                let file_name = std::path::Path::new(path)
                    .file_name()
                    .map_or("file".into(), |n| n.to_string_lossy());
                out.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                    )
                    .as_bytes(),
                );
                out.extend_from_slice(&bytes);
            }
            None => {
                out.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                );
                out.extend_from_slice(value.as_bytes());
            }
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Ok((
        format!("multipart/form-data; boundary={boundary}"),
        out.into(),
    ))
}

/// Runs `quota call`; returns the exit code.
pub(crate) async fn run(args: &CallArgs) -> i32 {
    match call(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("quota call: {e:#}");
            2
        }
    }
}

async fn call(args: &CallArgs) -> anyhow::Result<i32> {
    let req = prepare(args)?;
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut pacer = Pacer::new();
    let mut stdout = std::io::stdout();
    for n in 0..args.repeat.max(1) {
        let mut retry = Retry::new(RetryPolicy::SEED);
        loop {
            if args.pace {
                let wait = pacer.poll_delay(now());
                if !wait.is_zero() {
                    eprintln!(
                        "quota call: pacing: waiting {:.1} s before request {}",
                        wait.as_secs_f64(),
                        n + 1
                    );
                    tokio::time::sleep(wait).await;
                    continue;
                }
                pacer.on_send(now());
            }
            let mut out = Request::builder()
                .method(req.method.clone())
                .uri(req.uri.clone());
            if let Some(h) = out.headers_mut() {
                h.extend(req.headers.clone());
            }
            let out = out.body(Full::new(req.body.clone()))?;
            let res = client
                .request(out)
                .await
                .with_context(|| format!("cannot reach {}", req.uri))?;
            let (parts, body) = res.into_parts();
            let body = body
                .collect()
                .await
                .context("the response body broke off")?
                .to_bytes();
            let at = now();
            if args.include {
                eprintln!("{:?} {}", parts.version, parts.status);
                for (k, v) in &parts.headers {
                    eprintln!("{k}: {}", String::from_utf8_lossy(v.as_bytes()));
                }
                eprintln!();
            }
            if args.pace {
                pacer.observe(parts.status.as_u16(), parts.headers.iter(), at);
            }
            let sample: f64 = rand::thread_rng().gen();
            match retry.handle_response(parts.status.as_u16(), parts.headers.iter(), at, sample) {
                RetryAction::Done => {
                    stdout.write_all(&body)?;
                    stdout.flush()?;
                    break;
                }
                RetryAction::RetryAt {
                    wait,
                    attempt,
                    limit_type,
                    ..
                } => {
                    eprintln!(
                        "quota call: attempt {} refused (429, {} limit); waiting {:.1} s",
                        attempt + 1,
                        limit_name(limit_type),
                        wait.as_secs_f64()
                    );
                    tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
                }
                RetryAction::GiveUp(why) => {
                    stdout.write_all(&body)?;
                    stdout.flush()?;
                    let what = match why {
                        GiveUp::DailyLimit {
                            retry_after: Some(w),
                        } => {
                            format!(
                                "daily limit reached after {} attempt(s); try again in {} s",
                                retry.attempts(),
                                w.as_secs()
                            )
                        }
                        GiveUp::Status(s) => format!(
                            "giving up: {} {}",
                            s,
                            StatusCode::from_u16(s)
                                .ok()
                                .and_then(|s| s.canonical_reason())
                                .unwrap_or("")
                        ),
                        other => format!("giving up: {other}"),
                    };
                    eprintln!("quota call: {what}");
                    return Ok(1);
                }
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    // tests may panic
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn multipart_body_has_each_field_and_a_closing_boundary() {
        let dir = std::env::temp_dir().join(format!("quota-call-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.bin");
        std::fs::write(&file, b"\x89PNG").unwrap();
        let (ct, body) =
            multipart(&["prompt=a cat".into(), format!("image=@{}", file.display())]).unwrap();
        let boundary = ct.strip_prefix("multipart/form-data; boundary=").unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("name=\"prompt\"\r\n\r\na cat\r\n"));
        assert!(text.contains("filename=\"a.bin\""));
        assert!(text.ends_with(&format!("--{boundary}--\r\n")));
        let _ = std::fs::remove_dir_all(dir);
    }
}
