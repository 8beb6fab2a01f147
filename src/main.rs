//! The `byline` binary: everything, including the exit status, is decided in
//! `byline::cli` (see `byline::cli::exit` for the table).

use std::process::ExitCode;

fn main() -> ExitCode {
    byline::cli::main()
}
