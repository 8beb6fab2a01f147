//! Chat templates (to be written).
