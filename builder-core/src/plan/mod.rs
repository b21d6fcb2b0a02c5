//! Planning: a parsed Dockerfile plus build options → the stages to build, in order, with every
//! instruction expanded and each stage's image config worked out.
//!
//! This is where Docker's dispatch rules live: ARG scoping, which instructions expand variables
//! and with which environment, relative WORKDIR and COPY destinations, SHELL for shell-form
//! commands, CMD reset by ENTRYPOINT, ONBUILD triggers of a base. Planning runs nothing and reads
//! no files; stages the target does not need are never planned, so their base images are never
//! resolved.

mod args;
mod op;
mod stage;
pub mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::diag::{Location, SourceFile};
use crate::dockerfile::{Command, Dockerfile, Instruction};
use crate::oci::{ImageConfig, Platform, Reference};

pub use args::{ArgScope, PROXY_ARGS, predefined_args};
pub use op::{CopyFrom, CopyOp, CopySource, Op, RunOp, RunScript, Step};
pub(crate) use stage::clean_path;

/// What a build was asked for, as far as planning is concerned.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// `--build-arg NAME=value`.
    pub build_args: BTreeMap<String, String>,
    /// `--target`: the stage to build; the last one when `None`.
    pub target: Option<String>,
    /// The platform the image is for (`--platform`; the host's by default).
    pub platform: Platform,
    /// The platform kiln runs on (`BUILDPLATFORM`).
    pub build_platform: Platform,
    /// `--label`: added to the target's config after its own LABELs.
    pub labels: BTreeMap<String, String>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            build_args: BTreeMap::new(),
            target: None,
            platform: Platform::host(),
            build_platform: Platform::host(),
            labels: BTreeMap::new(),
        }
    }
}

/// Gives planning the config of a base image (`FROM python:3.11`), whose ENV, WORKDIR, SHELL and
/// ONBUILD shape the stage. `build` passes the implementation in; planning never fetches.
pub trait ImageResolver {
    /// The config of `image` for `platform`.
    fn image_config(
        &self,
        image: &Reference,
        platform: &Platform,
    ) -> Result<ImageConfig, Box<dyn std::error::Error + Send + Sync>>;
}

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// `FROM scratch`: nothing.
    Scratch,
    /// `FROM <earlier stage>`.
    Stage(usize),
    /// `FROM <image>`.
    Image(Reference),
}

/// A planned stage.
#[derive(Debug, Clone)]
pub struct Stage {
    /// Position among the Dockerfile's stages (0-based), what `COPY --from=N` counts.
    pub index: usize,
    /// The `AS` name, lower-cased.
    pub name: Option<String>,
    /// The `FROM` line.
    pub location: Location,
    /// What it starts from.
    pub base: Base,
    /// The platform it is built for.
    pub platform: Platform,
    /// Its steps, in order (ONBUILD triggers of the base first).
    pub steps: Vec<Step>,
    /// The config the stage's image ends with, without `rootfs` and `history` (those depend on
    /// the layers, which only execution knows).
    pub config: ImageConfig,
}

impl Stage {
    /// How messages name the stage: its name, or its index.
    pub fn display_name(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => format!("stage-{}", self.index),
        }
    }
}

/// The stages to build, in dependency order.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The Dockerfile the plan came from.
    pub source: Arc<SourceFile>,
    /// Planned stages by index; stages the target does not need are absent.
    pub stages: BTreeMap<usize, Stage>,
    /// Build order: every stage after the stages it needs; the target last.
    pub order: Vec<usize>,
    /// The stage whose image is the result.
    pub target: usize,
    /// Things worth telling the user (unused build args, parser warnings).
    pub warnings: Vec<String>,
}

impl Plan {
    /// The target stage.
    pub fn target_stage(&self) -> &Stage {
        &self.stages[&self.target]
    }
}

