//! `statuspage-push`: log in to ECR and print the registry it serves. Pushing the release's
//! images lands with the push issue; today this proves the credential chain end to end.

use statuspage_common::ExitCode;
use statuspage_push_images::Ecr;

#[tokio::main]
async fn main() -> std::process::ExitCode {
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
