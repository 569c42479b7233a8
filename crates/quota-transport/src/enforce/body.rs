//! The bodies: [`RequestBody`], what the inner service reads, and
//! [`ResponseBody`], the inner service's body or the layer's own refusal.

use core::pin::Pin;
use core::task::{Context, Poll};
use std::sync::Arc;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::upload::{GuardedBody, UploadError};

pin_project! {
    /// The request body the inner service reads: the client's body under
    /// the upload rules ([`GuardedBody`]: cut at the endpoint's limit, each
    /// file classified and checked), or the client's body as it is where no
    /// rule applies (an empty body, an unmetered endpoint, shadow mode).
    ///
    /// The frames are the client's, unchanged; a broken rule ends the body
    /// with an [`UploadError`], and the layer then answers 413/422/400
    /// whatever the service made of the failed read.
    #[derive(Debug)]
    pub struct RequestBody<B> {
        #[pin]
        kind: RequestKind<B>,
    }
}

pin_project! {
    #[project = RequestKindProj]
    #[derive(Debug)]
    enum RequestKind<B> {
        Guarded { #[pin] body: GuardedBody<B> },
        Plain { #[pin] body: B },
    }
}

impl<B> RequestBody<B> {
    pub(crate) fn guarded(body: GuardedBody<B>) -> Self {
        RequestBody {
            kind: RequestKind::Guarded { body },
        }
    }

    pub(crate) fn plain(body: B) -> Self {
        RequestBody {
            kind: RequestKind::Plain { body },
        }
    }

    /// Whether the upload rules are applied to this body.
    pub fn is_guarded(&self) -> bool {
        matches!(self.kind, RequestKind::Guarded { .. })
    }

    /// The client's body.
    pub fn into_inner(self) -> B {
        match self.kind {
            RequestKind::Guarded { body } => body.into_inner(),
            RequestKind::Plain { body } => body,
        }
    }
}

impl<B> Body for RequestBody<B>
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
        match self.project().kind.project() {
            RequestKindProj::Guarded { body } => body.poll_frame(cx),
            RequestKindProj::Plain { body } => body
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(|e| UploadError::Body(Arc::from(e.into()))))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            RequestKind::Guarded { body } => body.is_end_stream(),
            RequestKind::Plain { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            RequestKind::Guarded { body } => body.size_hint(),
            RequestKind::Plain { body } => body.size_hint(),
        }
    }
}

pin_project! {
    /// The body of an [`Enforce`](super::Enforce) response: the inner
    /// service's body untouched (no boxing, no copy), or the JSON of a
    /// refusal the layer answered itself.
    ///
    /// Its `Data` is the inner body's (any type built from [`Bytes`]: hyper's
    /// and axum's bodies use `Bytes`), and its `Error` the inner body's.
    #[derive(Debug)]
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Full { data: Option<Bytes> },
    }
}

impl<B> ResponseBody<B> {
    /// The inner service's body.
    pub fn inner(body: B) -> Self {
        ResponseBody {
            kind: Kind::Inner { body },
        }
    }

    /// A complete body of `data` (the layer's refusals).
    pub fn full(data: Bytes) -> Self {
        let data = (!data.is_empty()).then_some(data);
        ResponseBody {
            kind: Kind::Full { data },
        }
    }

    /// Whether this is the layer's own body rather than the service's.
    pub fn is_refusal(&self) -> bool {
        matches!(self.kind, Kind::Full { .. })
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Data: From<Bytes>,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d.into())))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

    use super::*;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn full_body_yields_its_bytes_once_with_an_exact_size() {
        let body: ResponseBody<Full<Bytes>> = ResponseBody::full(Bytes::from_static(b"{}"));
        assert_eq!(body.size_hint().exact(), Some(2));
        assert!(body.is_refusal());
        assert_eq!(body.collect().await.unwrap().to_bytes(), "{}");
    }

    #[tokio::test]
    async fn inner_body_passes_through() {
        let body = ResponseBody::inner(Full::new(Bytes::from_static(b"hello")));
        assert!(!body.is_refusal());
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
    }
}
