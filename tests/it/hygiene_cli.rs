//! Command-line hygiene, on the real binary: commands that read a corpus
//! refuse a missing `--db` (and create nothing), a closed stdout ends the
//! program quietly, exit statuses follow the documented table (0 success,
//! 1 problem found, 2 usage/input, 3 runtime, 141 closed pipe), `-q` and
//! `-v` change what reaches stderr, and logs carry no colour off a terminal.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::server::{Route, TestServer};
use crate::support::{byline_bin, tempdir};

/// The binary with a clean environment for what these tests check.
fn byline() -> Command {
    let mut c = Command::new(byline_bin());
    c.env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .env_remove("BYLINE_DB");
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn show(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        text(&o.stdout),
        text(&o.stderr)
    )
}

/// A small site crawled by `byline crawl` into a fresh corpus.
struct Crawled {
    _dir: tempfile::TempDir,
    db: PathBuf,
    page: String,
}

fn crawled() -> Crawled {
    let (s, _t) = TestServer::start_in_thread(|s| {
        s.route(
            "/",
            Route::html("<title>Home</title><a href=\"/a\">a</a> <a href=\"/b\">b</a>"),
        );
        s.route(
            "/a",
            Route::html("<title>A</title><p>The mill was built in 1820.</p>"),
        );
        s.route("/b", Route::html("<title>B</title><p>The bridge.</p>"));
        s.route("/robots.txt", Route::text("User-agent: *\nAllow: /\n"));
    });
    let dir = tempdir();
    let db = dir.path().join("corpus.db");
    let out = byline()
        .arg("--db")
        .arg(&db)
        .args(["crawl", "--delay-ms", "0"])
        .arg(s.url("/"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    Crawled {
        _dir: dir,
        db,
        page: s.url("/a"),
    }
}

/// The corpus file or any of its SQLite side files.
fn any_corpus_file(db: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        if p.exists() {
            found.push(p);
        }
    }
    found
}

#[test]
fn read_commands_refuse_a_missing_corpus_with_status_2_and_create_nothing() {
    let dir = tempdir();
    let db = dir.path().join("missing.db");
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/eu-opt-out.toml");
    let policy = policy.to_str().unwrap();
    let no_model = dir.path().join("no-model.gguf");
    let no_model = no_model.to_str().unwrap();
    let commands: Vec<Vec<&str>> = vec![
        vec!["audit", "summary"],
        vec!["audit", "summary", "--json"],
        vec!["audit", "why", "http://127.0.0.1:1/a"],
        vec!["audit", "sources"],
        vec!["audit", "verify"],
        vec!["forget", "http://127.0.0.1:1/a"],
        vec!["policy", "apply", policy],
        // A missing model makes today's main stop (after creating the
        // corpus) instead of loading one.
        vec!["ask", "--model", no_model, "Who built the mill?"],
        vec!["serve", "--model", no_model, "--addr", "127.0.0.1:0"],
    ];
    for args in commands {
        let out = byline().arg("--db").arg(&db).args(&args).output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", show(&out));
        assert!(
            err.contains(&format!("no corpus at {}", db.display())) && err.contains("byline crawl"),
            "{args:?}: the message names the path and how to make a corpus: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: {}", show(&out));
        assert_eq!(
            any_corpus_file(&db),
            Vec::<PathBuf>::new(),
            "{args:?} created a corpus"
        );
    }
}

#[test]
fn a_file_that_is_not_a_database_is_an_input_error() {
    let dir = tempdir();
    let db = dir.path().join("notes.txt");
    std::fs::write(&db, "these are my notes, not a corpus\n".repeat(200)).unwrap();
    let out = byline()
        .arg("--db")
        .arg(&db)
        .args(["audit", "summary"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("not a database"),
        "{}",
        show(&out)
    );
}

#[test]
fn a_closed_stdout_ends_the_program_quietly_with_status_141() {
    let c = crawled();
    for args in [
        vec!["audit", "summary"],
        vec!["audit", "sources", "--json"],
        vec!["audit", "why", &c.page],
        // `crawl` prints its summary with println! (the panic-hook backstop).
        vec!["-q", "crawl", "--delay-ms", "0", &c.page],
    ] {
        let mut child = byline()
            .arg("--db")
            .arg(&c.db)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before the first byte is written, so the
        // first write hits a closed pipe, whatever the output's size.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            text(&out.stderr),
            "",
            "{args:?}: nothing on stderr, no panic"
        );
        assert_eq!(out.status.code(), Some(141), "{args:?}: {}", show(&out));
    }
}

#[test]
fn statuses_follow_the_table_problem_1_input_2_runtime_3() {
    let c = crawled();
    let run = |args: &[&str]| byline().arg("--db").arg(&c.db).args(args).output().unwrap();
    // 1: the check ran and found a problem.
    let out = run(&["audit", "why", "http://127.0.0.1:1/never-met"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("not in the corpus"),
        "{}",
        show(&out)
    );
    // 0: a URL the crawl met.
    let out = run(&["audit", "why", &c.page]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    // 2: input the user can fix.
    for args in [
        &["audit", "why", "not a url"][..],
        &["audit", "sources", "--purpose", "nope"][..],
        &["forget"][..],
        &["policy", "check", "/nonexistent/policy.toml"][..],
        &["audit", "no-such-subcommand"][..],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", show(&out));
    }
    // 3: the database fails under a correct command line.
    let conn = exec_sql(&c.db, "DROP TABLE exports");
    assert!(conn, "dropped a table");
    let out = run(&["audit", "summary"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(text(&out.stderr).starts_with("error: "), "{}", show(&out));
    // The table is in --help.
    let out = byline().arg("--help").output().unwrap();
    let help = text(&out.stdout);
    assert!(out.status.success(), "{}", show(&out));
    for line in ["Exit status:", "  1 ", "  2 ", "  3 ", "  141 "] {
        assert!(help.contains(line), "{line:?} not in --help:\n{help}");
    }
}

/// Runs one statement on the corpus with sqlx (a real file, no mocks).
fn exec_sql(db: &Path, sql: &str) -> bool {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(db);
        let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
        let r = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&pool)
            .await;
        pool.close().await;
        r.is_ok()
    })
}

#[test]
fn logs_carry_no_escape_bytes_when_stderr_is_not_a_terminal() {
    let c = crawled();
    for args in [
        &["-vv", "audit", "summary"][..],
        &["-vvv", "audit", "verify"][..],
    ] {
        let out = byline().arg("--db").arg(&c.db).args(args).output().unwrap();
        assert!(out.status.success(), "{}", show(&out));
        assert!(
            text(&out.stderr).contains("DEBUG"),
            "{args:?}: debug lines are logged: {}",
            show(&out)
        );
        assert!(
            !out.stderr.contains(&0x1b),
            "{args:?}: ESC in redirected stderr: {}",
            show(&out)
        );
    }
}

#[test]
fn quiet_prints_nothing_on_stderr_and_verbose_adds_info() {
    let (s, _t) = TestServer::start_in_thread(|s| {
        s.route("/", Route::html("<a href=\"/a\">a</a>"));
        s.route("/a", Route::html("<p>a page</p>"));
        s.route("/robots.txt", Route::text("User-agent: *\nAllow: /\n"));
    });
    let dir = tempdir();
    let db = dir.path().join("c.db");
    let run = |args: &[&str]| byline().arg("--db").arg(&db).args(args).output().unwrap();
    let seed = s.url("/");
    // -q: a successful crawl and audit say nothing on stderr, results stay.
    let out = run(&["-q", "crawl", "--delay-ms", "0", &seed]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(text(&out.stderr), "", "{}", show(&out));
    assert!(text(&out.stdout).contains("fetched:"), "{}", show(&out));
    let out = run(&["--quiet", "audit", "summary"]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(text(&out.stderr), "", "{}", show(&out));
    assert!(text(&out.stdout).contains("corpus:"), "{}", show(&out));

    // Default: audit says nothing on stderr; -v says what it read.
    let out = run(&["audit", "summary"]);
    assert_eq!(text(&out.stderr), "", "{}", show(&out));
    let out = run(&["-v", "audit", "summary"]);
    assert!(out.status.success(), "{}", show(&out));
    let err = text(&out.stderr);
    assert!(
        err.contains("INFO") && err.contains("verdict records"),
        "{}",
        show(&out)
    );
    assert!(!err.contains("DEBUG"), "-v is info, not debug: {err}");

    // Crawl: -v adds info lines to the per-URL lines of the default.
    let plain = run(&["crawl", "--delay-ms", "0", &seed]);
    let verbose = run(&["-v", "crawl", "--delay-ms", "0", &seed]);
    assert!(verbose.status.success(), "{}", show(&verbose));
    let (p, v) = (text(&plain.stderr), text(&verbose.stderr));
    assert!(!p.contains("INFO"), "{p}");
    assert!(
        v.contains("INFO") && v.contains("crawling 1 seed(s)"),
        "{}",
        show(&verbose)
    );
    assert!(v.lines().count() > p.lines().count(), "{p}\n---\n{v}");

    // -q and -v together are a usage error.
    let out = run(&["-q", "-v", "audit", "summary"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
}

/// A statement that runs past sqlx's one-second alert (here: an export's
/// write kept waiting by another writer's transaction; in CI, a loaded
/// machine) is not a warning the user can act on: by default stderr stays
/// empty and `--json` output stays the only output; `-vv` shows it.
#[test]
fn a_slow_statement_is_a_debug_line_not_a_warning() {
    let c = crawled();
    let export = |dir: &str, verbose: &[&str]| {
        let db = c.db.clone();
        let out = c.db.with_file_name(dir);
        // Another writer holds the corpus. The export reads and writes its
        // files meanwhile (WAL readers are not blocked); its one database
        // write, recording the export, comes right after its manifest
        // file. The holder keeps the lock 1.5 s past the manifest, so that
        // write waits in SQLite's busy handler, inside its statement, for
        // over a second however slowly the process started.
        let manifest = out.join("manifest.json");
        let (held_tx, held) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                use sqlx::Connection;
                let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&db);
                let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                held_tx.send(()).unwrap();
                let t0 = std::time::Instant::now();
                while !manifest.exists() && t0.elapsed().as_secs() < 30 {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                std::thread::sleep(std::time::Duration::from_millis(1500));
                sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            })
        });
        held.recv().unwrap();
        let o = byline()
            .arg("--db")
            .arg(&c.db)
            .args(verbose)
            .args(["audit", "export", "--format", "jsonl", "--json", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        holder.join().unwrap();
        o
    };
    let out = export("x1", &[]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(text(&out.stderr), "", "{}", show(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert!(v["records"].as_u64().is_some_and(|n| n > 0), "{v}");

    let out = export("x2", &["-vv"]);
    assert!(out.status.success(), "{}", show(&out));
    let err = text(&out.stderr);
    let slow: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("slow statement"))
        .collect();
    assert!(
        !slow.is_empty() && slow.iter().all(|l| l.contains("DEBUG")),
        "-vv shows the slow statement as a debug line: {}",
        show(&out)
    );
}
/// Runs `byline` with stdout and stderr on a pseudo-terminal, through
/// util-linux `script` (Debian's essential `bsdutils`), returning what the
/// terminal showed.
fn on_a_terminal(db: &Path, args: &[&str], no_color: bool) -> Vec<u8> {
    let mut line = format!("'{}' --db '{}'", byline_bin().display(), db.display());
    for a in args {
        line.push_str(&format!(" '{a}'"));
    }
    let mut c = Command::new("script");
    c.args(["-qec", &line, "/dev/null"])
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null());
    if no_color {
        c.env("NO_COLOR", "1");
    }
    let out = c.output().expect("util-linux `script` runs");
    assert!(out.status.success(), "{line}: {}", show(&out));
    out.stdout
}

#[test]
fn colour_and_the_progress_bar_only_on_a_terminal_and_never_under_no_color_or_quiet() {
    let c = crawled();
    let tty = on_a_terminal(&c.db, &["-vv", "audit", "verify"], false);
    assert!(
        tty.contains(&0x1b),
        "a terminal gets coloured logs: {}",
        text(&tty)
    );
    let no_color = on_a_terminal(&c.db, &["-vv", "audit", "verify"], true);
    assert!(text(&no_color).contains("DEBUG"), "{}", text(&no_color));
    assert!(
        !no_color.contains(&0x1b),
        "NO_COLOR: no escapes: {}",
        text(&no_color)
    );
    // The crawl's progress bar is drawn on a terminal, and not under -q.
    let bar = on_a_terminal(&c.db, &["crawl", "--delay-ms", "0", &c.page], false);
    assert!(text(&bar).contains(" urls "), "{}", text(&bar));
    let quiet = on_a_terminal(&c.db, &["-q", "crawl", "--delay-ms", "0", &c.page], false);
    let q = text(&quiet);
    assert!(
        !q.contains(" urls ") && !quiet.contains(&0x1b),
        "-q draws no bar: {q}"
    );
    assert!(q.contains("fetched:"), "results still printed: {q}");
}
