//! The one place that knows every stage: read the Dockerfile, plan, execute each step, write
//! its layer, assemble the image and hand it to the outputs.
//!
//! Data flows one way, `dockerfile → context → plan → exec → layer → export`; where an earlier
//! stage needs a later one it defines a trait ([`plan::ImageResolver`],
//! [`exec::ArchiveExtractor`]) and this module passes the implementation in.
//!
//! Everything here is synchronous: tar, gzip and sha256 are CPU-bound streaming work.

mod base;
mod push;
pub mod remote_cache;
mod run;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::context::{BuildContext, ContextError};
use crate::diag::{Location, SourceFile};
use crate::dockerfile::{self, ParseError};
use crate::exec::fs::FsTree;
use crate::exec::sandbox::{BindMount, Isolation, SandboxError, detect_isolation};
use crate::exec::{self, ArchiveExtractor, ExecError, StepEnv};
use crate::export::{self, ExportError, Output};
use crate::layer::{self, LayerError, LayerOptions};
use crate::oci::image::write_manifest;
use crate::oci::layout::{LayoutError, from_oci_digest};
use crate::oci::{Digest, Entry, History, ImageError, LayerRef, LayoutImage, OciLayout, Reference};
use crate::plan::{self, Base, CopyFrom, Op, PlanError, PlanOptions};
use crate::registry::{self, ClientOptions, PushReport, RemoteImage};
use base::{BaseImage, BaseImages, BuiltImage};

pub use push::push;

/// Everything a build needs to know.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The build context directory.
    pub context_dir: PathBuf,
    /// The Dockerfile; `<context>/Dockerfile` when `None`.
    pub dockerfile: Option<PathBuf>,
    /// `-t` names.
    pub tags: Vec<Reference>,
    /// Build args, target, platform, labels.
    pub plan: PlanOptions,
    /// Where the image goes; the local store when empty.
    pub outputs: Vec<Output>,
    /// The local image store (also where layer blobs are kept).
    pub store_dir: PathBuf,
    /// `SOURCE_DATE_EPOCH`: the image's creation time, and the newest mtime any file may have.
    /// With it, the same inputs give the same image digest.
    pub source_date_epoch: Option<i64>,
    /// How to reach registries (credentials, TLS, mirrors, insecure hosts), for base images and
    /// `push`.
    pub registry: ClientOptions,
    /// Push the image to every tag after building it.
    pub push: bool,
    /// How RUN steps are isolated; detected (namespaces where the kernel allows) when `None`.
    pub isolation: Option<Isolation>,
    /// Host paths mounted into every RUN step (`--volume HOST:CTR[:ro]`); never in a layer.
    pub volumes: Vec<BindMount>,
    /// Where unpacked layers are kept between builds (`~/.cache/kiln/layers`), so a base image
    /// is unpacked once per machine.
    pub layers_dir: PathBuf,
}

impl BuildOptions {
    /// Options for building `context_dir` with its `Dockerfile` into the default store.
    pub fn new(context_dir: impl Into<PathBuf>) -> BuildOptions {
        BuildOptions {
            context_dir: context_dir.into(),
            dockerfile: None,
            tags: Vec::new(),
            plan: PlanOptions::default(),
            outputs: Vec::new(),
            store_dir: export::store::default_store_dir(),
            source_date_epoch: None,
            registry: ClientOptions::default(),
            push: false,
            isolation: None,
            volumes: Vec::new(),
            layers_dir: dirs::cache_dir()
                .unwrap_or_else(std::env::temp_dir)
                .join("kiln")
                .join("layers"),
        }
    }
}

/// What happened during a build, step by step.
#[derive(Debug, Clone)]
pub enum BuildEvent {
    /// A step is about to run.
    StepStarted {
        /// The stage's name.
        stage: String,
        /// 1-based number of the step among all steps of the build.
        number: usize,
        /// How many steps the build has.
        total: usize,
        /// The expanded instruction.
        instruction: String,
    },
    /// A step finished.
    StepFinished {
        /// Same as in `StepStarted`.
        number: usize,
        /// The layer it made, if any.
        layer: Option<LayerRef>,
        /// How long it took.
        duration: Duration,
    },
    /// Something the user should know (unused build args, parser warnings).
    Warning(String),
    /// The image was written to an output.
    Exported(String),
    /// Bytes of a blob went to a registry.
    BlobProgress {
        /// The blob.
        digest: Digest,
        /// Bytes sent so far (it can step back after a resumed upload).
        sent: u64,
        /// The blob's size.
        size: u64,
    },
    /// A blob is in the destination repository.
    BlobPushed {
        /// The blob.
        digest: Digest,
        /// How: `pushed`, `already exists`, `mounted from …`.
        outcome: String,
    },
    /// A tag was pushed; docker's line: `latest: digest: sha256:… size: 528`.
    Pushed(String),
    /// A line a RUN step printed (stdout and stderr together).
    RunOutput {
        /// The step's number, as in `StepStarted`.
        number: usize,
        /// The line, without its newline.
        line: String,
    },
}

