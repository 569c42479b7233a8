//! The error an upload body yields, and the verdict a layer reads afterwards.

use std::error::Error;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use quota_core::upload::UploadRefusal;

/// Why an upload failed: refused by the rules, malformed, or unreadable.
///
/// The guarded bodies yield this as their error; a layer answers with
/// [`to_response`](Self::to_response): 413 or 422 (from the refusal), 400
/// for a malformed body, each with a JSON `{"message": ...}` naming the
/// limit.
///
/// ```
/// use quota_core::upload::{FileKind, UploadRules};
/// use quota_transport::upload::UploadError;
///
/// let refusal = UploadRules::seed().check_size("txt2img", FileKind::Image, 11 << 20).unwrap_err();
/// let error = UploadError::from(refusal);
/// assert_eq!(error.status().as_u16(), 413);
/// assert_eq!(
///     error.json_body(),
///     r#"{"message":"image file exceeds the 10 MiB limit for txt2img"}"#
/// );
/// ```
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    /// The upload rules refused the body (413 or 422).
    #[error(transparent)]
    Refused(#[from] UploadRefusal),
    /// The body or its headers are not valid for their content type (400):
    /// an unreadable `Content-Length`, a multipart body without a boundary or
    /// that ends mid-part.
    #[error("malformed upload: {reason}")]
    Malformed {
        /// What is wrong, for the response message.
        reason: String,
    },
    /// Reading the underlying body failed (the client went away, a protocol
    /// error). Not a refusal: it is not recorded in the [`Verdict`].
    #[error("reading the request body failed: {0}")]
    Body(Arc<dyn Error + Send + Sync>),
}

impl UploadError {
    pub(crate) fn malformed(reason: impl Into<String>) -> Self {
        UploadError::Malformed {
            reason: reason.into(),
        }
    }

    /// The HTTP status to answer with: the refusal's (413/422), else 400.
    pub fn status(&self) -> StatusCode {
        match self {
            UploadError::Refused(refusal) => {
                StatusCode::from_u16(refusal.status_code()).unwrap_or(StatusCode::BAD_REQUEST)
            }
            UploadError::Malformed { .. } | UploadError::Body(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The JSON body to answer with: `{"message": "<this error>"}`.
    pub fn json_body(&self) -> String {
        serde_json::json!({ "message": self.to_string() }).to_string()
    }

    /// A complete response: [`status`](Self::status), a JSON content type
    /// and [`json_body`](Self::json_body).
    pub fn to_response<B: From<Bytes>>(&self) -> Response<B> {
        let mut response = Response::new(B::from(Bytes::from(self.json_body())));
        *response.status_mut() = self.status();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// Whether a guarded body was refused, readable after the inner service ran.
///
/// A body cannot answer the client itself: it can only fail the read. The
/// layer keeps a `Verdict` (a cheap clone sharing one slot with the body)
/// and, when the inner service returns, answers with the recorded
/// [`UploadError`] instead of whatever the service made of the failed read.
/// Only refusals and malformed bodies are recorded, never
/// [`UploadError::Body`].
#[derive(Clone, Debug, Default)]
pub struct Verdict(Arc<OnceLock<UploadError>>);

impl Verdict {
    /// An empty verdict.
    pub fn new() -> Self {
        Self::default()
    }

    /// The error the body was refused with, if it was.
    pub fn rejection(&self) -> Option<&UploadError> {
        self.0.get()
    }

    /// `true` once the body has been refused.
    pub fn is_rejected(&self) -> bool {
        self.0.get().is_some()
    }

    /// Records the first rejection; later ones are ignored.
    pub(crate) fn record(&self, error: &UploadError) {
        if !matches!(error, UploadError::Body(_)) {
            let _ = self.0.set(error.clone());
        }
    }
}
