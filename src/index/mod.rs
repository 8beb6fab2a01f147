//! Index stage: splits stored page text into passages and retrieves them.
//!
//! Nothing here yet; the "Attributed answers" issue builds it.
