//! `statuspage-patch`: see the library crate for everything it does.

use statuspage_patch_overlay::cli::{Args, main_with};

fn main() -> std::process::ExitCode {
    main_with(statuspage_common::args::parse::<Args>("statuspage-patch")).into()
}
