//! Group commit for the crawler: one writer task owns the crawl's writes of
//! finished entries and commits them in batches (up to `max_pages` entries
//! or `max_wait` per transaction), instead of one transaction per page.
//!
//! Each entry's rows are exactly what [`Store::crawl_complete`] writes, in
//! the same order (the batch applies them one after another inside one
//! transaction, so a later entry sees an earlier one's frontier rows as if
//! it had committed first). A caller's [`CrawlWriter::complete`] returns
//! only once its batch has committed: a URL is `done` when its batch is
//! durable and not before. The crawler fetches an origin's next URL while
//! the previous one waits here (issue #26), so a kill can lose the
//! fetched-but-uncommitted pages of the open batch (at most `max_pages`);
//! their frontier rows are still `in_flight` and the next run fetches them
//! again: nothing is lost for good and nothing is recorded twice.
//!
//! A batch that fails (a store error) is rolled back whole and every
//! caller in it gets the error; their frontier rows stay `in_flight` and
//! the next run re-queues them, as with a failed single transaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::pool::PoolConnection;
use tokio::sync::{mpsc, oneshot};

use super::crawl::{
    Completed, DecisionRecord, FetchRecord, FrontierOutcome, LinkBudget, LinkRecord, PageRecord,
};
use super::direct::DirectConn;
use super::evidence::ConsentRecord;
use super::{Store, StoreError};

/// How finished entries are grouped into transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommit {
    /// Most entries per transaction.
    pub max_pages: usize,
    /// Longest a batch waits for more entries after its first arrived
    /// (it commits at once when every entry in flight has joined it).
    pub max_wait: Duration,
}

impl Default for GroupCommit {
    fn default() -> GroupCommit {
        GroupCommit {
            max_pages: 64,
            max_wait: Duration::from_millis(100),
        }
    }
}

/// What the scheduler tells the writer between batches: whether it is
/// starved, i.e. it has started nothing and has nothing under way, so only
/// the open batch's commit (the URLs it queues) can give it more work, or
/// the run is ending. A batch commits as soon as that is so and no entry
/// is being worked on; otherwise it waits for more entries until
/// `max_wait`.
#[derive(Debug, Default)]
pub struct Starved {
    now: std::sync::atomic::AtomicBool,
    wake: tokio::sync::Notify,
}

impl Starved {
    /// Records the outcome of a scheduling round; wakes a waiting batch
    /// when the scheduler is starved.
    pub fn set(&self, starved: bool) {
        self.now.store(starved, Ordering::Release);
        if starved {
            self.wake.notify_one();
        }
    }

    fn get(&self) -> bool {
        self.now.load(Ordering::Acquire)
    }
}

/// One entry's outcome, owned, as [`Store::crawl_complete`] takes it.
#[derive(Debug, Clone)]
pub struct Completion {
    pub decisions: Vec<DecisionRecord>,
    pub fetch: Option<FetchRecord>,
    pub page: Option<(PageRecord, Vec<LinkRecord>)>,
    pub outcome: FrontierOutcome,
    pub frontier_id: i64,
    pub budget: LinkBudget,
    pub consent: Option<ConsentRecord>,
    pub now: i64,
}

/// Most bytes of finished pages (text, compressed body, links, evidence)
/// a batch holds: it commits once its entries reach this much, however
/// many and however early. `max_pages` alone let 64 large pages (a
/// megabyte of text each) wait in memory together.
pub const MAX_BATCH_BYTES: usize = 8 << 20;

impl Completion {
    /// About how many bytes of memory this outcome holds: what a batch is
    /// bounded by besides its number of entries.
    pub fn held_bytes(&self) -> usize {
        // Lengths of buffers in memory: their sum fits in a usize.
        let page = self.page.as_ref().map_or(0, |(p, links)| {
            let links: usize = links
                .iter()
                .map(|l| {
                    let candidate = l
                        .candidate
                        .as_ref()
                        .map_or(0, |c| c.url.len() + c.url_norm.len());
                    l.target_url.len() + l.anchor_text.len() + candidate
                })
                .sum();
            p.text.len() + p.raw.as_ref().map_or(0, |r| r.gz.len()) + links
        });
        let fetch = self.fetch.as_ref().map_or(0, |f| {
            f.response_headers_json.len() + f.redirect_chain_json.len()
        });
        let consent = self.consent.as_ref().map_or(0, |c| {
            c.evidence
                .iter()
                .map(|e| e.raw.len() + e.signal.len())
                .sum()
        });
        let outcome = match &self.outcome {
            FrontierOutcome::Done => 0,
            FrontierOutcome::Failed(m) | FrontierOutcome::Skipped(m) => m.len(),
            FrontierOutcome::Retry { error, .. } => error.len(),
        };
        page + fetch + consent + outcome
    }
}

