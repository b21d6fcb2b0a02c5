//! One module per subcommand: turn arguments into library calls and print the result.

pub mod build;
pub mod cache;
pub mod images;
pub mod login;
pub mod parse;
pub mod progress;
pub mod push;

use builder_core::registry::ClientOptions;

use crate::cli::RegistryArgs;

/// Registry settings from the command line (credentials come from docker's config.json and
/// podman's auth.json, as docker and podman find them).
pub fn client_options(args: &RegistryArgs) -> ClientOptions {
    ClientOptions {
        insecure_registries: args.insecure_registries.clone(),
        registry_mirrors: args.registry_mirrors.clone(),
        ..ClientOptions::default()
    }
}

/// A duration as `90s`, `30m`, `12h`, `7d` or `2w` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| "expected a number and a unit such as 30m, 12h or 7d".to_string())?;
    let secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        other => return Err(format!("unknown unit `{other}`; use s, m, h, d or w")),
    };
    Ok(std::time::Duration::from_secs(n.saturating_mul(secs)))
}
