//! Architecture tables (to be written).
