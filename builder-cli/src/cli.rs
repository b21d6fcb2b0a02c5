//! Command-line definitions. The doc comments are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Build OCI images from Dockerfiles, without a daemon.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// kiln's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build an image from a Dockerfile and a context directory.
    Build(Box<BuildArgs>),
    /// Print a Dockerfile as kiln parses it.
    Parse(ParseArgs),
    /// List the images in the local store.
    Images(ImagesArgs),
    /// Push an image from the local store to a registry.
    Push(PushArgs),
    /// Save credentials for a registry in docker's config.json.
    Login(LoginArgs),
    /// Remove saved credentials for a registry.
    Logout(LogoutArgs),
    /// Look at or clean the layer cache.
    #[command(subcommand)]
    Cache(CacheCommand),
}

/// `kiln cache` subcommands.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// List cache entries, most recently used first.
    Ls(CacheDirArgs),
    /// Remove cache entries and the layers only they use (all of them without options).
    Prune(PruneArgs),
    /// Show the cache's size and the hit rate of the builds that used it.
    Stats(CacheDirArgs),
}

/// Where the cache is.
#[derive(Debug, Args)]
pub struct CacheDirArgs {
    /// The directory given to `kiln build --cache-dir`; `~/.cache/kiln` by default.
    #[arg(long = "cache-dir", env = "KILN_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// Options of `kiln cache prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Where the cache is.
    #[command(flatten)]
    pub dir: CacheDirArgs,
    /// Keep the most recently used entries whose layers fit in this much space (`10GB`, `500MB`;
    /// units are powers of 1024, as docker's).
    #[arg(long = "keep-storage", value_name = "SIZE")]
    pub keep_storage: Option<String>,
    /// Keep entries used within this long (`24h`, `7d`).
    #[arg(long = "keep-duration", value_name = "DURATION")]
    pub keep_duration: Option<String>,
}

/// How to reach registries; shared by the commands that talk to them.
#[derive(Debug, Args, Clone, Default)]
pub struct RegistryArgs {
    /// Allow plain http (or unverified TLS) for this registry (`host[:port]`); repeatable.
    /// Loopback registries may use plain http without it.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
    /// Try this mirror before Docker Hub for `docker.io` images; repeatable.
    #[arg(long = "registry-mirror", value_name = "HOST[:PORT]")]
    pub registry_mirrors: Vec<String>,
}

/// Options of `kiln push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The image in the local store (`name:tag`).
    pub source: String,
    /// Where to push it (`registry/repository:tag`); defaults to SOURCE itself.
    pub destination: Option<String>,
    /// The local image store.
    #[arg(long, env = "KILN_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Registry settings.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Options of `kiln login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry (`registry.gitlab.com`, `localhost:5000`); Docker Hub when omitted.
    pub registry: Option<String>,
    /// The user name.
    #[arg(short, long)]
    pub username: String,
    /// Read the password (or token) from standard input.
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    /// The password; prefer `--password-stdin`, which keeps it out of the process list.
    #[arg(short, long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Registry settings.
    #[command(flatten)]
    pub registry_args: RegistryArgs,
}

/// Options of `kiln logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry; Docker Hub when omitted.
    pub registry: Option<String>,
}

