//! `kiln login` and `kiln logout`, writing docker's config.json as `docker login` does, so CI
//! scripts keep their `echo "$TOKEN" | … login -u … --password-stdin` line.

use std::io::Read;

use builder_core::registry::BlockingClient;

use super::client_options;
use crate::cli::{LoginArgs, LogoutArgs, RegistryArgs};
use crate::render;
use crate::{Exit, Failure};

/// Docker Hub's name for login, as `docker login` uses when no registry is given.
const DOCKER_HUB: &str = "docker.io";

fn failed(e: &(dyn std::error::Error + 'static)) -> Failure {
    Failure {
        message: render::error(e, None),
        exit: Exit::Failure,
    }
}

/// Runs `kiln login`.
pub fn login(args: LoginArgs) -> Result<(), Failure> {
    let password = match (&args.password, args.password_stdin) {
        (Some(p), false) => p.clone(),
        (None, true) => {
            let mut p = String::new();
            std::io::stdin().read_to_string(&mut p).map_err(|e| {
                Failure::usage(format!("failed to read the password from stdin: {e}"))
            })?;
            p.trim_end_matches(['\n', '\r']).to_string()
        }
        _ => {
            return Err(Failure::usage(
                "give the password with --password-stdin (or --password)",
            ));
        }
    };
    if password.is_empty() {
        return Err(Failure::usage("the password is empty"));
    }
    let registry = args.registry.as_deref().unwrap_or(DOCKER_HUB);
    let client =
        BlockingClient::new(client_options(&args.registry_args)).map_err(|e| failed(&e))?;
    let path = client
        .login(registry, &args.username, &password)
        .map_err(|e| failed(&e))?;
    eprintln!("credentials for {registry} saved in {}", path.display());
    eprintln!("Login Succeeded");
    Ok(())
}

/// Runs `kiln logout`.
pub fn logout(args: LogoutArgs) -> Result<(), Failure> {
    let registry = args.registry.as_deref().unwrap_or(DOCKER_HUB);
    let client =
        BlockingClient::new(client_options(&RegistryArgs::default())).map_err(|e| failed(&e))?;
    let removed = client.logout(registry).map_err(|e| failed(&e))?;
    if removed {
        eprintln!("Removing login credentials for {registry}");
    } else {
        eprintln!("Not logged in to {registry}");
    }
    Ok(())
}
