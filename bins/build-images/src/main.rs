//! `statuspage-build`: see the library crate for everything it does.

use statuspage_build_images::cli::{Args, main_with};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    main_with(statuspage_common::args::parse::<Args>("statuspage-build")).await.into()
}
