//! A refusal of the core's admission as the response that answers it.

use bytes::Bytes;
use http::header::{HeaderValue, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use quota_core::admission::Reason;
use quota_core::RateReport;

use super::layer::Config;
use crate::response::{
    json_message, server_error, too_many_attempts, RequestId, TEMPORARILY_UNAVAILABLE,
};

/// The response refusing a request for `reason`: JSON `{"message": ...}`
/// with its status; a 429 as the seed has it (or problem+json) with the
/// `report`'s headers; a 401 with `WWW-Authenticate: Bearer` when bearer
/// keys are accepted; a 5xx with only a request id for the client, the
/// detail logged under it.
pub(crate) fn refusal_response<S, A>(
    config: &Config<S, A>,
    reason: &Reason,
    report: Option<&RateReport>,
) -> Response<Bytes> {
    match reason {
        Reason::TooManyRequests => {
            let empty = RateReport::default();
            too_many_attempts(report.unwrap_or(&empty), config.problem_json)
        }
        Reason::UnusableKey(_) | Reason::UnknownKey | Reason::KeyRequired { .. } => {
            unauthorized(config, &reason.to_string())
        }
        // The account's tier is not in the policy: a configuration error,
        // told to the operator (the log) and not to the client.
        Reason::Plan(e) if reason.is_server_error() => cannot_serve(e),
        Reason::UnknownCaller(_) => cannot_serve(reason),
        _ if reason.is_server_error() => unavailable(&reason.to_string()),
        _ => json_message(status(reason.status()), &reason.to_string()),
    }
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn unauthorized<S, A>(config: &Config<S, A>, message: &str) -> Response<Bytes> {
    let mut res = json_message(StatusCode::UNAUTHORIZED, message);
    if config.key_headers.accepts_bearer() {
        res.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    res
}

/// The 500 for a configuration error: told to the operator (the log, under
/// a request id), not to the client.
fn cannot_serve(e: &dyn std::fmt::Display) -> Response<Bytes> {
    let id = RequestId::new();
    tracing::error!(request_id = %id, error = %e, "answering 500: a configuration error");
    server_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "the service cannot serve this request now; try again later",
        id,
    )
}

/// The 503 when the store or the accounts cannot answer: the client learns
/// only that, and a request id; `detail` (which may name the store, its
/// address or an OS error) is logged with the same id.
fn unavailable(detail: &str) -> Response<Bytes> {
    let id = RequestId::new();
    tracing::warn!(request_id = %id, error = detail, "answering 503: the store is unavailable");
    server_error(StatusCode::SERVICE_UNAVAILABLE, TEMPORARILY_UNAVAILABLE, id)
}
