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
use quota_core::report::LimitReport;
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
    let statuses = all
        .iter()
        .map(|ok| status(Code::Ok, ok.report().and_then(binding)))
        .collect();
    // The seed's fields straight from the report: no header map between.
    let tightest = all
        .iter()
        .filter_map(Admitted::report)
        .min_by_key(|r| binding(r).map_or((u64::MAX, Duration::MAX), |l| (l.remaining, l.window)));
    let headers = tightest.map_or_else(Vec::new, |report| {
        report
            .fields()
            .map(|(name, value)| HeaderValue {
                key: name.lowercase().to_owned(),
                value: value.as_str().to_owned(),
                ..HeaderValue::default()
            })
            .collect()
    });
    RateLimitResponse {
        overall_code: Code::Ok.into(),
        statuses,
        response_headers_to_add: headers,
        ..RateLimitResponse::default()
    }
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
            name: limit.name.to_string(),
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
    use super::*;

    #[test]
    fn windows_map_to_envoy_units() {
        assert_eq!(unit(60), Unit::Minute);
        assert_eq!(unit(86_400), Unit::Day);
        assert_eq!(unit(1), Unit::Second);
        assert_eq!(unit(2), Unit::Unknown);
    }
}
