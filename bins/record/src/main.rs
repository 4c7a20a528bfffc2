//! `statuspage-record`: see the library crate for everything it does.

use statuspage_record::cli::{Args, main_with};

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(main_with(statuspage_common::args::parse::<Args>("statuspage-record")))
}