struct Job {
    c: Completion,
    reply: oneshot::Sender<Result<Completed, StoreError>>,
}

/// The sending side of the writer; cheap to clone.
#[derive(Clone)]
pub struct CrawlWriter {
    tx: mpsc::UnboundedSender<Job>,
}

/// The writer task; [`WriterTask::finish`] waits for everything sent to be
/// committed.
pub struct WriterTask {
    handle: tokio::task::JoinHandle<WriterStats>,
}

/// How the writer grouped the entries it was sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions (batches) written, committed or not.
    pub batches: u64,
    /// Entries in them.
    pub entries: u64,
    /// Entries in the largest batch.
    pub largest: u64,
}

impl WriterTask {
    /// Waits until every batch sent before the last [`CrawlWriter`] was
    /// dropped has been written; how they were grouped.
    pub async fn finish(self) -> WriterStats {
        self.handle.await.unwrap_or_default()
    }
}

impl CrawlWriter {
    /// Commits `c` in the next batch; returns what was written once the
    /// batch has committed.
    pub async fn complete(&self, c: Completion) -> Result<Completed, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { c, reply })
            .map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }
}

impl Store {
    /// Starts the crawl writer. `in_flight` is the number of entries the
    /// caller is working on and has not sent yet (each will send one
    /// completion); when it is zero and the caller has said it is
    /// [`Starved`], a batch commits without waiting for `max_wait`.
    pub fn crawl_writer(
        &self,
        cfg: GroupCommit,
        in_flight: Arc<AtomicUsize>,
        starved: Arc<Starved>,
    ) -> (CrawlWriter, WriterTask) {
        let (tx, rx) = mpsc::unbounded_channel();
        let store = self.clone();
        let handle = tokio::spawn(writer_loop(store, cfg, in_flight, starved, rx));
        (CrawlWriter { tx }, WriterTask { handle })
    }
}

async fn writer_loop(
    store: Store,
    cfg: GroupCommit,
    in_flight: Arc<AtomicUsize>,
    starved: Arc<Starved>,
    mut rx: mpsc::UnboundedReceiver<Job>,
) -> WriterStats {
    let mut stats = WriterStats::default();
    // SQLite: the writer's prepared statements, kept between batches.
    let mut keep: Option<DirectConn> = None;
    let max = cfg.max_pages.max(1);
    while let Some(first) = rx.recv().await {
        let deadline = tokio::time::Instant::now() + cfg.max_wait;
        let mut bytes = first.c.held_bytes();
        let mut batch = vec![first];
        while batch.len() < max && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(j) => {
                    bytes += j.c.held_bytes();
                    batch.push(j);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            // Commit now when nothing is being worked on and the scheduler
            // is starved: it waits for this batch's new URLs, or the run
            // is ending, and no entry can join. Otherwise wait for more
            // until `max_wait`: the crawler does not hold an origin back
            // for its entry's commit (it fetches the origin's next URL
            // meanwhile), so waiting costs no throughput and a batch grows
            // with the crawl's pace; fewer, larger transactions write each
            // hot page of the b-trees to the WAL fewer times. (Issue #26:
            // committing whenever nothing was in flight for 3 ms made
            // batches of 8 pages on two origins, as the scheduler's next
            // claims were still on their way.)
            if in_flight.load(Ordering::Acquire) == 0 && starved.get() {
                break;
            }
            tokio::select! {
                r = tokio::time::timeout_at(deadline, rx.recv()) => match r {
                    Ok(Some(j)) => {
                        bytes += j.c.held_bytes();
                        batch.push(j);
                    }
                    Ok(None) | Err(_) => break,
                },
                // The scheduler became starved: look again.
                () = starved.wake.notified() => {}
            }
        }
        let n = batch.len() as u64;
        stats.batches += 1;
        stats.entries += n;
        stats.largest = stats.largest.max(n);
        let (completions, replies): (Vec<Completion>, Vec<_>) =
            batch.into_iter().map(|j| (j.c, j.reply)).unzip();
        match write_batch(&store, completions, &mut keep).await {
            Ok(done) => {
                for (reply, d) in replies.into_iter().zip(done) {
                    let _ = reply.send(Ok(d));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Batch(msg.clone())));
                }
            }
        }
    }
    if let Some(k) = keep
        && let Err(e) = close_direct(&store, k).await
    {
        tracing::warn!("closing the crawl writer's statements: {e}");
    }
    stats
}

