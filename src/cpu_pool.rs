//! The pool that runs the CA's CPU-heavy work (CSR verification, signing)
//! off the async runtime, one thread per core: a request being signed
//! never holds up the connections a runtime worker also serves, and no
//! lock is held across the `.await` that waits for it.

use std::num::NonZeroUsize;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

type Job = Box<dyn FnOnce() + Send>;

/// A job ended in a panic (a bug); the pool and the process go on.
#[derive(Debug, thiserror::Error)]
#[error("a CPU pool job panicked")]
pub struct JobPanicked;

/// A fixed pool of threads for CPU-bound work.
/// The threads end when the pool is dropped.
#[derive(Debug)]
pub struct CpuPool {
    jobs: mpsc::Sender<Job>,
}

impl CpuPool {
    /// One thread per core the process may use.
    ///
    /// # Errors
    ///
    /// The threads cannot be started.
    pub fn sized_to_cores() -> std::io::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        Self::with_threads(cores)
    }

    /// A pool of `threads` threads (at least one).
    ///
    /// # Errors
    ///
    /// The threads cannot be started.
    pub fn with_threads(threads: usize) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..threads.max(1) {
            let queue = Arc::clone(&queue);
            thread::Builder::new()
                .name(format!("sigil-cpu-{index}"))
                .spawn(move || run_jobs(&queue))?;
        }
        Ok(Self { jobs })
    }

    /// Runs `job` on the pool and hands back its result. If the caller
    /// stops waiting, the job still runs to its end, and its result is
    /// dropped.
    ///
    /// # Errors
    ///
    /// The job panicked.
    pub async fn run<T, F>(&self, job: F) -> Result<T, JobPanicked>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        // If the threads are gone (they never stop while the pool lives),
        // the reply is dropped unsent and the caller gets an error.
        let _ = self.jobs.send(Box::new(move || {
            // Caught here, so that a panicking job fails its own request
            // and the thread goes on to the next job.
            if let Ok(value) = catch_unwind(AssertUnwindSafe(job)) {
                let _ = reply.send(value);
            }
        }));
        answer.await.map_err(|_| JobPanicked)
    }
}

/// A pool thread: runs jobs one at a time until the pool is dropped. The
/// lock is held only while waiting for the next job, never while running
/// one.
fn run_jobs(queue: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let next = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        match next {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn a_job_runs_off_the_calling_thread_and_a_panic_fails_only_its_own_job() {
        let pool = CpuPool::with_threads(2).unwrap();
        let caller = std::thread::current().id();
        let ran_on = pool.run(|| std::thread::current().id()).await.unwrap();
        assert_ne!(ran_on, caller);

        let panicked = pool.run(|| -> u32 { panic!("a bug in a job") }).await;
        assert!(matches!(panicked, Err(JobPanicked)));
        // The pool still runs jobs after one panicked.
        assert_eq!(pool.run(|| 6 * 7).await.unwrap(), 42);
    }
}
