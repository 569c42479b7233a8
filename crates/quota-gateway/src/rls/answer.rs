//! What the enforcement layer decided, as Envoy's `RateLimitResponse`. No
//! I/O.
//!
//! - **Admitted**: `OK`, the descriptor's status with the binding limit
//!   (the one with the fewest units left), and the seed's rate-limit
//!   headers in `response_headers_to_add` (Envoy adds them to the
//!   upstream's answer, as the gateway does).
//! - **Refused**, for any reason: `OVER_LIMIT`, with the gateway's own
//!   answer in `response_headers_to_add` and `raw_body` (a 429's six
//!   headers and the seed's body; a 401's, 402's, 404's or 503's JSON
//!   message). Envoy answers every `OVER_LIMIT` with the status of its
//!   filter (`429` unless configured otherwise), so when the gateway's
//!   status is not 429 it is also sent as `x-quota-status`.

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::HeaderValue;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    rate_limit::Unit, Code, DescriptorStatus, RateLimit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitResponse;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, Response};
use quota_core::report::{FieldName, LimitReport};
use quota_core::RateReport;
use quota_transport::enforce::Admitted;
use std::cmp::Ordering;
use std::time::Duration;

/// The header that carries the gateway's status (401, 402, 404, 503...)
/// in a refusal that is not a 429: Envoy answers every `OVER_LIMIT` with
/// one status of its own.
pub const QUOTA_STATUS_HEADER: &str = "x-quota-status";

/// The answer to a request whose descriptors were all admitted: a status
/// per descriptor, and the headers of the one with the fewest units left
/// (the seed's headers describe one limit).
pub(crate) fn admitted(all: &[Admitted]) -> RateLimitResponse {
    let mut statuses = Vec::with_capacity(all.len());
    // The report and the limit of the descriptor with the fewest units
    // left (the shortest window among equals; the first among equals).
    let mut tightest: Option<(&RateReport, (u64, Duration))> = None;
    for ok in all {
        let report = ok.report();
        let limit = report.and_then(binding);
        statuses.push(status(Code::Ok, limit));
        if let Some(report) = report {
            let key = limit.map_or((u64::MAX, Duration::MAX), |l| (l.remaining, l.window));
            if tightest.is_none_or(|(_, least)| key < least) {
                tightest = Some((report, key));
            }
        }
    }
    // The seed's fields straight from the report: no header map between.
    let headers = tightest.map_or_else(Vec::new, |(report, _)| seed_headers(report));
    RateLimitResponse {
        overall_code: Code::Ok.into(),
        statuses,
        response_headers_to_add: headers,
        ..RateLimitResponse::default()
    }
}

/// The fields of `report` ([`RateReport::fields`]: the same names, values
/// and order), rendered straight into the proto's strings: a count is
/// written as digits into its string, with no text in between.
fn seed_headers(report: &RateReport) -> Vec<HeaderValue> {
    let mut headers = Vec::with_capacity(FieldName::ALL.len());
    for field in FieldName::ALL {
        let value = match report.number(field) {
            Some(n) if report.has(field) => decimal(n),
            _ => match report.value(field) {
                Some(value) => value.as_str().to_owned(),
                None => continue,
            },
        };
        headers.push(HeaderValue {
            key: field.lowercase().to_owned(),
            value,
            ..HeaderValue::default()
        });
    }
    headers
}

/// `n` in decimal.
fn decimal(n: u64) -> String {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        // n % 10 < 10: the cast keeps it whole.
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut out = String::with_capacity(digits.len() - at);
    out.extend(digits[at..].iter().map(|&d| char::from(d)));
    out
}

/// The answer to a request whose descriptor `at` (of `total`) was refused
/// with `response` (and a 429's `report`): the descriptors before it were
/// admitted, then given back (all or nothing), and are `OK`; those after it
/// were not checked and are `UNKNOWN`.
pub(crate) fn refused(
    at: usize,
    total: usize,
    response: &Response<Bytes>,
    report: Option<&RateReport>,
) -> RateLimitResponse {
    let mut headers = header_values(response.headers());
    if response.status() != http::StatusCode::TOO_MANY_REQUESTS {
        headers.push(HeaderValue {
            key: QUOTA_STATUS_HEADER.to_owned(),
            value: response.status().as_u16().to_string(),
            ..HeaderValue::default()
        });
    }
    let limit = report.and_then(RateReport::refused_by);
    let statuses = (0..total)
        .map(|i| match i.cmp(&at) {
            Ordering::Less => status(Code::Ok, None),
            Ordering::Equal => status(Code::OverLimit, limit),
            Ordering::Greater => status(Code::Unknown, None),
        })
        .collect();
    RateLimitResponse {
        overall_code: Code::OverLimit.into(),
        statuses,
        response_headers_to_add: headers,
        raw_body: response.body().to_vec(),
        ..RateLimitResponse::default()
    }
}

