//! [`EtagBody`]: a response body that may have been read ahead (to hash it) and is replayed to the client.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use xxhash_rust::xxh3::Xxh3;

/// The response body of [`EtagService`](super::EtagService): the frames read ahead to compute the ETag, then
/// whatever the inner body still has (nothing if it was read completely).
///
/// ```
/// use http_body::Body;
/// let body = cache_core::http::EtagBody::<http_body_util::Empty<bytes::Bytes>>::empty();
/// assert!(body.is_end_stream());
/// ```
pub struct EtagBody<B: Body> {
    /// Frames already read from `rest`, sent first.
    prefix: VecDeque<Frame<Bytes>>,
    /// An error met while reading ahead, sent after `prefix`.
    error: Option<B::Error>,
    /// Boxed so the body can be polled through `BodyExt` while reading ahead and moved here afterwards.
    rest: Option<Pin<Box<B>>>,
}

// No field is structurally pinned (the inner body is boxed), so moving an `EtagBody` is fine even when the
// body's error type is not `Unpin`.
impl<B: Body> Unpin for EtagBody<B> {}

impl<B: Body> std::fmt::Debug for EtagBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtagBody")
            .field("buffered_frames", &self.prefix.len())
            .field("failed", &self.error.is_some())
            .field("streaming", &self.rest.is_some())
            .finish()
    }
}

impl<B: Body> EtagBody<B> {
    /// A body without content (a `304 Not Modified`).
    ///
    /// ```
    /// let body = cache_core::http::EtagBody::<http_body_util::Full<bytes::Bytes>>::empty();
    /// ```
    pub fn empty() -> Self {
        Self {
            prefix: VecDeque::new(),
            error: None,
            rest: None,
        }
    }

    /// Passes `body` through untouched.
    pub(crate) fn passthrough(body: B) -> Self {
        Self {
            prefix: VecDeque::new(),
            error: None,
            rest: Some(Box::pin(body)),
        }
    }

    /// Reads `body` completely if it is at most `limit` bytes long, hashing the data.
    ///
    /// Returns the replayable body and, if it was read completely without error, the 128-bit xxh3 hash of its
    /// data. A longer body is returned with the part read so far in front of the unread rest.
    pub(crate) async fn read_ahead(body: B, limit: usize) -> (Self, Option<u128>) {
        let mut this = Self::passthrough(body);
        let Some(rest) = this.rest.as_mut() else {
            return (this, None);
        };
        if rest.size_hint().lower() > limit as u64 {
            return (this, None);
        }
        let mut hasher = Xxh3::new();
        let mut read = 0usize;
        loop {
            match rest.frame().await {
                None => {
                    this.rest = None;
                    return (this, Some(hasher.digest128()));
                }
                Some(Err(error)) => {
                    this.error = Some(error);
                    this.rest = None;
                    return (this, None);
                }
                Some(Ok(frame)) => {
                    let frame = frame.map_data(|mut data| data.copy_to_bytes(data.remaining()));
                    if let Some(data) = frame.data_ref() {
                        hasher.update(data);
                        read = read.saturating_add(data.len());
                    }
                    this.prefix.push_back(frame);
                    if read > limit {
                        return (this, None);
                    }
                }
            }
        }
    }
}

impl<B: Body> Body for EtagBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        if let Some(frame) = this.prefix.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if let Some(error) = this.error.take() {
            return Poll::Ready(Some(Err(error)));
        }
        let Some(rest) = this.rest.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = rest.as_mut().poll_frame(cx);
        if let Poll::Ready(None | Some(Err(_))) = &polled {
            // Never poll a finished or failed body again.
            this.rest = None;
        }
        polled.map(|frame| {
            frame.map(|frame| {
                frame.map(|frame| frame.map_data(|mut data| data.copy_to_bytes(data.remaining())))
            })
        })
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_empty()
            && self.error.is_none()
            && self.rest.as_ref().is_none_or(|rest| rest.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let buffered: u64 = self
            .prefix
            .iter()
            .filter_map(|frame| frame.data_ref())
            .map(|data| data.len() as u64)
            .sum();
        let rest = self
            .rest
            .as_ref()
            .map_or(SizeHint::with_exact(0), |rest| rest.size_hint());
        // Built from scratch: `set_lower` and `set_upper` panic if they would cross the other bound.
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower().saturating_add(buffered));
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper.saturating_add(buffered));
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};

    #[tokio::test]
    async fn small_bodies_are_read_and_replayed() {
        let (body, hash) = EtagBody::read_ahead(Full::new(Bytes::from_static(b"hello")), 5).await;
        assert!(hash.is_some());
        assert_eq!(body.size_hint().exact(), Some(5));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
    }

    #[tokio::test]
    async fn long_bodies_stream_through_without_a_hash() {
        let (body, hash) = EtagBody::read_ahead(Full::new(Bytes::from_static(b"hello")), 4).await;
        assert_eq!(hash, None);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
        let chunks = (0..10)
            .map(|i| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(vec![i; 3]))));
        let stream = StreamBody::new(futures::stream::iter(chunks));
        let (body, hash) = EtagBody::read_ahead(stream, 7).await;
        assert_eq!(hash, None);
        assert_eq!(body.collect().await.unwrap().to_bytes().len(), 30);
    }

    #[tokio::test]
    async fn errors_are_replayed_after_the_data() {
        let frames: Vec<Result<Frame<Bytes>, &'static str>> =
            vec![Ok(Frame::data(Bytes::from_static(b"a"))), Err("boom")];
        let (mut body, hash) =
            EtagBody::read_ahead(StreamBody::new(futures::stream::iter(frames)), 100).await;
        assert_eq!(hash, None);
        assert!(body.frame().await.unwrap().is_ok());
        assert_eq!(body.frame().await.unwrap().unwrap_err(), "boom");
        assert!(body.frame().await.is_none());
    }
}
