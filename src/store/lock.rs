//! One crawler at a time on an SQLite corpus.
//!
//! A crawl starting on an SQLite file re-queues every claim left in flight,
//! taking them for a dead run's (kill -9, power loss). That is only true if
//! no other crawler is running on the file, so a crawl first takes an
//! advisory lock on a sidecar file, `<corpus>.crawl-lock`, and holds it
//! until it ends. The kernel drops the lock when the process dies however
//! it dies, so a killed crawl never leaves the corpus locked. The file holds
//! a line naming the holder (pid, host, start time) for the refusal message.
//!
//! PostgreSQL needs no such lock: workers there share the frontier through
//! leases (see `pg::frontier`), and each re-queues only expired claims.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use super::{Backend, Store, StoreError};

/// Held for as long as a crawl runs on this corpus; dropping it (or the
/// process ending) releases the corpus.
#[derive(Debug)]
pub struct CrawlerLock {
    _file: Option<File>,
}

/// The most of a holder line quoted in the refusal.
const HOLDER_MAX_CHARS: usize = 200;

impl Store {
    /// Takes this corpus for one crawler: on SQLite an exclusive advisory
    /// lock on `<corpus>.crawl-lock`, refused with
    /// [`StoreError::CrawlerBusy`] while another process holds it. `holder`
    /// describes this crawler for that message. On PostgreSQL (shared
    /// frontier with leases) and for an in-memory database, nothing.
    pub fn lock_crawler(&self, holder: &str) -> Result<CrawlerLock, StoreError> {
        let Backend::Sqlite(pool) = &self.backend else {
            return Ok(CrawlerLock { _file: None });
        };
        let opts = pool.connect_options();
        let db = opts.get_filename();
        if db.as_os_str().is_empty() || db.as_os_str() == ":memory:" {
            return Ok(CrawlerLock { _file: None });
        }
        let mut path = PathBuf::from(db.as_os_str());
        path.as_mut_os_string().push(".crawl-lock");
        let io = |source| StoreError::Lock {
            path: path.display().to_string(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0).map_err(io)?;
                file.seek(SeekFrom::Start(0)).map_err(io)?;
                file.write_all(holder.as_bytes()).map_err(io)?;
                Ok(CrawlerLock { _file: Some(file) })
            }
            Err(TryLockError::WouldBlock) => {
                let mut bytes = Vec::new();
                // The holder line is informative only: unreadable is empty.
                let _ = file.take(4096).read_to_end(&mut bytes);
                let text = String::from_utf8_lossy(&bytes);
                let holder: String = text.trim().chars().take(HOLDER_MAX_CHARS).collect();
                Err(StoreError::CrawlerBusy {
                    path: path.display().to_string(),
                    holder: if holder.is_empty() {
                        "a process that did not say who it is".into()
                    } else {
                        holder
                    },
                })
            }
            Err(TryLockError::Error(e)) => Err(io(e)),
        }
    }
}
