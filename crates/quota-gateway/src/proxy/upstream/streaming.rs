//! Requests with a streamed body, through `hyper`'s HTTP/1 client: it
//! writes the body as the client sends it while it watches the connection
//! for an early answer (an upstream may refuse an upload before its end).

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::sync::Notify;

use super::conn::ExchangeError;
use super::{ForwardError, Pool};
use crate::http1::client::WireError;
use crate::http1::hop::strip_response_framing;
use crate::respond::{Body, BoxError};

/// A connection as `hyper`'s client holds it.
pub(super) type Sender = SendRequest<Body>;

impl Pool {
    /// Sends `req` (origin-form URI, `Host` set) with its body streamed, on
    /// an idle connection or on a new one. The upstream timeout starts
    /// when `sent` is notified (the body has been taken whole).
    pub(super) async fn send_streaming(
        self: &Arc<Self>,
        mut req: Request<Body>,
        sent: Arc<Notify>,
    ) -> Result<Response<Body>, ForwardError> {
        while let Some(mut sender) = self.streaming.take(|s| !s.is_closed()) {
            if !sender.is_ready() && sender.ready().await.is_err() {
                continue;
            }
            match self.after_sent(&sent, sender.try_send_request(req)).await? {
                Ok(res) => return self.streamed_response(res, sender),
                Err(mut e) => match e.take_message() {
                    // Never sent (the connection closed meanwhile): try another.
                    Some(back) => req = back,
                    None => return Err(http_error(e.into_error())),
                },
            }
        }
        let mut sender = self.connect_streaming().await?;
        let res = self
            .after_sent(&sent, sender.send_request(req))
            .await?
            .map_err(http_error)?;
        self.streamed_response(res, sender)
    }

    /// `send`'s output, unless the upstream timeout passes after `sent`
    /// (the request's body has been taken whole) before it is ready.
    async fn after_sent<F: Future>(
        &self,
        sent: &Notify,
        send: F,
    ) -> Result<F::Output, ForwardError> {
        let send = pin!(send);
        let deadline = async {
            sent.notified().await;
            tokio::time::sleep(self.timeout).await;
        };
        tokio::select! {
            biased;
            out = send => Ok(out),
            () = deadline => Err(ForwardError::Timeout),
        }
    }

    async fn connect_streaming(&self) -> Result<Sender, ForwardError> {
        let stream = self.open().await?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(ForwardError::Http)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// The response as the gateway passes it on; a `101` is refused as
    /// the own client refuses it (the gateway never asks for an upgrade:
    /// `Upgrade` is hop-by-hop), and its connection is not reused.
    fn streamed_response(
        self: &Arc<Self>,
        mut res: Response<Incoming>,
        sender: Sender,
    ) -> Result<Response<Body>, ForwardError> {
        if res.status() == StatusCode::SWITCHING_PROTOCOLS {
            let e = ExchangeError::Wire(WireError::SwitchingProtocols);
            return Err(ForwardError::Exchange(e));
        }
        strip_response_framing(res.headers_mut());
        let done = res.body().is_end_stream();
        let mut back = Some((Arc::clone(self), sender));
        if done {
            give_back(&mut back);
        }
        Ok(res.map(|inner| {
            PooledBody { inner, back }
                .map_err(BoxError::from)
                .boxed_unsync()
        }))
    }
}

/// A failure of the client's body (hyper's "user" errors) is the
/// request's, not the upstream's.
fn http_error(e: hyper::Error) -> ForwardError {
    if e.is_user() {
        ForwardError::RequestBody(e.into())
    } else {
        ForwardError::Http(e)
    }
}

fn give_back(back: &mut Option<(Arc<Pool>, Sender)>) {
    if let Some((pool, sender)) = back.take() {
        if !sender.is_closed() {
            pool.streaming.put(sender);
        }
    }
}

/// An upstream response body; read to its end, it puts its connection back
/// in the pool.
struct PooledBody {
    inner: Incoming,
    back: Option<(Arc<Pool>, Sender)>,
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            None => give_back(&mut this.back),
            Some(Ok(_)) if this.inner.is_end_stream() => give_back(&mut this.back),
            // An error: the connection is not reused.
            Some(Err(_)) => this.back = None,
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
