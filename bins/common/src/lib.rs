//! Shared building blocks of the statuspage binaries.
//!
//! Each binary is a thin shell around its own library crate; this crate holds what they all need
//! exactly once: the [`release`] document that flows from build to push to patch to rollout,
//! [`image_ref`] parsing, command-line [`args`] with the contract's error shape, [`commit`] discovery, GitHub Actions I/O in [`actions`], and the
//! [`exit`] code contract.

pub mod actions;
pub mod args;
pub mod commit;
pub mod docker_host;
#[cfg(feature = "engine")]
pub mod engine;
pub mod exit;
pub mod image_ref;
pub mod release;
pub mod url;

pub use exit::ExitCode;
