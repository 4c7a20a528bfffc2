//! `statuspage-push`: see the library crate for everything it does.

use statuspage_push_images::cli::{Args, main_with};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    main_with(statuspage_common::args::parse::<Args>("statuspage-push")).await.into()
}
