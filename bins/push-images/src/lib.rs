//! Push the built images to Amazon ECR: who am I (STS), make sure each repository exists with
//! immutable tags, scan on push and encryption, and log in with an ECR authorization token.
//!
//! Credentials come only from the AWS SDK's default chain (web identity / OIDC on runners and
//! pods, profiles on a laptop); endpoints only from the SDK's standard `AWS_ENDPOINT_URL*`.

pub mod ecr;
pub mod error;

pub use ecr::{Ecr, EcrLogin};
pub use error::PushError;