/// Why a plan could not be made. Every variant that concerns an instruction carries its
/// location, so the front end can show the line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// An instruction is invalid once expanded (bad port, bad flag value, unknown stage, ...).
    #[error("{message}")]
    Instruction {
        /// What is wrong.
        message: String,
        /// Where.
        location: Location,
    },
    /// `--target` names no stage.
    #[error(
        "target stage `{target}` could not be found; {}",
        named_stages(available)
    )]
    UnknownTarget {
        /// The requested name.
        target: String,
        /// The names of the stages that have one (`FROM … AS name`); only those can be targets.
        available: Vec<String>,
    },
    /// Stages depend on each other in a loop.
    #[error("circular dependency detected on stage `{stage}`")]
    Cycle {
        /// The stage reached twice.
        stage: String,
        /// The instruction that closed the loop.
        location: Location,
    },
    /// The Dockerfile has no FROM.
    #[error("the Dockerfile has no FROM instruction, so there is no stage to build")]
    NoStages,
    /// A base image's config could not be had.
    #[error("failed to resolve base image `{image}`")]
    Resolve {
        /// The image.
        image: String,
        /// The FROM (or COPY --from) line.
        location: Location,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn named_stages(names: &[String]) -> String {
    if names.is_empty() {
        "no stage is named; name one with `FROM image AS name`".to_string()
    } else {
        format!("the named stages are: {}", names.join(", "))
    }
}

impl PlanError {
    /// The Dockerfile lines the error is about, when it is about some.
    pub fn location(&self) -> Option<&Location> {
        match self {
            PlanError::Instruction { location, .. }
            | PlanError::Cycle { location, .. }
            | PlanError::Resolve { location, .. } => Some(location),
            PlanError::UnknownTarget { .. } | PlanError::NoStages => None,
        }
    }
}

/// A stage as written: its FROM and the instructions up to the next FROM.
struct StageSource<'a> {
    from: &'a Instruction,
    body: Vec<&'a Instruction>,
    name: Option<String>,
}

/// Makes the plan for `dockerfile`.
pub fn plan(
    dockerfile: &Dockerfile,
    options: &PlanOptions,
    resolver: &dyn ImageResolver,
) -> Result<Plan, PlanError> {
    let file = dockerfile.source.clone();
    let (global_decls, stages) = split_stages(dockerfile)?;
    if stages.is_empty() {
        return Err(PlanError::NoStages);
    }
    let target = match &options.target {
        None => stages.len() - 1,
        Some(t) => {
            let wanted = t.to_lowercase();
            stages
                .iter()
                .position(|s| s.name.as_deref() == Some(wanted.as_str()))
                .ok_or_else(|| PlanError::UnknownTarget {
                    target: t.clone(),
                    available: stages.iter().filter_map(|s| s.name.clone()).collect(),
                })?
        }
    };
    let target_name = options
        .target
        .clone()
        .or_else(|| stages[target].name.clone());
    let mut planner = stage::Planner::new(
        dockerfile,
        options,
        resolver,
        &stages,
        target_name.as_deref(),
    );
    planner.declare_globals(&global_decls)?;
    planner.plan_stage(target, None)?;
    let mut warnings: Vec<String> = dockerfile
        .warnings
        .iter()
        .map(|w| format!("{}:{}: {}", file.name(), w.line, w.message))
        .collect();
    let planned = planner.finish(target, options)?;
    let consumed = planned.consumed_args;
    let unused: Vec<&str> = options
        .build_args
        .keys()
        .map(String::as_str)
        .filter(|k| !consumed.contains(*k) && !PROXY_ARGS.contains(k))
        .collect();
    if !unused.is_empty() {
        warnings.push(format!(
            "one or more build args were not consumed: {}",
            unused.join(", ")
        ));
    }
    Ok(Plan {
        source: file,
        stages: planned.stages,
        order: planned.order,
        target,
        warnings,
    })
}

fn split_stages(
    dockerfile: &Dockerfile,
) -> Result<(Vec<&Instruction>, Vec<StageSource<'_>>), PlanError> {
    let mut globals = Vec::new();
    let mut stages: Vec<StageSource<'_>> = Vec::new();
    let mut names = BTreeSet::new();
    for ins in &dockerfile.instructions {
        match (&ins.command, stages.last_mut()) {
            (Command::From { name, .. }, _) => {
                let name = match name {
                    Some(n) => {
                        let lower = n.to_lowercase();
                        if !valid_stage_name(&lower) {
                            return Err(PlanError::Instruction {
                                message: format!(
                                    "invalid name for build stage: `{n}`, name can't start with a number or contain symbols"
                                ),
                                location: ins.location(&dockerfile.source),
                            });
                        }
                        if !names.insert(lower.clone()) {
                            return Err(PlanError::Instruction {
                                message: format!("duplicate stage name `{n}`"),
                                location: ins.location(&dockerfile.source),
                            });
                        }
                        Some(lower)
                    }
                    None => None,
                };
                stages.push(StageSource {
                    from: ins,
                    body: Vec::new(),
                    name,
                });
            }
            (Command::Arg { .. }, None) => globals.push(ins),
            (_, None) => {
                return Err(PlanError::Instruction {
                    message: format!(
                        "no build stage in current context: `{}` must come after a FROM instruction",
                        ins.command.keyword()
                    ),
                    location: ins.location(&dockerfile.source),
                });
            }
            (_, Some(stage)) => stage.body.push(ins),
        }
    }
    Ok((globals, stages))
}

fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}
