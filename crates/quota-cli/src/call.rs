//! `quota call`: a curl-like client that applies the seed's retry strategy.
//!
//! The client is a tower stack over hyper-util's client, built from
//! quota-transport's own layers: a [`RetryLayer`] follows the seed's
//! strategy on a 429 (a daily limit gives up at once; a minute limit waits
//! `max(Retry-After, 2^attempt + uniform(0,1))` seconds and tries again, five
//! attempts at most; any other error status gives up), and with `--pace` a
//! [`PaceLayer`] under it, fed with the `X-RateLimit-*` headers, delays
//! requests before they are sent, so that a run of `--repeat N` requests
//! meets no 429. Each wait is printed on stderr (attempt, limit type,
//! seconds); the response body goes to stdout.
//!
//! Exit codes: 0 for a final 1xx-3xx answer; 1 when it gave up (an error
//! status, a daily limit, or every attempt refused); 2 when no answer came
//! (bad URL, connection refused, unreadable file).

use std::io::Write as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use quota_core::client::Form;
use quota_transport::pace::PaceLayer;
use quota_transport::retry::{GiveUp, RetryLayer, RetryOutcome, RetryPolicy, RetryWait};
use rand::Rng;
use tower::{ServiceBuilder, ServiceExt};

use crate::cli::CallArgs;

/// The request to send; each attempt sends a copy.
fn prepare(args: &CallArgs) -> anyhow::Result<Request<Full<Bytes>>> {
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
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}

/// A `multipart/form-data` body of `name=value` and `name=@path` fields.
fn multipart(fields: &[String]) -> anyhow::Result<(String, Bytes)> {
    let mut form = Form::new(&format!("quota-{:032x}", rand::thread_rng().gen::<u128>()));
    for f in fields {
        let (name, value) = f
            .split_once('=')
            .with_context(|| format!("form field {f:?}: expected name=value or name=@path"))?;
        match value.strip_prefix('@') {
            Some(path) => {
                let bytes = std::fs::read(path).with_context(|| format!("cannot read {path}"))?;
                let file_name = std::path::Path::new(path).file_name();
                let file_name = file_name.map_or("file".into(), |n| n.to_string_lossy());
                form.file(name, &file_name, &bytes)
            }
            None => form.field(name, value.as_bytes()),
        };
    }
    let (content_type, body) = form.finish();
    Ok((content_type, body.into()))
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

/// Prints a wait of the retry layer on stderr.
fn report_wait(wait: &RetryWait) {
    eprintln!(
        "quota call: attempt {} refused (429, {} limit); waiting {:.1} s",
        wait.attempt,
        wait.limit_type.as_str(),
        wait.wait.as_secs_f64()
    );
}

/// Prints the status line and headers of an answer on stderr (`-i`).
fn print_head<B>(response: &Response<B>) {
    eprintln!("{:?} {}", response.version(), response.status());
    for (k, v) in response.headers() {
        eprintln!("{k}: {}", String::from_utf8_lossy(v.as_bytes()));
    }
    eprintln!();
}

/// What to say when the retry layer gave up.
fn give_up_message(why: GiveUp, attempts: u32) -> String {
    match why {
        GiveUp::DailyLimit {
            retry_after: Some(w),
        } => format!(
            "daily limit reached after {attempts} attempt(s); try again in {} s",
            w.as_secs()
        ),
        GiveUp::Status(s) => format!(
            "giving up: {} {}",
            s,
            StatusCode::from_u16(s)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("")
        ),
        other => format!("giving up: {other}"),
    }
}

async fn call(args: &CallArgs) -> anyhow::Result<i32> {
    let request = prepare(args)?;
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    // The request of the run being paced, counted from 1, for the messages.
    let number = Arc::new(AtomicU32::new(1));
    let pace = args.pace.then(|| {
        let number = Arc::clone(&number);
        PaceLayer::new().on_delay(move |wait| {
            eprintln!(
                "quota call: pacing: waiting {:.1} s before request {}",
                wait.as_secs_f64(),
                number.load(Ordering::Relaxed)
            );
        })
    });
    let include = args.include;
    // Retry outside the pacer: every retry is paced and every answer teaches
    // the pacer; `-i` shows the head of every attempt, refused ones included.
    let api = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryPolicy::SEED).on_wait(report_wait))
        .map_response(move |response: Response<_>| {
            if include {
                print_head(&response);
            }
            response
        })
        .option_layer(pace)
        .service(client);
    let mut stdout = std::io::stdout();
    for n in 1..=args.repeat.max(1) {
        number.store(n, Ordering::Relaxed);
        let response = api
            .clone()
            .oneshot(request.clone())
            .await
            .with_context(|| format!("cannot reach {}", request.uri()))?;
        let outcome = *response
            .extensions()
            .get::<RetryOutcome>()
            .context("the retry layer recorded no outcome")?;
        let body = response
            .into_body()
            .collect()
            .await
            .context("the response body broke off")?
            .to_bytes();
        stdout.write_all(&body)?;
        stdout.flush()?;
        if let Some(why) = outcome.gave_up {
            eprintln!("quota call: {}", give_up_message(why, outcome.attempts));
            return Ok(1);
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
