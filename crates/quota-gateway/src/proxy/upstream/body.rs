//! A client's request body on its way to the upstream: whose time is it?
//!
//! The client's, while it sends its body: a body that stalls (no bytes for
//! the client timeout) fails with [`ClientStalled`], which the gateway
//! answers with 408. The upstream's once the body has been sent whole:
//! the upstream timeout starts there (the connection times it), so that a
//! slow upload is not taken for a slow upstream.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::respond::BoxError;

/// The client sent no body bytes for the client timeout.
#[derive(Debug)]
pub(crate) struct ClientStalled(pub(crate) Duration);

impl std::fmt::Display for ClientStalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the client sent no request body bytes for {} s",
            self.0.as_secs_f64()
        )
    }
}

impl std::error::Error for ClientStalled {}

/// Whether `e`, or an error it was caused by, is [`ClientStalled`].
pub(crate) fn is_client_stall(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if c.is::<ClientStalled>() {
            return true;
        }
        cur = c.source();
    }
    false
}

/// A request body that fails after `stall` without a frame.
pub(crate) struct ClientBody<B> {
    inner: Pin<Box<B>>,
    stall: Duration,
    /// Due `stall` after the last frame (boxed: the body moves).
    timer: Pin<Box<Sleep>>,
}

impl<B> ClientBody<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    /// `inner`, whose client may go `stall` without sending a byte.
    pub(crate) fn new(inner: B, stall: Duration) -> Self {
        ClientBody {
            inner: Box::pin(inner),
            stall,
            timer: Box::pin(tokio::time::sleep(stall)),
        }
    }
}

impl<B> HttpBody for ClientBody<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Ok(frame))) => {
                if !this.inner.is_end_stream() {
                    let due = Instant::now() + this.stall;
                    this.timer.as_mut().reset(due);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(ClientStalled(this.stall).into()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

    use super::*;
    use http_body_util::BodyExt;
    use tokio::sync::mpsc;

    /// A body whose pieces come from a channel (ends when it closes).
    struct Piecewise(mpsc::Receiver<Bytes>);

    impl HttpBody for Piecewise {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
        }
    }

    fn piecewise() -> (mpsc::Sender<Bytes>, ClientBody<Piecewise>) {
        let (tx, rx) = mpsc::channel(4);
        (tx, ClientBody::new(Piecewise(rx), Duration::from_secs(2)))
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_for_the_client_timeout_fails() {
        let (tx, mut body) = piecewise();
        tx.send(Bytes::from_static(b"a")).await.unwrap();
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "a"
        );
        // 1.5 s later another piece: not a stall.
        tokio::time::advance(Duration::from_millis(1500)).await;
        tx.send(Bytes::from_static(b"b")).await.unwrap();
        assert!(body.frame().await.unwrap().is_ok());
        // Then nothing: a stall, 2 s after the last piece.
        let start = Instant::now();
        let e = body.frame().await.unwrap().unwrap_err();
        assert!(is_client_stall(&*e));
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_taken_to_its_end_ends_and_does_not_stall() {
        let (tx, mut body) = piecewise();
        tx.send(Bytes::from_static(b"all")).await.unwrap();
        drop(tx);
        assert!(body.frame().await.unwrap().is_ok());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(body.frame().await.is_none());
    }
}
