//! Answer stage: builds prompts from allowed passages, generates and checks citations.
//!
//! Nothing here yet; the "Attributed answers" issue builds it.