/// The limit an admitted request's status reports: the one with the fewest
/// units left (the shortest window among equals).
fn binding(report: &RateReport) -> Option<&LimitReport> {
    report
        .limits()
        .iter()
        .min_by_key(|l| (l.remaining, l.window))
}

fn status(code: Code, limit: Option<&LimitReport>) -> DescriptorStatus {
    let Some(limit) = limit else {
        return DescriptorStatus {
            code: code.into(),
            ..DescriptorStatus::default()
        };
    };
    DescriptorStatus {
        code: code.into(),
        current_limit: Some(RateLimit {
            // Not `to_string`: that formats; this copies.
            name: String::from(&*limit.name),
            requests_per_unit: u32::try_from(limit.count).unwrap_or(u32::MAX),
            unit: unit(limit.window.as_secs()).into(),
        }),
        limit_remaining: u32::try_from(limit.remaining).unwrap_or(u32::MAX),
        duration_until_reset: Some(envoy_types::pb::google::protobuf::Duration {
            seconds: i64::try_from(limit.reset_after.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(limit.reset_after.subsec_nanos()).unwrap_or(0),
        }),
        quota: None,
    }
}

/// Envoy's unit for a window of `secs` seconds (`UNKNOWN` when the window
/// is not one of Envoy's units: the name and the count still say it).
fn unit(secs: u64) -> Unit {
    match secs {
        1 => Unit::Second,
        60 => Unit::Minute,
        3_600 => Unit::Hour,
        86_400 => Unit::Day,
        604_800 => Unit::Week,
        _ => Unit::Unknown,
    }
}

/// The headers of an answer, for Envoy (its own `Content-Length` is
/// computed by Envoy from the body it sends).
fn header_values(headers: &HeaderMap) -> Vec<HeaderValue> {
    headers
        .iter()
        .filter(|(name, _)| **name != CONTENT_LENGTH)
        .map(|(name, value)| HeaderValue {
            key: name.as_str().to_owned(),
            value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ..HeaderValue::default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may panic

    use super::*;

    #[test]
    fn seed_headers_are_the_reports_fields() {
        use quota_core::policy::{Policy, Request};
        use quota_core::{MemoryStore, Timestamp};

        let policy = Policy::seed();
        let store = MemoryStore::new();
        let now = Timestamp::from_secs(1_700_000_000);
        let mut reports = Vec::new();
        for (tier, endpoint) in [
            ("basic", "txt2img"),
            ("premium", "txt2img"),
            ("basic", "txt2video"),
        ] {
            let req = Request {
                account: "a",
                tier,
                endpoint,
                cost: 1,
            };
            // Admitted, then (txt2video on basic) refused.
            for _ in 0..2 {
                let decision = store.check(&policy, &req, now).unwrap();
                reports.push(RateReport::new(&decision));
            }
        }
        assert!(reports.iter().any(|r| r.refused_by().is_some()));
        for report in reports
            .iter()
            .flat_map(|r| [r.clone(), r.clone().with_ietf(true)])
        {
            let want: Vec<(String, String)> = report
                .fields()
                .map(|(name, value)| (name.lowercase().to_owned(), value.as_str().to_owned()))
                .collect();
            let got: Vec<(String, String)> = seed_headers(&report)
                .into_iter()
                .map(|h| (h.key, h.value))
                .collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn decimals() {
        for n in (0..1_100).chain([9_999, 10_000, 1 << 40, u64::MAX]) {
            assert_eq!(decimal(n), n.to_string());
        }
    }

    #[test]
    fn windows_map_to_envoy_units() {
        assert_eq!(unit(60), Unit::Minute);
        assert_eq!(unit(86_400), Unit::Day);
        assert_eq!(unit(1), Unit::Second);
        assert_eq!(unit(2), Unit::Unknown);
    }
}
