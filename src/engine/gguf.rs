//! GGUF container reader (to be written).
