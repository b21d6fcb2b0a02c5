//! `kiln build`: options → `builder_core::build` → progress on stderr, digest on stdout.

use std::collections::BTreeMap;

use builder_core::build::{BuildError, BuildEvent, BuildOptions, build};
use builder_core::exec::sandbox::{BindMount, Isolation};
use builder_core::export::Output;
use builder_core::export::store::default_store_dir;
use builder_core::oci::{Platform, Reference};

use super::progress::Progress;
use crate::cli::BuildArgs;
use crate::render;
use crate::{Exit, Failure};

/// Turns the command line into typed build options; every mistake here is a usage error.
fn options(args: &BuildArgs) -> Result<BuildOptions, Failure> {
    let mut options = BuildOptions::new(&args.context);
    options.dockerfile = args.file.clone();
    options.store_dir = args.store.clone().unwrap_or_else(default_store_dir);
    options.source_date_epoch = match args.source_date_epoch.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => Some(s.parse::<i64>().map_err(|_| {
            Failure::usage(format!(
                "invalid SOURCE_DATE_EPOCH `{s}`: expected seconds since 1970-01-01"
            ))
        })?),
    };
    options.push = args.push;
    options.upload_while_building = !args.push_after_build;
    if let Some(dir) = &args.cache_dir {
        options.layers_dir = dir.join("layers");
        options.cache.dir = Some(dir.join("build-cache"));
    }
    options.cache.no_cache = args.no_cache;
    options.cache.no_cache_stages = args
        .no_cache_filter
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    for (flag, raw, list) in [
        ("--cache-from", &args.cache_from, &mut options.cache.from),
        ("--cache-to", &args.cache_to, &mut options.cache.to),
    ] {
        for r in raw {
            list.push(cache_ref(flag, r)?);
        }
    }
    if let Some(ttl) = &args.cache_ttl {
        options.cache.ttl = Some(
            super::parse_duration(ttl)
                .map_err(|e| Failure::usage(format!("invalid --cache-ttl `{ttl}`: {e}")))?,
        );
    }
    if let Some(i) = &args.isolation {
        options.isolation = Some(
            i.parse::<Isolation>()
                .map_err(|e| Failure::usage(e.to_string()))?,
        );
    }
    for v in &args.volumes {
        options.volumes.push(volume(v)?);
    }
    options.registry = super::client_options(&args.registry);
    for t in &args.tags {
        let tag = t
            .parse::<Reference>()
            .map_err(|e| Failure::usage(format!("invalid tag: {e}")))?;
        if tag.digest().is_some() {
            return Err(Failure::usage(format!(
                "refusing to create a tag with a digest reference: `{t}`"
            )));
        }
        options.tags.push(tag);
    }
    options.plan.build_args = build_args(&args.build_args)?;
    options.plan.target = args.target.clone();
    options.plan.labels = key_values("--label", &args.labels)?;
    if let Some(p) = &args.platform {
        options.plan.platform = p
            .parse::<Platform>()
            .map_err(|e| Failure::usage(e.to_string()))?;
    }
    for o in &args.outputs {
        options.outputs.push(
            o.parse::<Output>()
                .map_err(|e| Failure::usage(e.to_string()))?,
        );
    }
    Ok(options)
}

/// A registry cache reference: `REF`, or BuildKit's `type=registry,ref=REF[,mode=max]`.
fn cache_ref(flag: &str, spec: &str) -> Result<Reference, Failure> {
    let reference = if spec.contains('=') {
        let mut reference = None;
        for part in spec.split(',') {
            match part.split_once('=') {
                Some(("type", "registry")) | Some(("mode", "max")) => {}
                Some(("ref", r)) => reference = Some(r),
                _ => {
                    return Err(Failure::usage(format!(
                        "invalid {flag} `{spec}`: expected REF or type=registry,ref=REF"
                    )));
                }
            }
        }
        reference
            .ok_or_else(|| Failure::usage(format!("invalid {flag} `{spec}`: `ref=` is missing")))?
    } else {
        spec
    };
    reference
        .parse::<Reference>()
        .map_err(|e| Failure::usage(format!("invalid {flag} `{spec}`: {e}")))
}

