//! A background thread that runs a job at an interval until stopped (the retention job and the
//! scheduled exports).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tracing::warn;

#[derive(Default)]
pub struct Periodic {
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Periodic {
    /// Runs `job` after `first`, then every `interval`, on a thread named `name`.
    pub fn start(&self, name: &str, first: Duration, interval: Duration, mut job: impl FnMut() + Send + 'static) {
        let stop = self.stop.clone();
        let spawned = std::thread::Builder::new().name(name.into()).spawn(move || {
            let mut next = Instant::now() + first;
            while !stop.load(Ordering::SeqCst) {
                if Instant::now() >= next {
                    job();
                    next = Instant::now() + interval;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        match spawned {
            Ok(handle) => *self.thread.lock() = Some(handle),
            Err(err) => warn!(thread = name, error = %err, "a background job could not start"),
        }
    }

    /// Stops the thread (a run in progress finishes first).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(handle) = self.thread.lock().take() {
            let _ = handle.join();
        }
    }
}
