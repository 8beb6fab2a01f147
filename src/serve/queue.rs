//! A bounded job queue in front of CPU-bound work (answer generation).
//!
//! Jobs wait in a fixed-size queue and run one at a time per worker thread
//! (generation already uses every core through rayon, so more workers only
//! add contention). A full queue refuses at once, so the HTTP layer can answer
//! 429 with `Retry-After` instead of letting requests pile up. Every job gets
//! a [`JobControl`] that says when to stop: the client went away (its
//! [`CancelOnDrop`] guard was dropped), the deadline passed, or the server is
//! shutting down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Why a running job should stop early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The client disconnected (or the handler gave up on the job).
    Cancelled,
    /// The per-request deadline passed.
    Deadline,
    /// The server is shutting down and the grace period is over.
    Shutdown,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Cancelled => "cancelled",
            StopReason::Deadline => "deadline",
            StopReason::Shutdown => "shutdown",
        }
    }
}

/// What a job checks between units of work (e.g. after every token).
#[derive(Debug, Clone)]
pub struct JobControl {
    cancel: Arc<AtomicBool>,
    shutdown: Arc<AtomicBool>,
    deadline: Instant,
    queued_at: Instant,
}

impl JobControl {
    /// `Some(reason)` once the job should stop.
    pub fn should_stop(&self) -> Option<StopReason> {
        if self.cancel.load(Ordering::Relaxed) {
            Some(StopReason::Cancelled)
        } else if self.shutdown.load(Ordering::Relaxed) {
            Some(StopReason::Shutdown)
        } else if Instant::now() >= self.deadline {
            Some(StopReason::Deadline)
        } else {
            None
        }
    }

    /// Time spent waiting in the queue before the job started.
    pub fn waited(&self, started: Instant) -> Duration {
        started.saturating_duration_since(self.queued_at)
    }
}

/// Cancels its job when dropped, unless [`CancelOnDrop::disarm`]ed. Held by
/// the request handler (or moved into a response stream) for as long as the
/// client is connected.
#[derive(Debug)]
pub struct CancelOnDrop {
    cancel: Arc<AtomicBool>,
    armed: bool,
}

impl CancelOnDrop {
    /// The job finished; dropping the guard no longer matters.
    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.cancel.store(true, Ordering::Relaxed);
        }
    }
}

/// The queue was full: try again later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull {
    pub capacity: usize,
}

type Runner<J> = dyn Fn(J, &JobControl) + Send + Sync;

