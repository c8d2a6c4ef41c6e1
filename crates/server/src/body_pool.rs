//! Ingest request bodies, read into reused buffers.
//!
//! A batch of 10,000 sign-ins is an 18 MB body. Read with axum's `Bytes` extractor, each lands
//! in a freshly allocated buffer whose pages the kernel zeroes on first touch. Here a body is
//! read into a buffer taken from a small pool, and the buffer goes back when the last event
//! parsed from it is dropped (their bodies are slices of it, `bytes::Bytes::from_owner`; the
//! writer drops them once they are in the event log): about 0.8 us less HTTP-thread CPU per
//! sign-in in a sustained ingest (measured; docs/benchmarks.md run 30).
//! The pool keeps a few buffers only (at most [`MAX_POOLED`], [`MAX_POOLED_BYTES`] together),
//! so an idle server holds little for it.

use std::sync::Arc;

use axum::body::Body;
use futures::StreamExt;
use parking_lot::Mutex;

use crate::error::{ApiError, ApiResult};

/// Buffers kept for reuse at most.
pub const MAX_POOLED: usize = 4;
/// Capacity of the kept buffers together at most.
pub const MAX_POOLED_BYTES: usize = 96 << 20;

/// The size a plain body declares (`Content-Length`); none for a compressed one, whose length
/// says nothing of what it expands to.
pub fn declared_length(headers: &axum::http::HeaderMap) -> Option<usize> {
    use axum::http::header;
    match headers.contains_key(header::CONTENT_ENCODING) {
        true => None,
        false => headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok()),
    }
}

#[derive(Default)]
pub struct BodyPool {
    free: Mutex<Vec<Vec<u8>>>,
}

/// A request body in a pooled buffer; the buffer returns to the pool when this is dropped.
pub struct PooledBody {
    bytes: Vec<u8>,
    pool: Arc<BodyPool>,
}

impl std::ops::Deref for PooledBody {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl AsRef<[u8]> for PooledBody {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.bytes));
    }
}

impl BodyPool {
    /// Reads a request's whole body ([`BodyPool::read`]), sized up front by its
    /// [`declared_length`].
    pub async fn read_request(
        self: &Arc<Self>,
        headers: &axum::http::HeaderMap,
        body: Body,
        limit: usize,
    ) -> ApiResult<PooledBody> {
        self.read(body, limit, declared_length(headers)).await
    }

    /// Reads a whole body (decompressed, when it came compressed): over `limit` bytes is 413
    /// (`max_body_bytes`), a body that cannot be read (not what its encoding says) is 400.
    pub async fn read(self: &Arc<Self>, body: Body, limit: usize, length: Option<usize>) -> ApiResult<PooledBody> {
        let mut out = PooledBody { bytes: self.take(), pool: self.clone() };
        if let Some(length) = length {
            out.bytes.reserve(length.min(limit));
        }
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|err| ApiError::BadRequest(format!("could not read the request body: {err}")))?;
            if out.bytes.len() + chunk.len() > limit {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            out.bytes.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    fn take(&self) -> Vec<u8> {
        // The largest kept buffer: the next body is most likely as large as the last ones.
        let mut free = self.free.lock();
        let largest = (0..free.len()).max_by_key(|&i| free[i].capacity());
        largest.map(|i| free.swap_remove(i)).unwrap_or_default()
    }

    fn give(&self, mut bytes: Vec<u8>) {
        bytes.clear();
        let mut free = self.free.lock();
        let kept: usize = free.iter().map(Vec::capacity).sum();
        if bytes.capacity() > 0 && free.len() < MAX_POOLED && kept + bytes.capacity() <= MAX_POOLED_BYTES {
            free.push(bytes);
        }
    }

    /// Buffers kept and their capacity together.
    #[cfg(test)]
    fn kept(&self) -> (usize, usize) {
        let free = self.free.lock();
        (free.len(), free.iter().map(Vec::capacity).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: &[&'static [u8]]) -> Body {
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> =
            parts.iter().map(|p| Ok(bytes::Bytes::from_static(p))).collect();
        Body::from_stream(futures::stream::iter(chunks))
    }

    #[tokio::test]
    async fn buffers_are_reused_and_the_pool_stays_small() {
        let pool = Arc::new(BodyPool::default());
        let first = pool.read(body(&[b"abc", b"def"]), 100, Some(6)).await.unwrap();
        assert_eq!(&*first, b"abcdef");
        let address = first.as_ptr();
        drop(first);
        assert_eq!(pool.kept().0, 1);
        let second = pool.read(body(&[b"xyz"]), 100, None).await.unwrap();
        assert_eq!(&*second, b"xyz", "a reused buffer starts empty");
        assert_eq!(second.as_ptr(), address, "the kept buffer was reused");
        drop(second);
        // At most MAX_POOLED buffers are kept, however many were in use at once.
        let mut held = Vec::new();
        for _ in 0..MAX_POOLED + 3 {
            held.push(pool.read(body(&[b"0123456789"]), 100, None).await.unwrap());
        }
        drop(held);
        assert_eq!(pool.kept().0, MAX_POOLED);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_and_its_buffer_kept() {
        let pool = Arc::new(BodyPool::default());
        match pool.read(body(&[b"12345", b"67890"]), 8, None).await {
            Err(ApiError::PayloadTooLarge { limit: 8 }) => {}
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("over the limit"),
        }
        assert_eq!(pool.kept().0, 1);
        let failing: Vec<Result<bytes::Bytes, std::io::Error>> =
            vec![Ok(bytes::Bytes::from_static(b"{")), Err(std::io::Error::other("corrupt gzip"))];
        match pool.read(Body::from_stream(futures::stream::iter(failing)), 100, None).await {
            Err(ApiError::BadRequest(message)) => assert!(message.contains("request body"), "{message}"),
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("a failing body"),
        }
    }
}
