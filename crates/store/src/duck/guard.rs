//! The writer's lock, and the count it keeps of writes that may change `signins`: a seqlock
//! that tells a query whether the sign-ins' day prints it cached still hold (see
//! [`super::rollup`]).

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::{rollup, DuckStore, Writer};

/// The writer, locked. Made for writes that may change `signins`, it keeps
/// [`DuckStore::signin_writes`] odd while held.
pub(super) struct WriterGuard<'a> {
    writer: parking_lot::MutexGuard<'a, Writer>,
    signin_writes: Option<&'a AtomicU64>,
    /// The cached day prints, and the first and last day of the sign-ins written: prints of
    /// other days stay valid (see [`rollup`]).
    pub(super) keeps_prints: Option<(&'a PrintSlot, (i64, i64))>,
}

/// Where [`DuckStore`] keeps the sign-ins' day prints (see [`rollup::PrintCache`]).
pub(super) type PrintSlot = Mutex<Option<rollup::PrintCache>>;

impl std::ops::Deref for WriterGuard<'_> {
    type Target = Writer;
    fn deref(&self) -> &Writer {
        &self.writer
    }
}

impl std::ops::DerefMut for WriterGuard<'_> {
    fn deref_mut(&mut self) -> &mut Writer {
        &mut self.writer
    }
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        // Before the lock is released: what the writer committed is in every later snapshot.
        if let Some(writes) = self.signin_writes {
            if let Some((cache, days)) = self.keeps_prints {
                rollup::keep_prints(cache, writes.load(Ordering::SeqCst), days);
            }
            writes.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl DuckStore {
    /// The writer, for anything (a change to `signins` included).
    pub(super) fn writer(&self) -> WriterGuard<'_> {
        self.lock_writer(true)
    }

    /// The writer; `signins` false only for work that leaves the rows of `signins` as they are
    /// (reads, a checkpoint, day rows).
    pub(super) fn lock_writer(&self, signins: bool) -> WriterGuard<'_> {
        let writer = self.writer.lock();
        WriterGuard { writer, signin_writes: signins.then(|| self.mark_signin_write()), keeps_prints: None }
    }

    /// The writer if it is free, as [`DuckStore::lock_writer`].
    pub(super) fn try_writer(&self, signins: bool) -> Option<WriterGuard<'_>> {
        let writer = self.writer.try_lock()?;
        Some(WriterGuard { writer, signin_writes: signins.then(|| self.mark_signin_write()), keeps_prints: None })
    }

    fn mark_signin_write(&self) -> &AtomicU64 {
        self.signin_writes.fetch_add(1, Ordering::SeqCst);
        &self.signin_writes
    }
}