/// Options of `kiln build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The build context directory.
    #[arg(default_value = ".")]
    pub context: PathBuf,
    /// The Dockerfile (default: CONTEXT/Dockerfile).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Name the image (`name:tag`); repeatable.
    #[arg(short = 't', long = "tag", value_name = "REF")]
    pub tags: Vec<String>,
    /// Set a build argument (`NAME=value`, or `NAME` to take it from the environment); repeatable.
    #[arg(long = "build-arg", value_name = "NAME=VALUE")]
    pub build_args: Vec<String>,
    /// Build this stage instead of the last one.
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// Add a label to the image (`key=value`); repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Where to write the image: `type=oci,dest=DIR`, `type=oci,dest=FILE.tar` or
    /// `type=docker,dest=FILE`; repeatable. Without it the image goes to the local store.
    #[arg(short = 'o', long = "output", value_name = "SPEC")]
    pub outputs: Vec<String>,
    /// Write the image digest to this file.
    #[arg(long = "digest-file", value_name = "FILE")]
    pub digest_file: Option<PathBuf>,
    /// The platform to build for (`linux/amd64`); the host's by default.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    /// Clamp file times and set the creation time to this Unix time, for reproducible images.
    /// (An empty value, as some CI systems export, means unset.)
    #[arg(
        long = "source-date-epoch",
        env = "SOURCE_DATE_EPOCH",
        value_name = "SECONDS"
    )]
    pub source_date_epoch: Option<String>,
    /// The local image store.
    #[arg(long, env = "KILN_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Where kiln keeps what it reuses between builds (the layer cache and unpacked base
    /// layers); `~/.cache/kiln` by default.
    #[arg(long = "cache-dir", env = "KILN_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Build every step; the results still go to the cache.
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Build every step of this stage (by name); repeatable or comma-separated.
    #[arg(long = "no-cache-filter", value_name = "STAGE", value_delimiter = ',')]
    pub no_cache_filter: Vec<String>,
    /// Take cache hits from this registry cache (`registry/repo:tag`, or BuildKit's
    /// `type=registry,ref=REF`); repeatable.
    #[arg(long = "cache-from", value_name = "REF")]
    pub cache_from: Vec<String>,
    /// Write this build's cache entries to this registry cache, merged with what it holds;
    /// repeatable.
    #[arg(long = "cache-to", value_name = "REF")]
    pub cache_to: Vec<String>,
    /// Do not use cache entries older than this (`30m`, `12h`, `7d`).
    #[arg(long = "cache-ttl", value_name = "DURATION")]
    pub cache_ttl: Option<String>,
    /// Write a JSON report of the build (steps, cache hits and misses with reasons) to this file.
    #[arg(long = "report", value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Print why each step missed the cache.
    #[arg(long)]
    pub explain: bool,
    /// How RUN steps are isolated: `namespace` (mount, pid, ipc and uts namespaces over
    /// overlayfs) or `chroot` (for containers that forbid namespaces); detected by default.
    #[arg(long, value_name = "namespace|chroot")]
    pub isolation: Option<String>,
    /// Mount a host path into every RUN step (`HOST:CONTAINER[:ro]`); repeatable. It never
    /// reaches a layer.
    #[arg(short = 'v', long = "volume", value_name = "HOST:CONTAINER[:ro]")]
    pub volumes: Vec<String>,
    /// Push the image to every `-t` name after building it (instead of the local store).
    /// Each of the image's layers is sent to the first name's repository while later steps
    /// run; the push then writes the manifest.
    #[arg(long)]
    pub push: bool,
    /// With `--push`, send layers only once the build is done, as docker does: saves the
    /// bandwidth of layers the registry turns out to have already.
    #[arg(long, requires = "push")]
    pub push_after_build: bool,
    /// Registry settings.
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Print only the image digest.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Options of `kiln parse`.
#[derive(Debug, Args)]
pub struct ParseArgs {
    /// The Dockerfile.
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        default_value = "Dockerfile"
    )]
    pub file: PathBuf,
    /// Output format: JSON for tools, or BuildKit's AST dump.
    #[arg(long, value_enum, default_value_t = ParseFormat::Json)]
    pub format: ParseFormat,
}

/// Formats of `kiln parse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ParseFormat {
    /// Instructions with line numbers, flags, heredocs and exec/shell form.
    Json,
    /// BuildKit's `Node.Dump()` format.
    Buildkit,
}

/// Options of `kiln images`.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// The local image store.
    #[arg(long, env = "KILN_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn build_flags_parse_like_docker_build() {
        let cli = Cli::try_parse_from([
            "kiln",
            "build",
            "-f",
            "x/Dockerfile",
            "-t",
            "a:1",
            "-t",
            "b",
            "--build-arg",
            "A=1",
            "--target",
            "final",
            "--label",
            "k=v",
            "--output",
            "type=oci,dest=out",
            "ctx",
        ])
        .unwrap();
        let Command::Build(b) = cli.command else {
            panic!("expected build");
        };
        assert_eq!(b.context, PathBuf::from("ctx"));
        assert_eq!(b.tags, ["a:1", "b"]);
        assert_eq!(b.build_args, ["A=1"]);
        assert_eq!(b.target.as_deref(), Some("final"));
        assert_eq!(b.outputs, ["type=oci,dest=out"]);
    }
}