/// Receives [`BuildEvent`]s, to show progress. The CLI prints them; a library user may ignore
/// them with `|_| {}`.
pub trait Reporter {
    /// Called for each event, in order.
    fn report(&self, event: BuildEvent);
}

impl<F: Fn(BuildEvent)> Reporter for F {
    fn report(&self, event: BuildEvent) {
        self(event)
    }
}

/// One step in the build report.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// The stage's name.
    pub stage: String,
    /// The first Dockerfile line of the instruction.
    pub line: usize,
    /// The expanded instruction.
    pub instruction: String,
    /// The layer it made, if any.
    pub layer: Option<LayerRef>,
    /// How long it took.
    pub duration: Duration,
}

/// The result of a build.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// The image (manifest) digest.
    pub digest: Digest,
    /// The config blob's digest (Docker's "image ID").
    pub config_digest: Digest,
    /// The names it was given.
    pub tags: Vec<Reference>,
    /// Every step executed, in order.
    pub steps: Vec<StepReport>,
    /// Warnings raised along the way.
    pub warnings: Vec<String>,
    /// Wall time.
    pub duration: Duration,
    /// What `push` did, when asked to push.
    pub push: Option<PushReport>,
}

/// Why a build failed. [`BuildError::location`] gives the Dockerfile lines when the failure is
/// about an instruction.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The Dockerfile could not be read.
    #[error("failed to read Dockerfile `{path}`")]
    ReadDockerfile {
        /// Its path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The Dockerfile does not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The Dockerfile parses but cannot be planned.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The context directory is unusable.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// A step failed.
    #[error("{keyword} at {location} failed")]
    Step {
        /// The instruction keyword.
        keyword: String,
        /// Where.
        location: Location,
        /// Why.
        #[source]
        source: ExecError,
    },
    /// A step cannot be executed by this version of kiln.
    #[error("{message}")]
    Unsupported {
        /// What is missing.
        message: String,
        /// Where.
        location: Location,
    },
    /// Writing a layer failed.
    #[error("failed to write the layer of {location}")]
    Layer {
        /// Where.
        location: Location,
        /// Why.
        #[source]
        source: LayerError,
    },
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] LayoutError),
    /// Assembling the image failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Writing an output failed.
    #[error("failed to write {output}")]
    Export {
        /// Which output.
        output: String,
        /// Why.
        #[source]
        source: ExportError,
    },
    /// A layer could not be unpacked to read a stage's filesystem.
    #[error("failed to unpack layer `{digest}`")]
    BaseLayer {
        /// The layer blob.
        digest: Digest,
        /// Why.
        #[source]
        source: LayerError,
    },
    /// A `-t` name carries a digest, which a build cannot promise to produce.
    #[error("refusing to create a tag with a digest reference: `{0}`")]
    DigestTag(Reference),
    /// A RUN command exited with a non-zero code.
    #[error("RUN at {location} exited with code {code}")]
    RunFailed {
        /// Where.
        location: Location,
        /// The exit code (128 + N when killed by signal N).
        code: i32,
        /// The last lines it printed.
        last_lines: Vec<String>,
    },
    /// A RUN step could not be started or captured.
    #[error("RUN at {location} could not run")]
    Sandbox {
        /// Where.
        location: Location,
        /// Why.
        #[source]
        source: SandboxError,
    },
    /// The image a `COPY --from=<image>` reads could not be had.
    #[error("failed to read image `{image}` for COPY --from at {location}")]
    CopyFromImage {
        /// The image.
        image: String,
        /// Where.
        location: Location,
        /// Why.
        #[source]
        source: Box<BuildError>,
    },
    /// An unpacked layer could not be read.
    #[error("failed to read the unpacked layer at `{}`", path.display())]
    ReadUnpacked {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A layer could not be unpacked for a RUN step.
    #[error("failed to unpack a layer for RUN at {location}")]
    Unpack {
        /// The RUN step.
        location: Location,
        /// Why.
        #[source]
        source: LayerError,
    },
    /// A registry could not be used (pull or push).
    #[error(transparent)]
    Registry(Box<registry::Error>),
    /// The push thread panicked.
    #[error("the push was interrupted by an internal error")]
    PushPanicked,
    /// `push` was asked for without any `-t` name to push to.
    #[error("nothing to push to: give the image a name with `-t registry/repository:tag`")]
    NoTagsToPush,
    /// `kiln push` names an image the local store does not have.
    #[error("no image named `{name}` in the local store `{}`", store.display())]
    NotInStore {
        /// The name asked for.
        name: String,
        /// The store.
        store: PathBuf,
    },
    /// A scratch directory could not be made.
    #[error("failed to create a temporary directory")]
    Scratch(#[source] std::io::Error),
}

impl From<registry::Error> for BuildError {
    fn from(e: registry::Error) -> BuildError {
        BuildError::Registry(Box::new(e))
    }
}

impl BuildError {
    /// The Dockerfile lines the error is about, if any.
    pub fn location(&self) -> Option<&Location> {
        match self {
            BuildError::Parse(e) => e.location(),
            BuildError::Plan(e) => e.location(),
            BuildError::Step { location, .. }
            | BuildError::CopyFromImage { location, .. }
            | BuildError::RunFailed { location, .. }
            | BuildError::Unpack { location, .. }
            | BuildError::Sandbox { location, .. }
            | BuildError::Unsupported { location, .. }
            | BuildError::Layer { location, .. } => Some(location),
            _ => None,
        }
    }
}

/// `ADD`'s archive support, from `layer`.
struct LayerArchives;

impl ArchiveExtractor for LayerArchives {
    fn is_archive(&self, path: &Path) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
        Ok(layer::detect_archive(path)?.is_some())
    }

    fn extract(
        &self,
        path: &Path,
        dest: &str,
        scratch: &Path,
    ) -> Result<Vec<Entry>, Box<dyn std::error::Error + Send + Sync>> {
        let format = layer::detect_archive(path)?
            .ok_or_else(|| format!("`{}` is not an archive", path.display()))?;
        Ok(layer::extract_archive_entries(path, format, dest, scratch)?)
    }
}

