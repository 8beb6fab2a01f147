//! Model forward passes (to be written).
