//! `kiln`: build OCI images from Dockerfiles without a daemon.
//!
//! The binary only parses arguments, calls `builder-core`, prints progress and errors, and
//! chooses the exit code: 0 on success, 1 when a build (or parse) fails, 2 on bad usage.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cli;
mod commands;
mod interrupt;
mod render;

use std::process::ExitCode;

use clap::Parser;

/// Exit codes, as `docker build`: 1 for a failed build, 2 for bad usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything worked.
    Success = 0,
    /// The build (or parse) failed.
    Failure = 1,
    /// The command line or configuration is wrong.
    Usage = 2,
}

/// A failure the CLI reports: the rendered message and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// What to print on stderr.
    pub message: String,
    /// How to exit.
    pub exit: Exit,
}

impl Failure {
    /// Bad usage (exit 2).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            message: format!("error: {}\n", message.into()),
            exit: Exit::Usage,
        }
    }
}

/// Writes data to stdout. A reader that went away (`kiln parse | head`) is not an error: the
/// command has done its job.
pub fn stdout(text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure {
            message: format!("error: failed to write to stdout: {e}\n"),
            exit: Exit::Failure,
        }),
        _ => Ok(()),
    }
}

/// `KILN_LOG=debug` (any `tracing` filter: `builder_core::registry=debug`) prints the
/// library's diagnostics on stderr with the time since start: why a mount or an upload while
/// building fell back, retries, what a registry answered.
fn log_if_asked() {
    let Ok(filter) = std::env::var("KILN_LOG") else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|e| {
        eprintln!("warning: ignoring KILN_LOG={filter:?}: {e}");
        tracing_subscriber::EnvFilter::new("off")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_timer(tracing_subscriber::fmt::time::uptime())
        .init();
}

fn main() -> ExitCode {
    // RUN steps re-execute this binary as their sandbox helper; that must be decided before
    // any thread exists.
    builder_core::exec::sandbox::run_helper_if_requested();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { Exit::Usage as u8 } else { 0 });
        }
    };
    // Rootless with subordinate ids, building and pruning happen as root of a user namespace
    // (unpacked layers and RUN steps keep their owners); that too needs a single thread.
    if matches!(cli.command, cli::Command::Build(_) | cli::Command::Cache(_))
        && let Err(e) = builder_core::exec::sandbox::enter_user_namespace()
    {
        eprint!("{}", render::error(&e, None));
        return ExitCode::from(Exit::Failure as u8);
    }
    log_if_asked();
    let _temp = interrupt::PrivateTemp::install();
    let result = match cli.command {
        cli::Command::Build(args) => commands::build::run(args),
        cli::Command::Parse(args) => commands::parse::run(args),
        cli::Command::Images(args) => commands::images::run(args),
        cli::Command::Push(args) => commands::push::run(args),
        cli::Command::Login(args) => commands::login::login(args),
        cli::Command::Logout(args) => commands::login::logout(args),
        cli::Command::Cache(command) => commands::cache::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprint!("{}", f.message);
            ExitCode::from(f.exit as u8)
        }
    }
}
