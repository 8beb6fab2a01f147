//! A throwaway PostgreSQL cluster in a temporary directory (`initdb` +
//! `pg_ctl` on a loopback port), for the tests and for `bench crawl --db
//! postgres`: a real server, never a mock, gone when its owner is.
//!
//! The server binaries are looked for in `BYLINE_PG_BIN`, then on `PATH`,
//! then in Debian's `/usr/lib/postgresql/<major>/bin` (package
//! `postgresql`). PostgreSQL refuses to run as root, so as root the
//! cluster's files belong to, and its commands run as, the `postgres` user
//! (which Debian's package creates), through `runuser`.
//!
//! A watchdog process stops the server and removes the directory when the
//! process that started it exits, however it exits (a test binary's
//! statics are never dropped; a killed one runs no destructor).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// A running throwaway cluster; stopped and deleted on drop.
#[derive(Debug)]
pub struct TempCluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

/// What went wrong starting a cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's `postgresql` \
         package or set BYLINE_PG_BIN to their directory"
    )]
    NoBinaries,
    #[error("running as root needs the `postgres` user (Debian's `postgresql` package creates it)")]
    NoPostgresUser,
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("creating database {name}: {source}")]
    CreateDb {
        name: String,
        #[source]
        source: sqlx::Error,
    },
}

static SERIAL: AtomicU32 = AtomicU32::new(0);

impl TempCluster {
    /// Creates and starts a cluster (trust authentication, superuser
    /// `postgres`, listening on 127.0.0.1 only; durability settings off,
    /// as a throwaway needs no crash safety of its own).
    pub fn start() -> Result<TempCluster, ClusterError> {
        let bin = find_bin().ok_or(ClusterError::NoBinaries)?;
        let as_postgres = is_root();
        let owner = if as_postgres {
            Some(postgres_ids().ok_or(ClusterError::NoPostgresUser)?)
        } else {
            None
        };
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "byline-pg-{}-{serial}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))?;
        }
        let mut cluster = TempCluster {
            dir,
            bin,
            port: 0,
            as_postgres,
        };
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &[
                "-D",
                path_str(&data)?,
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;
        cluster.spawn_watchdog()?;
        // A free loopback port: bind, note it, release. Another process may
        // take it in between; then the start fails and is tried again.
        let mut last = None;
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            cluster.port = port;
            let opts = format!(
                "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
                path_str(&cluster.dir)?
            );
            let log = cluster.dir.join("server.log");
            match cluster.run(
                "pg_ctl start",
                &[
                    "-D",
                    path_str(&data)?,
                    "-l",
                    path_str(&log)?,
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    &opts,
                    "start",
                ],
            ) {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            return Err(e);
        }
        Ok(cluster)
    }

    /// The URL of database `name` (created by [`TempCluster::create_db`]).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log file (statements, errors).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// Creates an empty database `name` (letters, digits and `_` only) and
    /// returns its URL.
    pub async fn create_db(&self, name: &str) -> Result<String, ClusterError> {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(ClusterError::Command {
                what: "create database".into(),
                detail: format!("invalid database name {name:?}"),
            });
        }
        let err = |source| ClusterError::CreateDb {
            name: name.to_string(),
            source,
        };
        let mut conn = PgConnection::connect(&self.url("postgres"))
            .await
            .map_err(err)?;
        // `name` was checked above: letters, digits and '_' only.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .map_err(err)?;
        conn.close().await.map_err(err)?;
        Ok(self.url(name))
    }

    /// The cluster's data directory (`initdb -D`): its files hold every
    /// byte the server wrote (tests search them after an erasure).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Runs server binary `prog` (as `postgres` when we are root).
    fn run(&self, what: &str, args: &[&str]) -> Result<(), ClusterError> {
        let prog = self.bin.join(what.split(' ').next().unwrap_or(what));
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&prog);
            c
        } else {
            Command::new(&prog)
        };
        let out = cmd
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| ClusterError::Command {
                what: what.to_string(),
                detail: format!("{}: {e}", prog.display()),
            })?;
        if out.status.success() {
            Ok(())
        } else {
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            Err(ClusterError::Command {
                what: what.to_string(),
                detail: format!(
                    "{}\n{}\n{}",
                    String::from_utf8_lossy(&out.stdout).trim(),
                    String::from_utf8_lossy(&out.stderr).trim(),
                    log.lines().rev().take(10).collect::<Vec<_>>().join("\n")
                ),
            })
        }
    }

    /// A `sh` loop that waits for this process to end, then stops the
    /// server and deletes the directory.
    fn spawn_watchdog(&self) -> Result<(), ClusterError> {
        let pg_ctl = self.bin.join("pg_ctl");
        let runas = if self.as_postgres {
            "runuser -u postgres -- "
        } else {
            ""
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {runas}'{pg_ctl}' -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            pg_ctl = path_str(&pg_ctl)?,
            data = path_str(&self.data_dir())?,
            dir = path_str(&self.dir)?,
        );
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(())
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        if let Ok(data) = path_str(&self.data_dir()) {
            let _ = self.run("pg_ctl stop", &["-D", data, "-m", "immediate", "stop"]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until `url` accepts connections (at most `timeout`).
pub async fn wait_ready(url: &str, timeout: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if let Ok(c) = PgConnection::connect(url).await {
            let _ = c.close().await;
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Whether a cluster can be started here (binaries found, and the
/// `postgres` user when root).
pub fn available() -> bool {
    find_bin().is_some() && (!is_root() || postgres_ids().is_some())
}

fn path_str(p: &Path) -> Result<&str, ClusterError> {
    p.to_str().ok_or_else(|| ClusterError::Command {
        what: "temporary directory".into(),
        detail: format!("path is not UTF-8: {}", p.display()),
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// uid and gid of the `postgres` user, from /etc/passwd.
fn postgres_ids() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        if f.next()? != "postgres" {
            return None;
        }
        let _password = f.next()?;
        let uid = f.next()?.parse().ok()?;
        let gid = f.next()?.parse().ok()?;
        Some((uid, gid))
    })
}

fn find_bin() -> Option<PathBuf> {
    let has = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(d) = std::env::var_os("BYLINE_PG_BIN").map(PathBuf::from) {
        return has(&d).then_some(d);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if has(&d) {
                return Some(d);
            }
        }
    }
    // Debian: /usr/lib/postgresql/<major>/bin, newest major first.
    let mut majors: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, e.path().join("bin")))
        })
        .collect();
    majors.sort_by(|a, b| b.0.cmp(&a.0));
    majors.into_iter().map(|(_, d)| d).find(|d| has(d))
}