async fn write_batch(
    store: &Store,
    mut batch: Vec<Completion>,
    keep: &mut Option<DirectConn>,
) -> Result<Vec<Completed>, StoreError> {
    if let Some(pg) = store.pg() {
        let mut tx = pg.begin().await?;
        let mut out = Vec::with_capacity(batch.len());
        for c in batch.iter_mut() {
            let page = c.page.as_mut().map(|(p, l)| (&*p, l.as_mut_slice()));
            out.push(
                super::pg::crawl::crawl_complete_in(
                    &mut tx,
                    store.worker(),
                    &c.decisions,
                    c.fetch.as_ref(),
                    page,
                    &c.outcome,
                    c.frontier_id,
                    c.budget,
                    c.consent.as_ref(),
                    c.now,
                )
                .await?,
            );
        }
        tx.commit().await?;
        return Ok(out);
    }
    write_sqlite(store, &mut batch, keep).await
}

/// Writes `batch` to the SQLite corpus in one transaction on the pool's
/// connection, driven directly on a blocking thread ([`super::direct`])
/// with the statements in `keep` (the caller closes them with
/// [`close_direct`] when done); the entries' link records come back with
/// their skip reasons set.
pub(crate) async fn write_sqlite(
    store: &Store,
    batch: &mut Vec<Completion>,
    keep: &mut Option<DirectConn>,
) -> Result<Vec<Completed>, StoreError> {
    // Statements stay prepared only on a pool of one connection.
    let reuse = store.pool()?.options().get_max_connections() == 1;
    let mut owned = std::mem::take(batch);
    let mut kept = keep.take();
    let (owned, kept, r) = on_blocking_conn(store, move |rt, conn| {
        let r = super::direct::write_batch(rt, conn, reuse, &mut kept, &mut owned);
        (owned, kept, r)
    })
    .await?;
    *batch = owned;
    *keep = kept;
    r
}

/// Finalizes the writer's statements (under the connection's lock).
pub(crate) async fn close_direct(store: &Store, keep: DirectConn) -> Result<(), StoreError> {
    on_blocking_conn(store, move |rt, conn| keep.close(rt, conn)).await?
}

