//! One module per subcommand: turn arguments into library calls and print the result.

pub mod build;
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
