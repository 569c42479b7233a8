//! `precheck` and `guard_body`: what an enforcement layer calls.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{header, HeaderMap};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use quota_core::upload::UploadRules;

use super::multipart::MultipartInspector;
use super::{PartInspector, UploadError, Verdict};
use crate::fields::{text, HeaderFields};

/// Checks a request's headers before its body is read.
///
/// - A `Content-Length` over [`UploadRules::max_body`] is refused (413).
/// - An unreadable `Content-Length` (not one decimal number) is malformed (400).
/// - A `multipart/form-data` content type without a usable boundary is malformed (400).
///
/// A request without `Content-Length` (chunked) passes; [`guard_body`] then
/// cuts it while it streams.
pub fn precheck<H: HeaderFields + ?Sized>(
    headers: &H,
    endpoint: &str,
    rules: &UploadRules,
) -> Result<(), UploadError> {
    if let Some(length) = declared_length(headers)? {
        rules.check_body_size(endpoint, length)?;
    }
    multipart_boundary(headers).transpose()?;
    Ok(())
}

/// The declared `Content-Length`, if any: one decimal number of bytes
/// (anything else is malformed, 400).
pub(crate) fn declared_length<H: HeaderFields + ?Sized>(
    headers: &H,
) -> Result<Option<u64>, UploadError> {
    let Some(value) = headers.value_of(&header::CONTENT_LENGTH) else {
        return Ok(None);
    };
    text(value)
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| UploadError::malformed("content-length is not a number of bytes"))
}

/// The boundary of a `multipart/form-data` body; `None` for any other content type.
pub(crate) fn multipart_boundary<H: HeaderFields + ?Sized>(
    headers: &H,
) -> Option<Result<String, UploadError>> {
    let value = headers.value_of(&header::CONTENT_TYPE)?;
    let text = match text(value) {
        Some(text) => text,
        None => {
            return Some(Err(UploadError::malformed(
                "content-type is not visible ASCII",
            )))
        }
    };
    let essence = text.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    Some(
        multer::parse_boundary(text)
            .map_err(|e| UploadError::malformed(format!("content-type: {e}"))),
    )
}

/// Wraps a request body so the upload rules are enforced while it streams.
///
/// Returns the guarded body, to hand to the inner service in place of the
/// original, and the [`Verdict`] the layer reads once the inner service has
/// returned. See [`GuardedBody`] for what is checked.
pub fn guard_body<B>(
    body: B,
    headers: &HeaderMap,
    endpoint: &str,
    rules: Arc<UploadRules>,
) -> (GuardedBody<B>, Verdict) {
    let endpoint: Arc<str> = endpoint.into();
    let verdict = Verdict::new();
    let state = match multipart_boundary(headers) {
        None => State::Single(PartInspector::new(endpoint.clone(), rules.clone())),
        Some(Ok(boundary)) => State::Multipart(MultipartInspector::new(
            boundary,
            endpoint.clone(),
            rules.clone(),
        )),
        Some(Err(error)) => State::Failed(Some(error)),
    };
    let body = GuardedBody {
        inner: body,
        state,
        seen: 0,
        endpoint,
        rules,
        verdict: verdict.clone(),
    };
    (body, verdict)
}

pin_project! {
    /// A request body under the upload rules: frames pass through unchanged
    /// until a rule is broken, then the body yields an [`UploadError`]
    /// instead of the offending frame, records it in the [`Verdict`], and ends.
    ///
    /// What is checked, as the frames arrive:
    ///
    /// - the whole body against [`UploadRules::max_body`];
    /// - a `multipart/form-data` body: every part (file or plain field) is
    ///   sniffed from its first bytes, checked against its kind's size limit,
    ///   and, for audio and video, its declared duration (see
    ///   [`duration`](super::duration)); a body that is not valid multipart
    ///   is malformed (400);
    /// - any other body: the whole body is one file, checked the same way
    ///   (a JSON request is a file of kind `other`).
    ///
    /// Memory held: one sniff buffer and one bounded header prefix
    /// ([`HEADER_PREFIX_LIMIT`](super::duration::HEADER_PREFIX_LIMIT)) for
    /// the part being read, plus multer's buffer of about one frame.
    ///
    /// Checks that need the end of a file (a file shorter than
    /// [`SNIFF_LEN`](quota_core::upload::SNIFF_LEN), a duration only known at
    /// the end, a truncated multipart body) fail the body at its end, in
    /// place of its end of stream; [`is_end_stream`](Body::is_end_stream)
    /// stays `false` until then so that readers poll to the end.
    #[derive(Debug)]
    pub struct GuardedBody<B> {
        #[pin]
        inner: B,
        state: State,
        seen: u64,
        endpoint: Arc<str>,
        rules: Arc<UploadRules>,
        verdict: Verdict,
    }
}

