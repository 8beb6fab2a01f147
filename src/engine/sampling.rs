//! Sampling (to be written).