/// Runs `f` on a blocking thread with the pool's connection (it locks the
/// handle itself, [`super::direct`]); the connection goes back to the pool
/// from here, not from the blocking thread.
async fn on_blocking_conn<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&tokio::runtime::Handle, &mut PoolConnection<Sqlite>) -> T + Send + 'static,
) -> Result<T, StoreError> {
    let mut conn = store.pool()?.acquire().await?;
    let rt = tokio::runtime::Handle::current();
    let (conn, out) = tokio::task::spawn_blocking(move || {
        let out = f(&rt, &mut conn);
        (conn, out)
    })
    .await
    .map_err(|e| StoreError::Batch(format!("the writer thread failed: {e}")))?;
    drop(conn);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::time::{Duration, Instant};

    use super::{Completion, CrawlWriter, GroupCommit, MAX_BATCH_BYTES, Starved, WriterTask};
    use crate::store::Store;
    use crate::store::crawl::{FrontierOutcome, LinkBudget, RunRecord};
    use crate::store::frontier::{Lease, NewEntry};

    /// A corpus with `n` claimed entries (one origin each) and their ids.
    async fn claimed(n: usize) -> (tempfile::TempDir, Store, Vec<i64>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_for_crawl(&dir.path().join("c.db"))
            .await
            .unwrap();
        let run = store
            .crawl_run_start(&RunRecord::for_test(100))
            .await
            .unwrap();
        let entries: Vec<NewEntry> = (0..n)
            .map(|i| NewEntry {
                url: format!("http://o{i}/"),
                url_norm: format!("http://o{i}/"),
                origin: format!("http://o{i}"),
                depth: 0,
                discovered_from: None,
                shape: None,
            })
            .collect();
        store.frontier_add_seeds(run, &entries, 100).await.unwrap();
        let lease = Lease {
            worker: "w".into(),
            ms: 1000,
        };
        let got = store
            .frontier_claim_ready(run, 200, &lease, &[], n, 1)
            .await
            .unwrap();
        assert_eq!(got.len(), n);
        (dir, store, got.iter().map(|e| e.id).collect())
    }

    /// A writer of up to 64 entries per batch waiting `max_wait`, with
    /// `in_flight` entries being worked on and the scheduler not starved.
    fn start(
        store: &Store,
        max_wait: Duration,
        in_flight: usize,
    ) -> (CrawlWriter, WriterTask, Arc<Starved>) {
        let cfg = GroupCommit {
            max_pages: 64,
            max_wait,
        };
        let starved = Arc::new(Starved::default());
        let in_flight = Arc::new(AtomicUsize::new(in_flight));
        let (writer, task) = store.crawl_writer(cfg, in_flight, starved.clone());
        (writer, task, starved)
    }

    fn done(frontier_id: i64) -> Completion {
        failed(frontier_id, "test")
    }

    fn failed(frontier_id: i64, why: &str) -> Completion {
        Completion {
            decisions: Vec::new(),
            fetch: None,
            page: None,
            outcome: FrontierOutcome::Failed(why.into()),
            frontier_id,
            budget: LinkBudget::NONE,
            consent: None,
            now: 300,
        }
    }

    /// Issue #26: with nothing in flight, a batch used to commit after
    /// 3 ms, while the scheduler's next claims were on their way, which
    /// made batches of a few pages. Now it waits for more entries until
    /// `max_wait` unless the scheduler says it is starved, and then
    /// commits at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_waits_for_more_entries_until_the_scheduler_is_starved() {
        let (_dir, store, ids) = claimed(3).await;
        let (writer, task, starved) = start(&store, Duration::from_secs(5), 0);
        let send = |id: i64| {
            let w = writer.clone();
            tokio::spawn(async move { w.complete(done(id)).await.map(|_| Instant::now()) })
        };
        // Two entries 50 ms apart, nothing in flight between them: one batch.
        let a = send(ids[0]);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let b = send(ids[1]);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !a.is_finished() && !b.is_finished(),
            "committed before max_wait"
        );
        let said = Instant::now();
        starved.set(true);
        let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
        assert!(a.duration_since(said) < Duration::from_secs(2), "{a:?}");
        assert!(b.duration_since(said) < Duration::from_secs(2), "{b:?}");
        // Still starved: the next entry commits without waiting.
        let sent = Instant::now();
        let c = send(ids[2]).await.unwrap().unwrap();
        assert!(c.duration_since(sent) < Duration::from_secs(2), "{c:?}");
        drop(writer);
        let stats = task.finish().await;
        assert_eq!((stats.batches, stats.entries, stats.largest), (2, 3, 2));
        let counts = store.frontier_counts().await.unwrap();
        assert_eq!((counts.failed, counts.in_flight), (3, 0));
        store.close().await;
    }

    /// A batch holds at most `MAX_BATCH_BYTES` of finished pages: entries
    /// that reach it commit at once, not after `max_wait` (64 large pages
    /// used to wait in memory together).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_commits_once_it_holds_its_bytes_limit() {
        let (_dir, store, ids) = claimed(4).await;
        let (writer, task, _starved) = start(&store, Duration::from_secs(30), 1);
        let big = "x".repeat(MAX_BATCH_BYTES / 3 + 1);
        assert!(failed(0, &big).held_bytes() > MAX_BATCH_BYTES / 3);
        let sent = Instant::now();
        let mut jobs = Vec::new();
        for &id in &ids[..3] {
            let w = writer.clone();
            let c = failed(id, &big);
            jobs.push(tokio::spawn(async move {
                w.complete(c).await.map(|_| Instant::now())
            }));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The fourth, small, waits: nothing says the scheduler is starved
        // and an entry is still in flight.
        let w = writer.clone();
        let last = tokio::spawn(async move { w.complete(done(ids[3])).await });
        for j in jobs {
            let at = j.await.unwrap().unwrap();
            assert!(at.duration_since(sent) < Duration::from_secs(10), "{at:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!last.is_finished());
        drop(writer);
        last.abort();
        let stats = task.finish().await;
        assert_eq!(stats.largest, 3, "{stats:?}");
        store.close().await;
    }
}