#[derive(Debug)]
enum State {
    /// A non-multipart body: one file.
    Single(PartInspector),
    Multipart(MultipartInspector),
    /// Every part has been inspected; only the body size is still counted.
    Inspected,
    /// To be yielded at the next poll.
    Failed(Option<UploadError>),
    Done,
}

impl State {
    fn inspect(&mut self, chunk: &Bytes, cx: &mut Context<'_>) -> Result<(), UploadError> {
        match self {
            State::Single(part) => part.feed(chunk).map_err(UploadError::from),
            State::Multipart(inspector) => {
                inspector.push(chunk.clone());
                match inspector.poll(cx) {
                    Poll::Ready(Ok(())) => {
                        *self = State::Inspected;
                        Ok(())
                    }
                    Poll::Ready(Err(error)) => Err(error),
                    Poll::Pending => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    fn finish(&mut self, cx: &mut Context<'_>) -> Result<(), UploadError> {
        match self {
            State::Single(part) => part.finish().map_err(UploadError::from),
            State::Multipart(inspector) => {
                inspector.end();
                match inspector.poll(cx) {
                    Poll::Ready(result) => result,
                    Poll::Pending => {
                        Err(UploadError::malformed("multipart body ended inside a part"))
                    }
                }
            }
            _ => Ok(()),
        }
    }
}

impl<B> GuardedBody<B> {
    /// The verdict shared with this body.
    pub fn verdict(&self) -> Verdict {
        self.verdict.clone()
    }

    /// The data bytes passed through so far.
    pub fn bytes_seen(&self) -> u64 {
        self.seen
    }

    /// The inner body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// The inner body, mutably.
    pub fn get_mut(&mut self) -> &mut B {
        &mut self.inner
    }

    /// Unwraps the inner body.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B> Body for GuardedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = UploadError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UploadError>>> {
        let this = self.project();
        match this.state {
            State::Done => return Poll::Ready(None),
            State::Failed(error) => {
                let error = error.take();
                *this.state = State::Done;
                if let Some(error) = error {
                    this.verdict.record(&error);
                    return Poll::Ready(Some(Err(error)));
                }
                return Poll::Ready(None);
            }
            _ => {}
        }
        let checked = match ready!(this.inner.poll_frame(cx)) {
            Some(Ok(frame)) => {
                let checked = match frame.data_ref() {
                    Some(data) => {
                        *this.seen = this.seen.saturating_add(data.len() as u64);
                        this.rules
                            .check_body_size(this.endpoint, *this.seen)
                            .map_err(UploadError::from)
                            .and_then(|()| this.state.inspect(data, cx))
                    }
                    None => Ok(()),
                };
                checked.map(|()| Some(frame))
            }
            Some(Err(error)) => {
                *this.state = State::Done;
                return Poll::Ready(Some(Err(UploadError::Body(Arc::from(error.into())))));
            }
            None => this.state.finish(cx).map(|()| None),
        };
        match checked {
            Ok(Some(frame)) => Poll::Ready(Some(Ok(frame))),
            Ok(None) => {
                *this.state = State::Done;
                Poll::Ready(None)
            }
            Err(error) => {
                *this.state = State::Done;
                this.verdict.record(&error);
                Poll::Ready(Some(Err(error)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
