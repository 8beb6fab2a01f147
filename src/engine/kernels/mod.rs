//! Kernels: scalar reference and SIMD paths (to be written).
