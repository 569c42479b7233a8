//! Upload enforcement while the body streams: sizes, kinds, durations.
//!
//! The rules themselves are [`quota_core::upload::UploadRules`]; this module
//! applies them to a request body without ever buffering it whole.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use http::{header, HeaderMap, HeaderValue};
//! use http_body_util::{BodyExt, Full};
//! use quota_core::upload::UploadRules;
//! use quota_transport::upload::{guard_body, precheck};
//!
//! let rules = Arc::new(UploadRules::seed());
//! let body = "--XyZ\r\n\
//!     Content-Disposition: form-data; name=\"prompt\"\r\n\r\n\
//!     a cat\r\n\
//!     --XyZ--\r\n";
//! let mut headers = HeaderMap::new();
//! headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("multipart/form-data; boundary=XyZ"));
//! headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
//!
//! // 1. Before reading: Content-Length and Content-Type.
//! precheck(&headers, "txt2img", &rules).unwrap();
//! // 2. Wrap the body; hand the guarded body to the inner service.
//! let (guarded, verdict) = guard_body(Full::new(Bytes::from(body)), &headers, "txt2img", rules);
//! let forwarded = guarded.collect().await.unwrap().to_bytes();
//! // 3. After the inner service returns: answer with the refusal, if any.
//! assert!(verdict.rejection().is_none());
//! assert_eq!(forwarded, body.as_bytes()); // passed through unchanged
//! # });
//! ```
//!
//! # Who calls what
//!
//! An enforcement layer, for each request to an endpoint that takes uploads:
//!
//! 1. [`precheck`] on the request headers: a `Content-Length` over
//!    [`UploadRules::max_body`](quota_core::upload::UploadRules::max_body) is
//!    answered 413 at once, a malformed header 400; the body is never read.
//! 2. [`guard_body`] on the body: the inner service reads a [`GuardedBody`]
//!    whose frames are the original frames, unchanged, until a rule is
//!    broken; then it yields an [`UploadError`] in place of the offending
//!    frame (a body larger than its limit is cut there).
//! 3. When the inner service returns (whatever it made of the failed read),
//!    the layer checks the [`Verdict`]: if it holds an error, the layer
//!    answers [`UploadError::to_response`] instead: 413 (too large), 422 (too
//!    long, or a duration that must be known and is not), or 400 (malformed),
//!    with a JSON `message` that names the limit.
//!
//! [`LimitedBody`] is the size cut alone, for bodies that need no inspection.
//! [`PartInspector`] is the per-file check alone. [`duration`] reads
//! durations from container headers.
//!
//! # When a duration cannot be read
//!
//! By default the file is allowed and its size limit still applies
//! ([`UnknownDuration::Allow`](quota_core::upload::UnknownDuration::Allow)):
//! at the seed's sizes, the size limit bounds the duration of every common
//! codec. With `unknown_duration = "refuse"` in the rules such a file is
//! refused with 422
//! ([`UploadRefusal::DurationUnknown`](quota_core::upload::UploadRefusal::DurationUnknown)).
//! The table of what is read from which format is in [`duration`].

mod body;
pub mod duration;
mod error;
mod guard;
mod multipart;
mod part;

pub use body::LimitedBody;
pub use error::{UploadError, Verdict};
pub(crate) use guard::{declared_length, multipart_boundary};
pub use guard::{guard_body, precheck, GuardedBody};
pub use part::PartInspector;
