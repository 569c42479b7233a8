//! `LimitedBody`: a body that fails as soon as it grows past a byte limit.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use quota_core::upload::{UploadRefusal, UploadRules};

use super::{UploadError, Verdict};

pin_project! {
    /// Passes frames through unchanged until the data seen would exceed a
    /// limit; then yields [`UploadError::Refused`] with
    /// [`UploadRefusal::BodyTooLarge`] instead of the frame that crosses it,
    /// and ends. The inner service therefore receives at most `limit` bytes;
    /// nothing is buffered.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use bytes::Bytes;
    /// use http_body_util::{BodyExt, Full};
    /// use quota_transport::upload::{LimitedBody, UploadError};
    ///
    /// let body = LimitedBody::new(Full::new(Bytes::from(vec![0u8; 2048])), "txt2img", 1024);
    /// let verdict = body.verdict();
    /// let err = body.collect().await.unwrap_err();
    /// assert!(matches!(err, UploadError::Refused(_)));
    /// assert_eq!(verdict.rejection().unwrap().status().as_u16(), 413);
    /// # });
    /// ```
    #[derive(Debug)]
    pub struct LimitedBody<B> {
        #[pin]
        inner: B,
        endpoint: Arc<str>,
        limit: u64,
        multipart_allowance: u64,
        seen: u64,
        done: bool,
        verdict: Verdict,
    }
}

impl<B> LimitedBody<B> {
    /// Limits `body`, sent to `endpoint` (named in the refusal), to `limit` bytes.
    pub fn new(body: B, endpoint: &str, limit: u64) -> Self {
        LimitedBody {
            inner: body,
            endpoint: endpoint.into(),
            limit,
            multipart_allowance: 0,
            seen: 0,
            done: false,
            verdict: Verdict::new(),
        }
    }

    /// Limits `body` to [`UploadRules::max_body`] of `endpoint`.
    pub fn for_endpoint(body: B, endpoint: &str, rules: &UploadRules) -> Self {
        let mut limited = Self::new(body, endpoint, rules.max_body(endpoint));
        limited.multipart_allowance = rules.multipart_allowance(endpoint);
        limited
    }

    /// The verdict that records the refusal, for the layer to read after
    /// the inner service ran.
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

impl<B> Body for LimitedBody<B>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = UploadError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        match ready!(this.inner.poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let total = this.seen.saturating_add(data.remaining() as u64);
                    if total > *this.limit {
                        *this.done = true;
                        let error = UploadError::Refused(UploadRefusal::BodyTooLarge {
                            endpoint: this.endpoint.to_string(),
                            limit_bytes: *this.limit,
                            multipart_allowance: *this.multipart_allowance,
                            size: total,
                        });
                        this.verdict.record(&error);
                        return Poll::Ready(Some(Err(error)));
                    }
                    *this.seen = total;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(error)) => {
                *this.done = true;
                Poll::Ready(Some(Err(UploadError::Body(Arc::from(error.into())))))
            }
            None => {
                *this.done = true;
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
