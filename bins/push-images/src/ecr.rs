//! Amazon ECR and STS through the AWS SDK for Rust.

use aws_sdk_ecr::types::{
    EncryptionConfiguration, EncryptionType, ImageScanningConfiguration, ImageTagMutability,
};
use base64::Engine as _;
use statuspage_common::actions;

use crate::error::{PushError, aws_error, ecr_default, sts_default};

/// STS's name in `AWS_ENDPOINT_URL_STS` and its default endpoint.
const STS: (&str, fn(&str) -> String) = ("STS", sts_default);
/// ECR's name in `AWS_ENDPOINT_URL_ECR` and its default endpoint.
const ECR: (&str, fn(&str) -> String) = ("ECR", ecr_default);

/// A registry login: the host to push to and the credentials it accepts.
#[derive(Clone, PartialEq, Eq)]
pub struct EcrLogin {
    /// Registry host, e.g. `123456789012.dkr.ecr.us-east-1.amazonaws.com`.
    pub registry: String,
    /// Always `AWS` for ECR.
    pub username: String,
    /// The token's password part. Masked in Actions logs as soon as it is read.
    pub password: String,
}

impl std::fmt::Debug for EcrLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcrLogin")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The caller's identity as STS reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// 12-digit account ID.
    pub account: String,
    /// The caller's ARN.
    pub arn: String,
}

/// ECR and STS clients sharing one SDK configuration.
#[derive(Debug, Clone)]
pub struct Ecr {
    ecr: aws_sdk_ecr::Client,
    sts: aws_sdk_sts::Client,
}

impl Ecr {
    /// Load the default credential chain and region, as every AWS tool does.
    ///
    /// Errors: [`PushError::NoRegion`] when no source gives a region, [`PushError::BadInput`] for
    /// one that is not a region code (both exit 2, nothing called).
    pub async fn from_env() -> Result<Self, PushError> {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        // An empty AWS_REGION reads as a region "" (the SDK then fails every call, after retries).
        let region = config.region().map(|r| r.as_ref().to_string()).unwrap_or_default();
        if region.trim().is_empty() {
            return Err(PushError::NoRegion);
        }
        if !region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return Err(PushError::BadInput {
                flag: "AWS_REGION",
                value: region,
                fix: "give a region code such as us-east-1 (from AWS_REGION, AWS_DEFAULT_REGION or the profile). Nothing was pushed".into(),
            });
        }
        Ok(Self { ecr: aws_sdk_ecr::Client::new(&config), sts: aws_sdk_sts::Client::new(&config) })
    }

    /// Check what the default chain will read before it is asked: a web-identity token file
    /// named by `AWS_WEB_IDENTITY_TOKEN_FILE` (with `AWS_ROLE_ARN`) must exist, or the SDK reports
    /// only "No such file or directory" without the path.
    ///
    /// The SDK's endpoint variables must be absolute http(s) URLs: the SDK would otherwise fail
    /// every call after its retries with a dump that does not name the variable.
    pub fn check_environment() -> Result<(), PushError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        for name in ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ECR", "AWS_ENDPOINT_URL_STS"] {
            if let Some(value) = var(name).filter(|v| !statuspage_common::url::is_absolute_http(v)) {
                return Err(PushError::BadInput {
                    flag: name,
                    value,
                    fix: "give an absolute http(s) URL (e.g. https://api.ecr.us-east-1.amazonaws.com), or unset it for the SDK's default endpoint. Nothing was pushed".into(),
                });
            }
        }
        if let (Some(file), Some(_)) = (var("AWS_WEB_IDENTITY_TOKEN_FILE"), var("AWS_ROLE_ARN"))
            && !std::path::Path::new(&file).is_file()
        {
            return Err(PushError::BadInput {
                flag: "AWS_WEB_IDENTITY_TOKEN_FILE",
                value: file,
                fix: "no such file: in GitHub Actions give the job `permissions: id-token: write` and run aws-actions/configure-aws-credentials first; on EKS check the service account's IRSA annotation; or unset it (and AWS_ROLE_ARN) to use another credential source. Nothing was pushed".into(),
            });
        }
        Ok(())
    }

    /// `sts:GetCallerIdentity`.
    pub async fn identity(&self) -> Result<Identity, PushError> {
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| aws_error("sts:GetCallerIdentity", STS, &e))?;
        Ok(Identity {
            account: out.account().unwrap_or_default().to_string(),
            arn: out.arn().unwrap_or_default().to_string(),
        })
    }

    /// Create `name` with immutable tags, scan on push and KMS encryption, unless it exists.
    /// Returns the repository URI.
    pub async fn ensure_repository(&self, name: &str) -> Result<String, PushError> {
        let existing = self.ecr.describe_repositories().repository_names(name).send().await;
        match existing {
            Ok(out) => {
                if let Some(uri) = out.repositories().first().and_then(|r| r.repository_uri()) {
                    return Ok(uri.to_string());
                }
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_repository_not_found_exception()) => {}
            Err(e) => {
                return Err(aws_error("ecr:DescribeRepositories", ECR, &e));
            }
        }
        let out = self
            .ecr
            .create_repository()
            .repository_name(name)
            .image_tag_mutability(ImageTagMutability::Immutable)
            .image_scanning_configuration(ImageScanningConfiguration::builder().scan_on_push(true).build())
            .encryption_configuration(
                EncryptionConfiguration::builder().encryption_type(EncryptionType::Kms).build().map_err(
                    |e| PushError::Aws { operation: "ecr:CreateRepository", message: e.to_string() },
                )?,
            )
            .send()
            .await
            .map_err(|e| aws_error("ecr:CreateRepository", ECR, &e))?;
        out.repository().and_then(|r| r.repository_uri()).map(str::to_string).ok_or(PushError::BadAnswer {
            operation: "ecr:CreateRepository",
            what: "no repository URI".into(),
            fix: "retry; if it persists, check the ECR service health",
        })
    }

    /// `ecr:GetAuthorizationToken`, decoded into a registry login. The password is masked in
    /// Actions logs before this returns.
    pub async fn login(&self) -> Result<EcrLogin, PushError> {
        const OP: &str = "ecr:GetAuthorizationToken";
        let out = self.ecr.get_authorization_token().send().await.map_err(|e| aws_error(OP, ECR, &e))?;
        let data = out.authorization_data().first().ok_or(PushError::BadAnswer {
            operation: OP,
            what: "no authorization data".into(),
            fix: "check that the role may call ecr:GetAuthorizationToken",
        })?;
        let token = data.authorization_token().unwrap_or_default();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(PushError::BadAnswer {
                operation: OP,
                what: "a token that is not base64 text".into(),
                fix: "retry",
            })?;
        let (username, password) = decoded.split_once(':').ok_or(PushError::BadAnswer {
            operation: OP,
            what: "a token without a user:password pair".into(),
            fix: "retry",
        })?;
        actions::add_mask(password);
        let endpoint = data.proxy_endpoint().unwrap_or_default();
        let registry = endpoint.trim_start_matches("https://").trim_end_matches('/').to_string();
        if registry.is_empty() {
            return Err(PushError::BadAnswer {
                operation: OP,
                what: "no proxy endpoint".into(),
                fix: "retry",
            });
        }
        Ok(EcrLogin { registry, username: username.to_string(), password: password.to_string() })
    }
}