/// `--volume HOST:CONTAINER[:ro]`, as buildah's `-v`.
fn volume(spec: &str) -> Result<BindMount, Failure> {
    let bad = || {
        Failure::usage(format!(
            "invalid --volume `{spec}`: expected HOST:CONTAINER[:ro] with absolute paths"
        ))
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (host, target, read_only) = match parts.as_slice() {
        [h, t] => (*h, *t, false),
        [h, t, "ro"] => (*h, *t, true),
        [h, t, "rw"] => (*h, *t, false),
        _ => return Err(bad()),
    };
    if !host.starts_with('/') || !target.starts_with('/') {
        return Err(bad());
    }
    if !std::path::Path::new(host).exists() {
        return Err(Failure::usage(format!(
            "invalid --volume `{spec}`: `{host}` does not exist"
        )));
    }
    Ok(BindMount {
        host: host.into(),
        target: target.to_string(),
        read_only,
    })
}

/// `--build-arg NAME=value`, or `NAME` alone to take the value from the environment (skipped
/// when unset), as `docker build` does.
fn build_args(raw: &[String]) -> Result<BTreeMap<String, String>, Failure> {
    let mut args = BTreeMap::new();
    for a in raw {
        match a.split_once('=') {
            Some(("", _)) => {
                return Err(Failure::usage(format!(
                    "invalid --build-arg `{a}`: expected NAME=VALUE"
                )));
            }
            Some((k, v)) => {
                args.insert(k.to_string(), v.to_string());
            }
            None if a.is_empty() => {
                return Err(Failure::usage(
                    "invalid --build-arg ``: expected NAME=VALUE",
                ));
            }
            None => {
                if let Ok(v) = std::env::var(a) {
                    args.insert(a.clone(), v);
                }
            }
        }
    }
    Ok(args)
}

fn key_values(flag: &str, raw: &[String]) -> Result<BTreeMap<String, String>, Failure> {
    raw.iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(Failure::usage(format!(
                "invalid {flag} `{kv}`: expected KEY=VALUE"
            ))),
        })
        .collect()
}

/// Runs `kiln build`.
pub fn run(args: Box<BuildArgs>) -> Result<(), Failure> {
    let options = options(&args)?;
    let quiet = args.quiet;
    let progress = Progress::new(quiet);
    let reporter = |event: BuildEvent| progress.show(event);
    let report = build(&options, &reporter).map_err(|e| {
        let mut message = render::error(&e, e.location());
        if let BuildError::RunFailed { last_lines, .. } = &e
            && !last_lines.is_empty()
        {
            message.push_str("  last output:\n");
            for line in last_lines {
                message.push_str(&format!("    {line}\n"));
            }
        }
        Failure {
            message,
            exit: Exit::Failure,
        }
    })?;
    if let Some(path) = &args.digest_file {
        std::fs::write(path, report.digest.to_string()).map_err(|e| Failure {
            message: format!(
                "error: failed to write digest file `{}`\n  caused by: {e}\n",
                path.display()
            ),
            exit: Exit::Failure,
        })?;
    }
    if let Some(path) = &args.report {
        let json = builder_core::build::report::to_json(&report);
        let text = serde_json::to_string_pretty(&json).unwrap_or_default() + "\n";
        std::fs::write(path, text).map_err(|e| Failure {
            message: format!(
                "error: failed to write report `{}`\n  caused by: {e}\n",
                path.display()
            ),
            exit: Exit::Failure,
        })?;
    }
    if !quiet {
        if args.explain {
            eprint!("{}", super::progress::explain(&report));
        }
        for t in &report.tags {
            eprintln!("naming to {t}");
        }
        eprintln!("{}", super::progress::summary(&report));
    }
    crate::stdout(&format!("{}\n", report.digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_args_parse_like_docker() {
        let a = build_args(&["A=1".into(), "B=".into(), "C=x=y".into()]).unwrap();
        assert_eq!(a["A"], "1");
        assert_eq!(a["B"], "");
        assert_eq!(a["C"], "x=y");
        assert!(build_args(&["=oops".into()]).is_err());
        let e = build_args(&["=v".into()]).err().unwrap();
        assert_eq!(e.exit, Exit::Usage);
    }
}
