//! `statuspage-push`: today, log in to ECR through the default credential chain and print the
//! registry host. Pushing a release's images lands with the push issue.

use clap::Parser;
use statuspage_common::ExitCode;
use statuspage_push_images::Ecr;

/// Log in to Amazon ECR with the default AWS credential chain and print the registry host.
///
/// Exit codes: 0 ok, 3 AWS failed.
#[derive(Debug, Parser)]
#[command(name = "statuspage-push", version)]
struct Args {
    /// Say which AWS calls would be made; make none.
    #[arg(long, env = "STATUSPAGE_DRY_RUN")]
    dry_run: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if args.dry_run {
        eprintln!("dry run: would call sts:GetCallerIdentity and ecr:GetAuthorizationToken");
        return ExitCode::Success.into();
    }
    let ecr = Ecr::from_env().await;
    let result = async {
        let identity = ecr.identity().await?;
        eprintln!("AWS identity: {} (account {})", identity.arn, identity.account);
        let login = ecr.login().await?;
        println!("{}", login.registry);
        Ok::<_, statuspage_push_images::PushError>(())
    }
    .await;
    match result {
        Ok(()) => ExitCode::Success.into(),
        Err(err) => statuspage_common::exit::report("statuspage-push", &err).into(),
    }
}
