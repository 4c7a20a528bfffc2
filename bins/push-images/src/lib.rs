//! Push the built images to Amazon ECR: who am I (STS), make sure each repository exists with
//! immutable tags, scan on push and encryption, log in with an ECR authorization token, push
//! through the Docker Engine, and record each image's digest in the release document.
//!
//! Credentials come only from the AWS SDK's default chain (web identity / OIDC on runners and
//! pods, profiles on a laptop); endpoints only from the SDK's standard `AWS_ENDPOINT_URL*`.

pub mod cli;
pub mod ecr;
pub mod error;
pub mod push;

pub use ecr::{Ecr, EcrLogin};
pub use error::PushError;