/// A bounded queue with worker threads that run submitted jobs.
pub struct JobQueue<J: Send + 'static> {
    tx: tokio::sync::mpsc::Sender<(J, JobControl)>,
    capacity: usize,
    running: Arc<AtomicUsize>,
    shutdown: Arc<AtomicBool>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl<J: Send + 'static> JobQueue<J> {
    /// Starts `workers` threads that run jobs with `run`; at most `capacity`
    /// jobs wait (jobs being run do not count).
    pub fn start(
        capacity: usize,
        workers: usize,
        run: impl Fn(J, &JobControl) + Send + Sync + 'static,
    ) -> JobQueue<J> {
        let capacity = capacity.max(1);
        let (tx, rx) = tokio::sync::mpsc::channel::<(J, JobControl)>(capacity);
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let run: Arc<Runner<J>> = Arc::new(run);
        let running = Arc::new(AtomicUsize::new(0));
        let workers = (0..workers.max(1))
            .map(|i| {
                let (rx, run, running) = (rx.clone(), run.clone(), running.clone());
                std::thread::Builder::new()
                    .name(format!("byline-worker-{i}"))
                    .spawn(move || {
                        loop {
                            // Hold the lock only while waiting for the next job.
                            let next = rx.lock().expect("queue lock").blocking_recv();
                            let Some((job, ctl)) = next else { break };
                            running.fetch_add(1, Ordering::SeqCst);
                            run(job, &ctl);
                            running.fetch_sub(1, Ordering::SeqCst);
                        }
                    })
                    .expect("spawning a worker thread")
            })
            .collect();
        JobQueue {
            tx,
            capacity,
            running,
            shutdown: Arc::new(AtomicBool::new(false)),
            workers,
        }
    }

    /// Queues `job` to run before `deadline`. Returns the guard that cancels
    /// it when dropped, or [`QueueFull`] at once.
    pub fn submit(&self, job: J, deadline: Instant) -> Result<CancelOnDrop, QueueFull> {
        let cancel = Arc::new(AtomicBool::new(false));
        let ctl = JobControl {
            cancel: cancel.clone(),
            shutdown: self.shutdown.clone(),
            deadline,
            queued_at: Instant::now(),
        };
        self.tx.try_send((job, ctl)).map_err(|_| QueueFull {
            capacity: self.capacity,
        })?;
        Ok(CancelOnDrop {
            cancel,
            armed: true,
        })
    }

    /// Jobs waiting to start.
    pub fn waiting(&self) -> usize {
        self.capacity - self.tx.capacity()
    }

    /// Jobs being run right now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Tells every running and queued job to stop (they see
    /// [`StopReason::Shutdown`]).
    pub fn stop_all(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
    }

    /// Closes the queue and waits for the workers to finish what they hold.
    pub fn join(self) {
        drop(self.tx);
        for w in self.workers {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[test]
    fn a_full_queue_refuses_at_once_and_frees_up_when_jobs_finish() {
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let gate_rx = std::sync::Mutex::new(gate_rx);
        let (done_tx, done_rx) = mpsc::channel::<u32>();
        let q = JobQueue::start(2, 1, move |n: u32, _ctl: &JobControl| {
            gate_rx.lock().unwrap().recv().unwrap();
            done_tx.send(n).unwrap();
        });
        let _g1 = q.submit(1, far()).unwrap();
        // Wait until the worker holds job 1, so the queue itself is empty.
        while q.running() == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
        let _g2 = q.submit(2, far()).unwrap();
        let _g3 = q.submit(3, far()).unwrap();
        assert_eq!(q.waiting(), 2);
        assert_eq!(q.submit(4, far()).unwrap_err(), QueueFull { capacity: 2 });
        gate_tx.send(()).unwrap();
        assert_eq!(done_rx.recv().unwrap(), 1);
        // One slot is free again once job 2 has been taken by the worker.
        while q.waiting() > 1 {
            std::thread::sleep(Duration::from_millis(2));
        }
        let _g5 = q.submit(5, far()).unwrap();
        for _ in 0..3 {
            gate_tx.send(()).unwrap();
        }
        let rest: Vec<u32> = (0..3).map(|_| done_rx.recv().unwrap()).collect();
        assert_eq!(rest, [2, 3, 5]);
        q.join();
    }

    #[test]
    fn dropping_the_guard_cancels_a_running_job_and_deadlines_stop_it() {
        let (tx, rx) = mpsc::channel::<StopReason>();
        let q = JobQueue::start(4, 1, move |_: (), ctl: &JobControl| {
            let reason = loop {
                if let Some(r) = ctl.should_stop() {
                    break r;
                }
                std::thread::sleep(Duration::from_millis(1));
            };
            tx.send(reason).unwrap();
        });
        let guard = q.submit((), far()).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        drop(guard);
        assert_eq!(rx.recv().unwrap(), StopReason::Cancelled);

        let _g = q
            .submit((), Instant::now() + Duration::from_millis(30))
            .unwrap();
        assert_eq!(rx.recv().unwrap(), StopReason::Deadline);

        let mut disarmed = q.submit((), far()).unwrap();
        disarmed.disarm();
        drop(disarmed);
        std::thread::sleep(Duration::from_millis(20));
        q.stop_all();
        assert_eq!(rx.recv().unwrap(), StopReason::Shutdown);
        q.join();
    }
}
