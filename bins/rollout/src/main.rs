//! `statuspage-rollout`: see the library crate for everything it does.

use statuspage_rollout::cli::{Args, main_with};

fn main() -> std::process::ExitCode {
    main_with(statuspage_common::args::parse::<Args>("statuspage-rollout")).into()
}
