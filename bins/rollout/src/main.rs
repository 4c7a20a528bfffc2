//! `statuspage-rollout`: see the library crate for everything it does.

use clap::Parser;
use statuspage_rollout::cli::{Args, main_with};

fn main() -> std::process::ExitCode {
    main_with(Args::parse()).into()
}
