use thiserror::Error;

/// What can go wrong loading a policy file.
#[derive(Debug, Error)]
pub enum PolicyError {
    /// The file is not UTF-8.
    #[error(
        "policy {origin} is not UTF-8 (invalid byte at offset {offset})\n\nsave the file as UTF-8"
    )]
    NotUtf8 { origin: String, offset: usize },
    /// The file does not parse or does not validate.
    #[error("policy {origin} line {line} column {column}: {message}\n\n{fix}")]
    Invalid {
        origin: String,
        line: usize,
        column: usize,
        message: String,
        fix: String,
    },
}
