//! Glue to the [`upload`](crate::upload) checks: the precheck before the
//! body is read, and the guard while it streams.

use std::sync::Arc;

use http::HeaderMap;
use http_body::Body;
use quota_core::upload::UploadRules;

use super::body::RequestBody;
use crate::upload::{guard_body, Verdict};

/// Wraps `body` under the rules of `endpoint`; an empty body needs no guard.
pub(crate) fn guard<B: Body>(
    body: B,
    headers: &HeaderMap,
    endpoint: &str,
    rules: Option<Arc<UploadRules>>,
) -> (RequestBody<B>, Option<Verdict>) {
    match rules {
        Some(rules) if !body.is_end_stream() => {
            let (guarded, verdict) = guard_body(body, headers, endpoint, rules);
            (RequestBody::guarded(guarded), Some(verdict))
        }
        _ => (RequestBody::plain(body), None),
    }
}
