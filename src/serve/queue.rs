//! A bounded job queue in front of CPU-bound work (answer generation).
//!
//! Jobs wait in a fixed-size queue and run one at a time per worker thread
//! (generation already uses every core through rayon, so more workers only
//! add contention). A full queue refuses at once, so the HTTP layer can answer
//! 429 with `Retry-After` instead of letting requests pile up. Every job gets
//! a [`JobControl`] that says when to stop: the client went away (its
//! [`CancelOnDrop`] guard was dropped), the deadline passed, or the server is
//! shutting down. A job that panics costs only itself: its worker thread is
//! replaced and the queue keeps going.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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

/// How long past its job's deadline a worker may still be busy before it
/// counts as wedged (it should stop at its next token; one that does not is
/// not going to serve anyone soon).
pub const WEDGED_AFTER: Duration = Duration::from_secs(3);

/// What one worker slot is doing.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Idle,
    /// Running a job due by this deadline.
    Busy(Instant),
    /// Its thread died and no replacement could be started.
    Dead,
}

struct Inner<J> {
    rx: std::sync::Mutex<tokio::sync::mpsc::Receiver<(J, JobControl)>>,
    run: Arc<Runner<J>>,
    running: AtomicUsize,
    panics: AtomicU64,
    slots: Vec<std::sync::Mutex<Slot>>,
    threads: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl<J> Inner<J> {
    fn set_slot(&self, i: usize, s: Slot) {
        if let Some(m) = self.slots.get(i) {
            *m.lock().unwrap_or_else(|p| p.into_inner()) = s;
        }
    }
}

/// A bounded queue with worker threads that run submitted jobs.
///
/// A job that panics is caught: the panic is counted ([`JobQueue::panics`]),
/// the worker's thread ends and a fresh thread takes its slot, so the jobs
/// behind it are still run.
pub struct JobQueue<J: Send + 'static> {
    tx: tokio::sync::mpsc::Sender<(J, JobControl)>,
    capacity: usize,
    inner: Arc<Inner<J>>,
    shutdown: Arc<AtomicBool>,
}

/// Starts the thread for worker slot `i`.
fn spawn_worker<J: Send + 'static>(inner: Arc<Inner<J>>, i: usize) -> std::io::Result<()> {
    let for_thread = inner.clone();
    let handle = std::thread::Builder::new()
        .name(format!("byline-worker-{i}"))
        .spawn(move || worker_loop(for_thread, i))?;
    inner
        .threads
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(handle);
    Ok(())
}

fn worker_loop<J: Send + 'static>(inner: Arc<Inner<J>>, i: usize) {
    inner.set_slot(i, Slot::Idle);
    loop {
        // Hold the lock only while waiting for the next job (no job runs
        // under it, so a panicking job cannot poison it).
        let next = inner
            .rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .blocking_recv();
        let Some((job, ctl)) = next else { break };
        inner.running.fetch_add(1, Ordering::SeqCst);
        inner.set_slot(i, Slot::Busy(ctl.deadline));
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (inner.run)(job, &ctl)));
        inner.set_slot(i, Slot::Idle);
        inner.running.fetch_sub(1, Ordering::SeqCst);
        if outcome.is_err() {
            inner.panics.fetch_add(1, Ordering::SeqCst);
            // Whatever the panic left behind on this thread goes with it; a
            // fresh thread takes the slot.
            if let Err(e) = spawn_worker(inner.clone(), i) {
                tracing::error!(worker = i, error = %e, "could not replace a panicked worker");
                inner.set_slot(i, Slot::Dead);
            }
            return;
        }
    }
}