/// A built stage: its filesystem (assembled from its base only once a step needs it), layers
/// and history.
#[derive(Clone)]
struct StageResult {
    tree: Option<FsTree>,
    layers: Vec<LayerRef>,
    history: Vec<History>,
    /// The registry image the stage's layers start with, if any: blobs an output needs and the
    /// store lacks come from there, and a push mounts from its repository.
    remote_base: Option<Arc<RemoteImage>>,
}

impl StageResult {
    fn empty() -> StageResult {
        StageResult {
            tree: Some(FsTree::new()),
            layers: Vec::new(),
            history: Vec::new(),
            remote_base: None,
        }
    }

    fn from_image(base: BaseImage) -> Result<StageResult, BuildError> {
        let image = base.image();
        Ok(StageResult {
            tree: None,
            layers: image.layers()?,
            history: image.config()?.history,
            remote_base: base.remote(),
        })
    }

    /// The stage's filesystem, read from its layers the first time a step looks at it (RUN
    /// steps do not: they run over the unpacked layers themselves).
    fn tree(
        &mut self,
        store: &OciLayout,
        unpacked: &layer::UnpackedLayers,
    ) -> Result<&mut FsTree, BuildError> {
        if self.tree.is_none() {
            if let Some(base) = &self.remote_base {
                base.fetch_layers_blocking()?;
            }
            self.tree = Some(base::tree_from_layers(&self.layers, store, unpacked)?);
        }
        Ok(self.tree.get_or_insert_with(FsTree::new))
    }
}

