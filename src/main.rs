//! The `byline` binary: parse the command line, run it, map failure to an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    match byline::cli::main() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
