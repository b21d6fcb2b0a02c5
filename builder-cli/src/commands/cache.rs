//! `kiln cache ls | prune | stats`: the layer cache a build keeps under `--cache-dir`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::SystemTime;

use builder_core::build::default_cache_dir;
use builder_core::cache::{LocalCache, PruneOptions};
use builder_core::layer::UnpackedLayers;

use super::progress::bytes;
use crate::cli::{CacheCommand, CacheDirArgs};
use crate::render;
use crate::{Exit, Failure};

/// Runs one `kiln cache` subcommand.
pub fn run(command: CacheCommand) -> Result<(), Failure> {
    match command {
        CacheCommand::Ls(args) => ls(&args),
        CacheCommand::Stats(args) => stats(&args),
        CacheCommand::Prune(args) => {
            let options = PruneOptions {
                keep_storage: args
                    .keep_storage
                    .as_deref()
                    .map(|s| {
                        parse_size(s).map_err(|e| {
                            Failure::usage(format!("invalid --keep-storage `{s}`: {e}"))
                        })
                    })
                    .transpose()?,
                keep_duration: args
                    .keep_duration
                    .as_deref()
                    .map(|s| {
                        super::parse_duration(s).map_err(|e| {
                            Failure::usage(format!("invalid --keep-duration `{s}`: {e}"))
                        })
                    })
                    .transpose()?,
            };
            prune(&args.dir, &options)
        }
    }
}

/// What `--cache-dir` names.
fn cache_dir(args: &CacheDirArgs) -> PathBuf {
    args.cache_dir.clone().unwrap_or_else(default_cache_dir)
}

/// The layer cache inside it (as `kiln build` lays it out).
fn cache_root(args: &CacheDirArgs) -> PathBuf {
    cache_dir(args).join("build-cache")
}

fn failed(e: &(dyn std::error::Error + 'static)) -> Failure {
    Failure {
        message: render::error(e, None),
        exit: Exit::Failure,
    }
}

fn ls(args: &CacheDirArgs) -> Result<(), Failure> {
    let cache = LocalCache::open(cache_root(args)).map_err(|e| failed(&e))?;
    let entries = cache.entries().map_err(|e| failed(&e))?;
    let now = SystemTime::now();
    let mut out = format!(
        "{:<14} {:>10} {:>10} {:>10}  {}\n",
        "KEY", "SIZE", "CREATED", "LAST USED", "INSTRUCTION"
    );
    for e in entries {
        let created =
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(e.record.created.max(0) as u64);
        out.push_str(&format!(
            "{:<14} {:>10} {:>10} {:>10}  {}\n",
            e.record.key.short(),
            e.record
                .layer
                .as_ref()
                .map_or_else(|| "-".to_string(), |l| bytes(l.size)),
            ago(now, created),
            ago(now, e.last_used),
            e.record.created_by
        ));
    }
    crate::stdout(&out)
}

fn stats(args: &CacheDirArgs) -> Result<(), Failure> {
    let cache = LocalCache::open(cache_root(args)).map_err(|e| failed(&e))?;
    let s = cache.stats().map_err(|e| failed(&e))?;
    crate::stdout(&format!(
        "cache:    {}\nentries:  {}\nlayers:   {} ({})\nbuilds:   {}\nsteps:    {} cached, {} built ({:.1}% hit rate)\nreused:   {}\nbuilt:    {}\n",
        cache.root().display(),
        s.entries,
        s.blobs,
        bytes(s.bytes),
        s.builds,
        s.hits,
        s.misses,
        s.hit_rate() * 100.0,
        bytes(s.bytes_reused),
        bytes(s.bytes_built),
    ))
}

fn prune(args: &CacheDirArgs, options: &PruneOptions) -> Result<(), Failure> {
    let cache = LocalCache::open_exclusive(cache_root(args)).map_err(|e| failed(&e))?;
    let report = cache.prune(options).map_err(|e| failed(&e))?;
    // Unpacked copies of layers go with them; a full prune also forgets unpacked base layers
    // (the next build that runs a step unpacks them again). The exclusive lock keeps builds out.
    let full = options.keep_duration.is_none() && options.keep_storage.is_none();
    let unpacked = UnpackedLayers::new(cache_dir(args).join("layers"));
    let unused: BTreeSet<&str> = report.unused_layers.iter().map(|d| d.hex()).collect();
    let removed = unpacked
        .remove(|hex| full || unused.contains(hex))
        .map_err(|e| failed(&e))?;
    crate::stdout(&format!(
        "removed {} entries, {} layers and {} unpacked layers, {} freed\n",
        report.entries,
        report.blobs,
        removed,
        bytes(report.bytes)
    ))
}

/// `3m ago`, `2h ago`, `5d ago`.
fn ago(now: SystemTime, then: SystemTime) -> String {
    let secs = now.duration_since(then).unwrap_or_default().as_secs();
    match secs {
        s if s < 60 => format!("{s}s ago"),
        s if s < 3600 => format!("{}m ago", s / 60),
        s if s < 172_800 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    }
}

/// `10GB`, `512m`, `1.5GiB`, `1000` (bytes); units are powers of 1024, as docker's
/// `--keep-storage`.
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| "expected a size such as 500MB or 10GB".to_string())?;
    let power = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 1,
        "m" | "mb" | "mib" => 2,
        "g" | "gb" | "gib" => 3,
        "t" | "tb" | "tib" => 4,
        other => return Err(format!("unknown unit `{other}`; use B, KB, MB, GB or TB")),
    };
    Ok((n * 1024f64.powi(power)) as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_in_powers_of_1024() {
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(parse_size("10GB").unwrap(), 10 * 1024 * 1024 * 1024);
        assert_eq!(parse_size("1.5k").unwrap(), 1536);
        assert!(parse_size("5 parsecs").is_err());
    }
}
