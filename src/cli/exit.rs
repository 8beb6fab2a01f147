//! How a command ends, as the process exit status: one typed mapping, so
//! every subcommand means the same thing by the same number.
//!
//! | status | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the command ran and its answer is "no": `audit verify` found tampering, `audit why` was given a URL the corpus never met, `policy check` found the file invalid, `bench answers` missed a threshold |
//! | 2 | usage or input error: bad arguments (clap), no corpus at `--db`, an input file missing or invalid |
//! | 3 | runtime failure: I/O, database, network, model |
//! | 4 | nothing could be checked: every request of `audit recheck` or `crawl --refresh` failed |
//! | 141 | standard output was closed before everything was written (`| head`); nothing is printed, as for a program a shell saw die of SIGPIPE |

use std::fmt;
use std::io::Write;
use std::process::ExitCode;

use crate::store::StoreError;

/// The exit-status table, shown at the end of `byline --help`.
pub const AFTER_HELP: &str = "\
Exit status:
  0    success
  1    the command ran and found a problem: `audit verify` found tampering,
       `audit why` was given a URL not in the corpus, `policy check` found
       the file invalid, `bench answers` missed a threshold
  2    usage or input error: bad arguments, no corpus at --db (`byline crawl`
       creates one), an input file missing or invalid
  3    runtime failure: I/O, database, network, model
  4    nothing could be checked: every request of `audit recheck` or
       `crawl --refresh` failed (the report says why)
  141  standard output closed early (e.g. `| head`); ends quietly";

/// How a command ended. The only place exit numbers are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It did what was asked.
    Success,
    /// It ran, and the answer is a problem found (tampering, unknown URL,
    /// invalid policy, missed threshold).
    Problem,
    /// The command line or an input it names is wrong; the user can fix it.
    Input,
    /// Something failed while running (I/O, database, network, model).
    Runtime,
    /// A recheck or refresh ran but every request failed: nothing was
    /// checked, so nothing it reports can be relied on.
    NothingChecked,
    /// Standard output was closed by the reader.
    ClosedPipe,
}

impl Status {
    /// The process exit status.
    pub const fn code(self) -> u8 {
        match self {
            Status::Success => 0,
            Status::Problem => 1,
            Status::Input => 2,
            Status::Runtime => 3,
            Status::NothingChecked => 4,
            Status::ClosedPipe => 141,
        }
    }
}

impl From<Status> for ExitCode {
    fn from(s: Status) -> ExitCode {
        ExitCode::from(s.code())
    }
}

/// An error the user fixes by changing the command line or the files it
/// names (exit 2). Wrap with [`input`] or [`InputResult::input`]; context
/// added afterwards keeps the kind.
#[derive(Debug)]
pub struct InputError(anyhow::Error);

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `{:#}` keeps the wrapped error's own causes on one line.
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for InputError {}

/// Marks an error as an input error (exit 2).
pub fn input(err: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(InputError(err.into()))
}

/// `.input()` on results: the error, if any, is an input error (exit 2).
pub trait InputResult<T> {
    fn input(self) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> InputResult<T> for Result<T, E> {
    fn input(self) -> anyhow::Result<T> {
        self.map_err(input)
    }
}

/// The status a failed command exits with: an input error anywhere in the
/// chain (or a missing or non-SQLite corpus) is 2, anything else 3.
pub fn classify(err: &anyhow::Error) -> Status {
    for cause in err.chain() {
        if cause.is::<InputError>() {
            return Status::Input;
        }
        if let Some(s) = cause.downcast_ref::<StoreError>() {
            if s.is_not_a_corpus() {
                return Status::Input;
            }
        }
        // Crawl errors that are the user's (no contact URL, a bad seed),
        // also inside a recheck or refresh (`transparent`: not a cause of
        // its own in the chain).
        if cause
            .downcast_ref::<crate::crawl::CrawlError>()
            .is_some_and(|e| e.is_input())
            || cause
                .downcast_ref::<crate::crawl::recheck::RecheckError>()
                .is_some_and(|e| e.is_input())
        {
            return Status::Input;
        }
    }
    Status::Runtime
}

/// Writes one piece of result output to standard output. On a closed pipe
/// the process ends at once, silently, with [`Status::ClosedPipe`]; any
/// other write error is a runtime failure.
pub fn write_stdout(args: fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args) {
        drop(out);
        stdout_failed(e);
    }
}

/// Ends the process after a failed write to standard output (see
/// [`write_stdout`]).
pub fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(Status::ClosedPipe.code().into());
    }
    let _ = writeln!(std::io::stderr(), "error: writing to standard output: {e}");
    std::process::exit(Status::Runtime.code().into());
}

/// Backstop for `println!`/`eprintln!` left in code that does not use
/// [`write_stdout`]: the standard library panics when they hit a closed
/// pipe; this hook turns exactly that panic into a quiet
/// [`Status::ClosedPipe`] exit and leaves every other panic as it was.
pub fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info.to_string();
        if (msg.contains("failed printing to stdout") || msg.contains("failed printing to stderr"))
            && msg.contains("Broken pipe")
        {
            std::process::exit(Status::ClosedPipe.code().into());
        }
        default(info)
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn a_refresh_without_a_contact_is_an_input_error() {
        use crate::crawl::CrawlError;
        use crate::crawl::recheck::RecheckError;
        let no_contact = || CrawlError::NoContact {
            url: "https://example.org/".into(),
        };
        let direct = anyhow::Error::new(no_contact()).context("crawling");
        assert_eq!(classify(&direct), Status::Input);
        let in_recheck =
            anyhow::Error::new(RecheckError::Crawl(no_contact())).context("refreshing");
        assert_eq!(classify(&in_recheck), Status::Input);
        let task = anyhow::Error::new(RecheckError::Crawl(CrawlError::Task("boom".into())));
        assert_eq!(classify(&task), Status::Runtime);
    }

    #[test]
    fn input_errors_keep_their_kind_under_context() {
        let e: anyhow::Result<()> = Err(anyhow::anyhow!("bad url")).input();
        let e = e.context("reading seeds").unwrap_err();
        assert_eq!(classify(&e), Status::Input);
        assert!(format!("{e:#}").contains("bad url"), "{e:#}");
        let plain = anyhow::anyhow!("disk full").context("writing");
        assert_eq!(classify(&plain), Status::Runtime);
    }

    #[test]
    fn a_missing_corpus_is_an_input_error() {
        let e = anyhow::Error::new(StoreError::Missing {
            path: "x.db".into(),
        })
        .context("opening corpus");
        assert_eq!(classify(&e), Status::Input);
    }

    #[test]
    fn statuses_are_distinct() {
        let all = [
            Status::Success,
            Status::Problem,
            Status::Input,
            Status::Runtime,
            Status::NothingChecked,
            Status::ClosedPipe,
        ];
        let codes: std::collections::BTreeSet<u8> = all.iter().map(|s| s.code()).collect();
        assert_eq!(codes.len(), all.len());
    }
}
