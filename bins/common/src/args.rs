//! Command-line parsing with the contract's error shape.
//!
//! clap prints a usage error over several lines with no binary name, and says `--flag` even when
//! the bad value came from the flag's environment variable (how the composite actions pass every
//! input). [`parse`] turns it into the one line every other error is: `<binary>: error: ...`,
//! naming the environment variable when that is where the value was read, an `::error::`
//! annotation in GitHub Actions, and exit code 2. `--help` and `--version` behave as clap's.

use std::collections::BTreeMap;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser};

use crate::exit::ExitCode;

/// Parse the process's arguments (and the `env` of each flag) into `T`; on a usage error print
/// one line (see the module documentation) and exit with [`ExitCode::Usage`].
pub fn parse<T: Parser>(binary: &str) -> T {
    match T::try_parse() {
        Ok(args) => args,
        Err(err)
            if !err.use_stderr() || err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            err.exit()
        }
        Err(err) => {
            let args: Vec<String> = std::env::args().collect();
            let message = usage_error::<T>(&err, &args, |name| std::env::var_os(name).is_some());
            if crate::actions::in_github_actions() {
                crate::actions::Annotation::error(message.clone()).emit();
            }
            eprintln!("{binary}: error: {message}; see `{binary} --help`");
            std::process::exit(ExitCode::Usage as i32)
        }
    }
}

/// The one-line text of a clap usage error for the command line `args`: clap's first line
/// without its `error: ` prefix, plus where a bad value came from when it was an environment
/// variable rather than the command line (`is_set` says which variables are set).
pub fn usage_error<T: CommandFactory>(
    err: &clap::Error,
    args: &[String],
    is_set: impl Fn(&str) -> bool,
) -> String {
    let rendered = err.render().to_string();
    // The message and its hints (`[possible values: ...]`, `tip: a similar argument exists`),
    // without the usage and the pointer to `--help` (said once, at the end of the line).
    let parts: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let mut message = parts.join("; ").trim_start_matches("error: ").to_string();
    if message.is_empty() {
        message = "invalid usage".into();
    }
    if let Some(variable) = from_environment::<T>(err, args, is_set) {
        message.push_str(&format!(" (read from the environment variable {variable})"));
    }
    message
}

/// The environment variable the offending flag's value was read from: the flag has one, it is
/// set, and the command line does not give the flag.
fn from_environment<T: CommandFactory>(
    err: &clap::Error,
    args: &[String],
    is_set: impl Fn(&str) -> bool,
) -> Option<String> {
    let Some(ContextValue::String(shown)) = err.get(ContextKind::InvalidArg) else { return None };
    let long = shown.split([' ', '=']).next()?.strip_prefix("--")?;
    let command = T::command();
    let variable = env_of(&command, long)?;
    let given =
        args.iter().skip(1).any(|a| a == &format!("--{long}") || a.starts_with(&format!("--{long}=")));
    (!given && is_set(&variable)).then_some(variable)
}

/// The items of a repeatable, comma-separated flag (`--extra-tag a,b`, or `STATUSPAGE_X="a, b"`
/// as a workflow writes it): each trimmed, empty ones dropped.
pub fn items(values: &[String]) -> impl Iterator<Item = &str> {
    values.iter().map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// `KEY=VALUE` items (see [`items`]) as a map, the key trimmed. `Err` carries the first item
/// that is not `KEY=VALUE` with a non-empty key (and, unless `empty_values`, a non-empty value).
pub fn pairs(values: &[String], empty_values: bool) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for item in items(values) {
        match item.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() && (empty_values || !value.is_empty()) => {
                out.insert(key.trim().to_string(), value.to_string());
            }
            _ => return Err(item.to_string()),
        }
    }
    Ok(out)
}

/// The environment variable of the flag `--long` in `command` or any of its subcommands.
fn env_of(command: &clap::Command, long: &str) -> Option<String> {
    let own = command.get_arguments().find(|a| a.get_long() == Some(long)).and_then(|a| a.get_env());
    own.map(|v| v.to_string_lossy().into_owned())
        .or_else(|| command.get_subcommands().find_map(|sub| env_of(sub, long)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Parser)]
    #[command(name = "t")]
    struct Args {
        #[arg(long, env = "STATUSPAGE_ARGS_TEST_COUNT")]
        count: Option<u32>,
        #[arg(long)]
        name: Option<String>,
    }

    fn error_for(args: &[&str]) -> String {
        let argv: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let err = Args::try_parse_from(&argv).unwrap_err();
        usage_error::<Args>(&err, &argv, |_| true)
    }

    #[test]
    fn a_usage_error_is_one_line_naming_the_flag_and_value() {
        let message = error_for(&["t", "--count", "many"]);
        assert!(!message.contains('\n') && !message.starts_with("error"), "{message}");
        assert!(message.contains("'many'") && message.contains("--count"), "{message}");
        assert!(!message.contains("environment"), "{message}");
        let unknown = error_for(&["t", "--nme", "x"]);
        assert!(unknown.contains("'--nme'") && !unknown.contains('\n'), "{unknown}");
        assert!(unknown.contains("tip: a similar argument exists: '--name'"), "{unknown}");
        assert!(!unknown.contains("Usage") && !unknown.contains("For more information"), "{unknown}");
    }

    #[test]
    fn a_bad_value_from_the_environment_names_the_variable() {
        // clap reports `--count <COUNT>` for a bad STATUSPAGE_ARGS_TEST_COUNT too: with the flag
        // not on the command line and the variable set, the variable is named.
        let err = Args::try_parse_from(["t", "--count", "lots"]).unwrap_err();
        let from_env = usage_error::<Args>(&err, &["t".into()], |v| v == "STATUSPAGE_ARGS_TEST_COUNT");
        assert!(from_env.contains("'lots'"), "{from_env}");
        assert!(
            from_env.ends_with("(read from the environment variable STATUSPAGE_ARGS_TEST_COUNT)"),
            "{from_env}"
        );
        let unset = usage_error::<Args>(&err, &["t".into()], |_| false);
        assert!(!unset.contains("environment"), "{unset}");
    }

    #[test]
    fn list_items_are_trimmed_and_pairs_split_once() {
        let given = ["web=statuspage-web, worker=w".to_string()];
        let split: Vec<String> = given[0].split(',').map(String::from).collect();
        assert_eq!(items(&split).collect::<Vec<_>>(), ["web=statuspage-web", "worker=w"]);
        let map = pairs(&split, false).unwrap();
        assert_eq!(map["worker"], "w");
        assert_eq!(pairs(&["A=x=y".into()], false).unwrap()["A"], "x=y");
        assert_eq!(pairs(&["A=".into()], true).unwrap()["A"], "");
        assert_eq!(pairs(&["A=".into()], false).unwrap_err(), "A=");
        assert_eq!(pairs(&[" =x".into()], true).unwrap_err(), "=x");
        assert_eq!(pairs(&["web".into()], true).unwrap_err(), "web");
    }
}