impl<J: Send + 'static> JobQueue<J> {
    /// Starts `workers` threads that run jobs with `run`; at most `capacity`
    /// jobs wait (jobs being run do not count).
    pub fn start(
        capacity: usize,
        workers: usize,
        run: impl Fn(J, &JobControl) + Send + Sync + 'static,
    ) -> std::io::Result<JobQueue<J>> {
        let capacity = capacity.max(1);
        let workers = workers.max(1);
        let (tx, rx) = tokio::sync::mpsc::channel::<(J, JobControl)>(capacity);
        let inner = Arc::new(Inner {
            rx: std::sync::Mutex::new(rx),
            run: Arc::new(run),
            running: AtomicUsize::new(0),
            panics: AtomicU64::new(0),
            slots: (0..workers)
                .map(|_| std::sync::Mutex::new(Slot::Idle))
                .collect(),
            threads: std::sync::Mutex::new(Vec::new()),
        });
        for i in 0..workers {
            spawn_worker(inner.clone(), i)?;
        }
        Ok(JobQueue {
            tx,
            capacity,
            inner,
            shutdown: Arc::new(AtomicBool::new(false)),
        })
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
        self.capacity.saturating_sub(self.tx.capacity())
    }

    /// Jobs being run right now.
    pub fn running(&self) -> usize {
        self.inner.running.load(Ordering::SeqCst)
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Worker slots.
    pub fn workers(&self) -> usize {
        self.inner.slots.len()
    }

    /// Jobs that panicked (each cost its worker thread, which was replaced).
    pub fn panics(&self) -> u64 {
        self.inner.panics.load(Ordering::SeqCst)
    }

    /// Workers that can take a job soon: alive, and idle or not more than
    /// [`WEDGED_AFTER`] past their current job's deadline.
    pub fn serving(&self) -> usize {
        let now = Instant::now();
        self.inner
            .slots
            .iter()
            .filter(|m| match *m.lock().unwrap_or_else(|p| p.into_inner()) {
                Slot::Idle => true,
                Slot::Busy(deadline) => now < deadline + WEDGED_AFTER,
                Slot::Dead => false,
            })
            .count()
    }

    /// Tells every running and queued job to stop (they see
    /// [`StopReason::Shutdown`]).
    pub fn stop_all(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
    }

    /// Closes the queue and waits for the workers to finish what they hold.
    pub fn join(self) {
        drop(self.tx);
        loop {
            let next = self
                .inner
                .threads
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop();
            match next {
                Some(t) => {
                    let _ = t.join();
                }
                None => break,
            }
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
        })
        .unwrap();
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
        })
        .unwrap();
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

    #[test]
    fn a_panicking_job_costs_its_thread_only_and_wedged_workers_stop_serving() {
        let (tx, rx) = mpsc::channel::<(u32, String)>();
        let q = JobQueue::start(4, 1, move |n: u32, ctl: &JobControl| {
            if n == 0 {
                panic!("job 0 panics");
            }
            if n == 9 {
                // Ignores its deadline.
                while ctl.should_stop().is_none() {
                    std::thread::sleep(Duration::from_millis(1));
                }
                std::thread::sleep(WEDGED_AFTER + Duration::from_millis(500));
            }
            let name = std::thread::current().name().unwrap_or("").to_string();
            tx.send((n, name)).unwrap();
        })
        .unwrap();
        let id_before = {
            let _g = q.submit(1, far()).unwrap();
            rx.recv().unwrap()
        };
        assert_eq!(id_before.1, "byline-worker-0");
        let _g0 = q.submit(0, far()).unwrap();
        let _g2 = q.submit(2, far()).unwrap();
        assert_eq!(rx.recv().unwrap().0, 2, "the job behind the panic runs");
        assert_eq!(q.panics(), 1);
        assert_eq!(q.serving(), 1);

        let _g9 = q
            .submit(9, Instant::now() + Duration::from_millis(50))
            .unwrap();
        let t0 = Instant::now();
        while q.serving() == 1 {
            assert!(t0.elapsed() < WEDGED_AFTER * 2, "never counted as wedged");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(rx.recv().unwrap().0, 9);
        let t0 = Instant::now();
        while q.serving() == 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "serving again once the job returned"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        q.join();
    }
}
