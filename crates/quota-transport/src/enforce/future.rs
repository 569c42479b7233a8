//! [`ResponseFuture`]: the checks, then the inner service, then the headers.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::body::{RequestBody, ResponseBody};
use super::check::{BoxRefund, Checked, Pass};
use super::refund::UpstreamFailure;

pub(crate) type BoxCheck<B> = Pin<Box<dyn Future<Output = Checked<RequestBody<B>>> + Send>>;

pin_project! {
    /// The response future of [`Enforce`](super::Enforce).
    ///
    /// First the checks run; a refusal completes the future with the
    /// layer's response and the inner service is dropped uncalled.
    /// Otherwise the inner service is called and its response gets the
    /// rate-limit headers, unless the body broke an upload rule while the
    /// service read it: then the answer is the upload refusal (and a charge
    /// is given back).
    pub struct ResponseFuture<Inner, B>
    where
        Inner: Service<Request<RequestBody<B>>>,
    {
        #[pin]
        state: State<Inner, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<Inner, B>
    where
        Inner: Service<Request<RequestBody<B>>>,
    {
        Check { check: BoxCheck<B>, service: Option<Inner> },
        Call { #[pin] future: Inner::Future, pass: Option<Pass> },
        Answer { response: Option<Response<Bytes>> },
        Refund { refund: BoxRefund, response: Option<Response<Bytes>> },
        GiveBack { refund: BoxRefund, response: Option<Inner::Response> },
        Done,
    }
}

impl<Inner, B> ResponseFuture<Inner, B>
where
    Inner: Service<Request<RequestBody<B>>>,
{
    /// The checks still to run, then `service`.
    pub(crate) fn new(check: BoxCheck<B>, service: Inner) -> Self {
        ResponseFuture {
            state: State::Check {
                check,
                service: Some(service),
            },
        }
    }

    /// What the checks decided already: `service` is called now, or never.
    pub(crate) fn checked(checked: Checked<RequestBody<B>>, service: Inner) -> Self {
        ResponseFuture {
            state: State::after(checked, service),
        }
    }
}

impl<Inner, B> State<Inner, B>
where
    Inner: Service<Request<RequestBody<B>>>,
{
    /// The state that follows the checks' `checked`: the call of `service`,
    /// or the refusal (after its refund).
    fn after(checked: Checked<RequestBody<B>>, mut service: Inner) -> Self {
        match checked {
            Checked::Proceed { req, pass } => State::Call {
                future: service.call(req),
                pass: Some(pass),
            },
            Checked::Refuse(res) => State::Answer {
                response: Some(res),
            },
            Checked::RefundThenRefuse(refund, res) => State::Refund {
                refund: refund(),
                response: Some(res),
            },
        }
    }
}

impl<Inner, B> fmt::Debug for ResponseFuture<Inner, B>
where
    Inner: Service<Request<RequestBody<B>>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Check { .. } => "check",
            State::Call { .. } => "call",
            State::Answer { .. } => "answer",
            State::Refund { .. } => "refund",
            State::GiveBack { .. } => "give back",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<Inner, B, ResBody> Future for ResponseFuture<Inner, B>
where
    Inner: Service<Request<RequestBody<B>>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, Inner::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Check { check, service } => {
                    let checked = ready!(check.as_mut().poll(cx));
                    let Some(service) = service.take() else {
                        unreachable!("the service is taken only here")
                    };
                    this.state.set(State::after(checked, service));
                }
                StateProj::Call { future, pass } => {
                    let res = ready!(future.poll(cx));
                    let mut pass = pass.take().unwrap_or_default();
                    let rejection = pass.verdict.as_ref().and_then(|v| v.rejection());
                    let Some(rejection) = rejection.map(|e| e.to_response::<Bytes>()) else {
                        // The upstream failed: what the request took is
                        // given back before the answer goes, which then
                        // carries no rate-limit headers.
                        let give_back = match (&res, pass.settle.take()) {
                            (Ok(res), Some(settle)) => settle(UpstreamFailure::of(res)),
                            _ => None,
                        };
                        if let Some(refund) = give_back {
                            this.state.set(State::GiveBack {
                                refund,
                                response: res.ok(),
                            });
                            continue;
                        }
                        this.state.set(State::Done);
                        return Poll::Ready(res.map(|res| finish(res, pass)));
                    };
                    // The body broke an upload rule: answer that, whatever
                    // the service made of the failed read.
                    // The seed's headers only: the request was counted.
                    let mut response = rejection;
                    if let Some(headers) = pass.headers {
                        headers.write(response.headers_mut(), false);
                    }
                    match pass.refund {
                        Some(refund) => this.state.set(State::Refund {
                            refund: refund(),
                            response: Some(response),
                        }),
                        None => {
                            this.state.set(State::Done);
                            return Poll::Ready(Ok(response.map(ResponseBody::full)));
                        }
                    }
                }
                StateProj::Answer { response } => {
                    let response = response.take();
                    this.state.set(State::Done);
                    if let Some(response) = response {
                        return Poll::Ready(Ok(response.map(ResponseBody::full)));
                    }
                }
                StateProj::Refund { refund, response } => {
                    ready!(refund.as_mut().poll(cx));
                    let response = response.take();
                    this.state.set(State::Done);
                    if let Some(response) = response {
                        return Poll::Ready(Ok(response.map(ResponseBody::full)));
                    }
                }
                StateProj::GiveBack { refund, response } => {
                    ready!(refund.as_mut().poll(cx));
                    let response = response.take();
                    this.state.set(State::Done);
                    if let Some(response) = response {
                        return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                    }
                }
                StateProj::Done => panic!("ResponseFuture polled after completion"),
            }
        }
    }
}

/// Adds the decision's headers to the service's response.
fn finish<ResBody>(res: Response<ResBody>, pass: Pass) -> Response<ResponseBody<ResBody>> {
    let (mut parts, body) = res.into_parts();
    if let Some(headers) = pass.headers {
        headers.write(&mut parts.headers, true);
    }
    Response::from_parts(parts, ResponseBody::inner(body))
}
