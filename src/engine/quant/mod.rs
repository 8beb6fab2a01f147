//! ggml tensor types and block layouts (to be written).
