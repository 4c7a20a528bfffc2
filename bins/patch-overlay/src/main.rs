//! `statuspage-patch`: see the library crate for everything it does.

use clap::Parser;
use statuspage_patch_overlay::cli::{Args, main_with};

fn main() -> std::process::ExitCode {
    main_with(Args::parse()).into()
}
