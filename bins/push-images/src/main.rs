//! `statuspage-push`: see the library crate for everything it does.

use clap::Parser;
use statuspage_push_images::cli::{Args, main_with};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    main_with(Args::parse()).await.into()
}
