//! Helpers for tests against the local stack.
