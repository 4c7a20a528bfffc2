//! `statuspage-record`: see the library crate for everything it does.

use clap::Parser;
use statuspage_record::cli::{Args, main_with};

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(main_with(Args::parse()))
}
