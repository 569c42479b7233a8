//! Inspecting a multipart/form-data body with multer, fed frame by frame.
//!
//! The guarded body pushes each data frame it forwards into a [`Feed`] and
//! then drives the inspection future until it waits for more input. The
//! future runs multer over the feed and a [`PartInspector`] over each part,
//! so a refusal is known before the frame that caused it is forwarded.
//! multer holds back at most a boundary's length of a part's bytes (they may
//! be the start of the next boundary), so the inner service receives at most
//! that many bytes of a part beyond its limit.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use quota_core::upload::UploadRules;

use super::{PartInspector, UploadError};

type Inspection = Pin<Box<dyn Future<Output = Result<(), UploadError>> + Send>>;

/// The frames not yet read by multer, and whether the body has ended.
#[derive(Debug, Default)]
struct FeedState {
    chunks: VecDeque<Bytes>,
    ended: bool,
}

/// multer's input stream: the frames the guarded body pushed.
///
/// It returns `Pending` without registering a waker when empty: its only
/// poller is [`MultipartInspector::poll`], which the guarded body calls
/// again right after every push and at the end of the body.
struct Feed(Arc<Mutex<FeedState>>);

impl Stream for Feed {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match state.chunks.pop_front() {
            Some(chunk) => Poll::Ready(Some(Ok(chunk))),
            None if state.ended => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

/// Runs multer and a [`PartInspector`] per part over pushed frames.
pub(crate) struct MultipartInspector {
    feed: Arc<Mutex<FeedState>>,
    /// In a `Mutex` only so the body stays `Sync`; reached through `get_mut`.
    inspection: Mutex<Inspection>,
}

impl std::fmt::Debug for MultipartInspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultipartInspector").finish_non_exhaustive()
    }
}

impl MultipartInspector {
    pub(crate) fn new(boundary: String, endpoint: Arc<str>, rules: Arc<UploadRules>) -> Self {
        let feed = Arc::new(Mutex::new(FeedState::default()));
        let multipart = multer::Multipart::new(Feed(feed.clone()), boundary);
        let inspection = Box::pin(inspect(multipart, endpoint, rules));
        MultipartInspector {
            feed,
            inspection: Mutex::new(inspection),
        }
    }

    /// Queues a data frame for multer.
    pub(crate) fn push(&mut self, chunk: Bytes) {
        self.feed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .chunks
            .push_back(chunk);
    }

    /// Marks the end of the body.
    pub(crate) fn end(&mut self) {
        self.feed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ended = true;
    }

    /// Runs the inspection as far as the pushed frames allow: `Pending`
    /// means "no verdict yet, push more".
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), UploadError>> {
        self.inspection
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            .poll(cx)
    }
}

async fn inspect(
    mut multipart: multer::Multipart<'static>,
    endpoint: Arc<str>,
    rules: Arc<UploadRules>,
) -> Result<(), UploadError> {
    let malformed = |e: multer::Error| UploadError::malformed(format!("multipart body: {e}"));
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        let mut part = PartInspector::new(endpoint.clone(), rules.clone());
        while let Some(chunk) = field.chunk().await.map_err(malformed)? {
            part.feed(&chunk)?;
        }
        part.finish()?;
    }
    Ok(())
}
