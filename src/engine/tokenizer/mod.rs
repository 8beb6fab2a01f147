//! Tokenizers from GGUF metadata (to be written).