/// Reads the Dockerfile at `path`, naming it as the user wrote it.
pub fn read_dockerfile(path: &Path) -> Result<Arc<SourceFile>, BuildError> {
    let text = std::fs::read_to_string(path).map_err(|source| BuildError::ReadDockerfile {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path.strip_prefix(".").unwrap_or(path);
    Ok(SourceFile::new(name.display().to_string(), text))
}

/// Builds the image described by `options`.
pub fn build(options: &BuildOptions, reporter: &dyn Reporter) -> Result<BuildReport, BuildError> {
    let started = Instant::now();
    if let Some(tag) = options.tags.iter().find(|t| t.digest().is_some()) {
        return Err(BuildError::DigestTag(tag.clone()));
    }
    if options.push && options.tags.is_empty() {
        return Err(BuildError::NoTagsToPush);
    }
    let dockerfile_path = options
        .dockerfile
        .clone()
        .unwrap_or_else(|| options.context_dir.join("Dockerfile"));
    let source = read_dockerfile(&dockerfile_path)?;
    let parsed = dockerfile::parse(source)?;
    let store = OciLayout::open_or_create(&options.store_dir)?;
    let bases = BaseImages::new(&store, &options.registry);
    let plan = plan::plan(&parsed, &options.plan, &bases)?;
    for w in &plan.warnings {
        reporter.report(BuildEvent::Warning(w.clone()));
    }
    let context = BuildContext::open(&options.context_dir, Some(&dockerfile_path))?;
    let scratch = tempfile::Builder::new()
        .prefix("kiln-build-")
        .tempdir()
        .map_err(BuildError::Scratch)?;

    let now = match options.source_date_epoch {
        Some(t) => t,
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
    };
    let created = rfc3339(now);
    let layer_options = LayerOptions {
        source_date_epoch: options.source_date_epoch,
        ..LayerOptions::default()
    };
    let total: usize = plan.order.iter().map(|i| plan.stages[i].steps.len()).sum();
    let mut number = 0;
    let mut results: BTreeMap<usize, StageResult> = BTreeMap::new();
    let mut trees: BTreeMap<usize, FsTree> = BTreeMap::new();
    // `COPY --from=<image>` trees, by reference, for the platform of the stage using them (stages
    // run one after another, so a stage for another platform replaces the entry).
    let mut image_trees: BTreeMap<String, FsTree> = BTreeMap::new();
    let mut image_tree_platforms: BTreeMap<String, String> = BTreeMap::new();
    let mut steps = Vec::new();
    let mut runner: Option<run::Runner<'_>> = None;
    let unpacked = layer::UnpackedLayers::new(&options.layers_dir);

    for index in &plan.order {
        let stage = &plan.stages[index];
        let stage_name = stage.display_name();
        let mut result = match &stage.base {
            Base::Scratch => StageResult::empty(),
            Base::Stage(j) => results[j].clone(),
            Base::Image(r) => StageResult::from_image(bases.get(r, &stage.platform)?)?,
        };
        for step in &stage.steps {
            number += 1;
            let step_started = Instant::now();
            reporter.report(BuildEvent::StepStarted {
                stage: stage_name.clone(),
                number,
                total,
                instruction: step.created_by.clone(),
            });
            let keyword = step.created_by.split(' ').next().unwrap_or("").to_string();
            let step_err = |source: ExecError| BuildError::Step {
                keyword: keyword.clone(),
                location: step.location.clone(),
                source,
            };
            let entries: Option<Vec<Entry>> = match &step.op {
                Op::Config => None,
                Op::Workdir { path, user } => {
                    let tree = result.tree(&store, &unpacked)?;
                    let e = exec::workdir(path, user.as_deref(), tree, now).map_err(step_err)?;
                    (!e.is_empty()).then_some(e)
                }
                Op::Copy(op) => {
                    if let CopyFrom::Image(r) = &op.from
                        && image_tree_platforms.get(&r.to_string())
                            != Some(&stage.platform.to_string())
                    {
                        let tree = bases.get(r, &stage.platform)?.tree(&store, &unpacked)?;
                        image_trees.insert(r.to_string(), tree);
                        image_tree_platforms.insert(r.to_string(), stage.platform.to_string());
                    }
                    let env = StepEnv {
                        context: &context,
                        stages: &trees,
                        images: &image_trees,
                        archives: &LayerArchives,
                        scratch: scratch.path(),
                        now,
                    };
                    let tree = result.tree(&store, &unpacked)?;
                    Some(exec::copy::copy(op, tree, &env).map_err(step_err)?)
                }
                Op::Run(op) => {
                    let runner = runner.get_or_insert_with(|| run::Runner {
                        store: &store,
                        unpacked: unpacked.clone(),
                        isolation: options.isolation.unwrap_or_else(detect_isolation),
                        volumes: &options.volumes,
                        scratch: scratch.path(),
                        chroots: BTreeMap::new(),
                        steps: 0,
                    });
                    let entries =
                        runner.run(*index, op, &mut result, &step.location, number, reporter)?;
                    Some(entries)
                }
            };
            let layer = match entries {
                None => None,
                Some(entries) => {
                    // A tree not read yet will be read from the layers, this one included.
                    if let Some(tree) = result.tree.as_mut() {
                        tree.apply(&entries);
                    }
                    let mut writer = store.blob_writer()?;
                    let (info, _) = layer::write_layer(entries, &mut writer, &layer_options)
                        .map_err(|source| BuildError::Layer {
                            location: step.location.clone(),
                            source,
                        })?;
                    let (digest, size) = writer.commit()?;
                    Some(LayerRef {
                        digest,
                        diff_id: info.diff_id,
                        size,
                        media_type: info.media_type.to_string(),
                    })
                }
            };
            result.history.push(History {
                created: Some(created.clone()),
                created_by: Some(step.created_by.clone()),
                comment: Some("kiln.dockerfile.v0".to_string()),
                empty_layer: layer.is_none(),
                ..History::default()
            });
            if let Some(l) = &layer {
                result.layers.push(l.clone());
            }
            let duration = step_started.elapsed();
            reporter.report(BuildEvent::StepFinished {
                number,
                layer: layer.clone(),
                duration,
            });
            steps.push(StepReport {
                stage: stage_name.clone(),
                line: step.location.start_line,
                instruction: step.created_by.clone(),
                layer,
                duration,
            });
        }
        if plan.order.iter().any(|i| needs_tree_of(&plan, *i, *index)) {
            let tree = result.tree(&store, &unpacked)?.clone();
            trees.insert(*index, tree);
        }
        results.insert(*index, result);
    }

    let target = plan.target_stage();
    let result = &results[&plan.target];
    let mut config = target.config.clone();
    config.created = Some(created);
    config.rootfs.diff_ids = result.layers.iter().map(|l| l.diff_id.clone()).collect();
    config.history = result.history.clone();
    let manifest = write_manifest(&store, &config, &result.layers)?;
    let digest = from_oci_digest(manifest.digest()).map_err(|e| {
        BuildError::Image(ImageError::Invalid {
            what: "manifest",
            digest: Digest::of(b""),
            source: Box::new(e),
        })
    })?;
    let image = BuiltImage {
        image: LayoutImage::new(store.clone(), digest.clone()),
        base: result.remote_base.clone(),
    };
    for output in &options.outputs {
        export::export(&image, output, &options.tags).map_err(|source| BuildError::Export {
            output: output.to_string(),
            source,
        })?;
        reporter.report(BuildEvent::Exported(output.to_string()));
    }
    let push = if options.push {
        let mount_from = result
            .remote_base
            .iter()
            .map(|b| b.source().clone())
            .collect();
        Some(push::push_with(
            bases.client()?,
            &image,
            &options.tags,
            mount_from,
            reporter,
        )?)
    } else {
        None
    };
    if options.outputs.is_empty() && !options.push {
        if let Some(base) = &result.remote_base {
            // A stored image must be complete: fetch the base layers the store does not have.
            base.fetch_layers_blocking()?;
        }
        let names: Vec<String> = options.tags.iter().map(Reference::familiar).collect();
        store.add_manifest(&manifest, &names)?;
        reporter.report(BuildEvent::Exported(format!(
            "local store `{}`",
            store.root().display()
        )));
    }
    Ok(BuildReport {
        digest,
        config_digest: Digest::of(&config.to_bytes()),
        tags: options.tags.clone(),
        steps,
        warnings: plan.warnings.clone(),
        duration: started.elapsed(),
        push,
    })
}

/// Whether stage `user` copies from stage `stage` (so `stage`'s filesystem must be kept).
fn needs_tree_of(plan: &plan::Plan, user: usize, stage: usize) -> bool {
    plan.stages[&user].steps.iter().any(|s| match &s.op {
        Op::Copy(op) => op.from == CopyFrom::Stage(stage),
        _ => false,
    })
}

/// Formats seconds since the epoch as RFC 3339 UTC (`2024-01-02T03:04:05Z`).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (proleptic Gregorian), valid for any i64 day count we will see.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
