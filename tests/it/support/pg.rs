//! A real throwaway PostgreSQL cluster for the tests (issue #20): one per
//! test binary, started on first use (`initdb` + `pg_ctl` in a temp dir on
//! a loopback port, see `byline::store::pg::cluster`), and one fresh
//! database per test. `tools/test.sh` installs Debian's `postgresql`
//! package so the server binaries are there.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use byline::store::pg::cluster::TempCluster;

static CLUSTER: OnceLock<TempCluster> = OnceLock::new();
static DB_SERIAL: AtomicU32 = AtomicU32::new(0);

/// The test binary's cluster (started on first call).
pub fn cluster() -> &'static TempCluster {
    CLUSTER.get_or_init(|| {
        TempCluster::start().unwrap_or_else(|e| {
            panic!("starting a throwaway PostgreSQL cluster for the tests: {e} (tools/test.sh installs it)")
        })
    })
}

/// The URL of a new, empty database on the test cluster.
pub async fn fresh_db() -> String {
    let c = cluster();
    let n = DB_SERIAL.fetch_add(1, Ordering::Relaxed);
    c.create_db(&format!("t{}_{n}", std::process::id()))
        .await
        .expect("creating a test database")
}
