//! The one place that knows every stage: read the Dockerfile, plan, execute each step, write
//! its layer, assemble the image and hand it to the outputs.
//!
//! Data flows one way, `dockerfile → context → plan → exec → layer → export`; where an earlier
//! stage needs a later one it defines a trait ([`plan::ImageResolver`],
//! [`exec::ArchiveExtractor`]) and this module passes the implementation in.
//!
//! Everything here is synchronous: tar, gzip and sha256 are CPU-bound streaming work.

mod base;
mod caching;
mod keys;
mod push;
pub mod remote_cache;
pub mod report;
mod run;
mod step_layer;
mod uploads;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cache::{self, CacheError, CacheKey, CacheRecord, CachedLayer, LocalCache, MissReason};
use crate::context::{BuildContext, ContextError, FileHashes};
use crate::diag::{Location, SourceFile};
use crate::dockerfile::{self, ParseError};
use crate::exec::copy::ContextWalks;
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
    /// With `push`, send each of the image's layers to the first tag's repository while it is
    /// written, so the push after the last step has little left to send. Off, layers are sent
    /// by the push alone, as docker does; worth turning off when rebuilt layers are usually
    /// already in the registry (an upload that starts before the layer is finished cannot know
    /// its digest, so cannot ask whether the registry has it).
    pub upload_while_building: bool,
    /// How RUN steps are isolated; detected (namespaces where the kernel allows) when `None`.
    pub isolation: Option<Isolation>,
    /// Host paths mounted into every RUN step (`--volume HOST:CTR[:ro]`); never in a layer.
    pub volumes: Vec<BindMount>,
    /// Where unpacked layers are kept between builds (`~/.cache/kiln/layers`), so a base image
    /// is unpacked once per machine.
    pub layers_dir: PathBuf,
    /// The layer cache.
    pub cache: CacheOptions,
}

/// How a build uses the layer cache.
#[derive(Debug, Clone, Default)]
pub struct CacheOptions {
    /// The local cache directory (`~/.cache/kiln/build-cache`); `None` keeps nothing locally.
    pub dir: Option<PathBuf>,
    /// `--no-cache`: build every step; results still go to the cache.
    pub no_cache: bool,
    /// `--no-cache-filter`: stages (by name) whose steps are all built.
    pub no_cache_stages: Vec<String>,
    /// Entries older than this are not used (`--cache-ttl`), nor exported to `to`.
    pub ttl: Option<Duration>,
    /// Registry caches to take hits from (`--cache-from`), in order.
    pub from: Vec<Reference>,
    /// Registry caches to write this build's entries to, merged with theirs (`--cache-to`).
    pub to: Vec<Reference>,
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
            upload_while_building: true,
            isolation: None,
            volumes: Vec::new(),
            layers_dir: default_cache_dir().join("layers"),
            cache: CacheOptions {
                dir: Some(default_cache_dir().join("build-cache")),
                ..CacheOptions::default()
            },
        }
    }
}

/// Where kiln keeps what it reuses between builds: `$XDG_CACHE_HOME/kiln` (`~/.cache/kiln`).
pub fn default_cache_dir() -> PathBuf {
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("kiln")
}

/// Where a cache hit came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheSource {
    /// The local cache directory.
    Local,
    /// A registry cache (`--cache-from`).
    Remote,
}

/// What the cache did for a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepCache {
    /// The step's layer came from the cache.
    Hit {
        /// From where.
        source: CacheSource,
    },
    /// The step was built.
    Miss {
        /// Why it was not in the cache.
        reason: MissReason,
    },
    /// The step makes no layer (ENV, LABEL, CMD, ...), so there is nothing to cache.
    NotApplicable,
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
        /// Whether it came from the cache.
        cache: StepCache,
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
        /// How: `pushed`, `pushed while it was built`, `already exists`, `mounted from …`.
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
    /// 1-based number of the step among all steps of the build, as progress shows it.
    pub number: usize,
    /// The first Dockerfile line of the instruction.
    pub line: usize,
    /// The expanded instruction.
    pub instruction: String,
    /// The layer it made or reused, if any.
    pub layer: Option<LayerRef>,
    /// Whether it came from the cache, and why not.
    pub cache: StepCache,
    /// Its cache key, for steps that make a layer.
    pub key: Option<CacheKey>,
    /// How long it took.
    pub duration: Duration,
}

/// Cache totals of a build.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CacheSummary {
    /// Steps whose layer came from the cache.
    pub hits: usize,
    /// Steps that were built.
    pub misses: usize,
    /// Bytes of layers reused from the cache.
    pub bytes_reused: u64,
    /// Bytes of layers built.
    pub bytes_built: u64,
}

impl CacheSummary {
    /// `hits / (hits + misses)`, 0 for a build with no cacheable step.
    pub fn hit_rate(&self) -> f64 {
        cache::rate(self.hits, self.misses)
    }
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
    /// Cache totals.
    pub cache: CacheSummary,
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
    /// The layer cache could not be read or written.
    #[error("the layer cache failed")]
    Cache(#[source] CacheError),
    /// A registry cache could not be read or written.
    #[error(transparent)]
    RemoteCache(#[from] remote_cache::RemoteCacheError),
    /// `--no-cache-filter` names a stage the Dockerfile does not have.
    #[error("--no-cache-filter names no stage: `{stage}`; {}", named(available))]
    UnknownNoCacheStage {
        /// The name given.
        stage: String,
        /// The names the stages have.
        available: Vec<String>,
    },
}

fn named(names: &[String]) -> String {
    if names.is_empty() {
        "no stage is named; name one with `FROM image AS name`".to_string()
    } else {
        format!("the named stages are: {}", names.join(", "))
    }
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
    /// Layer blobs reused from a registry cache and not downloaded yet, and where they are.
    pending: Vec<Digest>,
    remote_cache: Option<Arc<RemoteCacheSource>>,
}

/// The registry caches of a build and the client that reads them.
struct RemoteCacheSource {
    caches: remote_cache::RemoteCaches,
    client: registry::BlockingClient,
}

impl RemoteCacheSource {
    fn fetch(&self, digest: &Digest, store: &OciLayout) -> Result<(), BuildError> {
        self.caches
            .fetch_blob(&self.client, digest, store)
            .map_err(BuildError::from)
    }
}

impl StageResult {
    fn empty() -> StageResult {
        StageResult {
            tree: Some(FsTree::new()),
            layers: Vec::new(),
            history: Vec::new(),
            remote_base: None,
            pending: Vec::new(),
            remote_cache: None,
        }
    }

    fn from_image(base: BaseImage) -> Result<StageResult, BuildError> {
        let image = base.image();
        Ok(StageResult {
            tree: None,
            layers: image.layers()?,
            history: image.config()?.history,
            remote_base: base.remote(),
            pending: Vec::new(),
            remote_cache: None,
        })
    }

    /// Downloads the layer blobs still in a registry (the base's, and those reused from a
    /// registry cache) into `store`, for a step or an output that reads their bytes.
    fn fetch_blobs(&mut self, store: &OciLayout) -> Result<(), BuildError> {
        if let Some(base) = &self.remote_base {
            base.fetch_layers_blocking()?;
        }
        if let Some(source) = &self.remote_cache {
            for digest in &self.pending {
                source.fetch(digest, store)?;
            }
        }
        self.pending.clear();
        Ok(())
    }

    /// The stage's filesystem, read from its layers the first time a step looks at it (RUN
    /// steps do not: they run over the unpacked layers themselves).
    fn tree(
        &mut self,
        store: &OciLayout,
        unpacked: &layer::UnpackedLayers,
    ) -> Result<&mut FsTree, BuildError> {
        if self.tree.is_none() {
            self.fetch_blobs(store)?;
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
    // The context and the cache first: the directories the COPY steps read are walked, and the
    // memo of context file hashes is read, on threads of their own while the plan resolves
    // base images.
    let mut context = BuildContext::open(&options.context_dir, Some(&dockerfile_path))?;
    context.prefetch(keys::prefetch_sources(&parsed));
    let local = match &options.cache.dir {
        Some(dir) => Some(LocalCache::open(dir).map_err(BuildError::Cache)?),
        None => None,
    };
    let hashes = match &local {
        Some(l) => FileHashes::load(l.root().join("context").join(format!(
            "{}.bin",
            Digest::of(context.root().to_string_lossy().as_bytes()).hex()
        ))),
        None => FileHashes::in_memory(),
    };
    let bases = BaseImages::new(&store, &options.registry);
    let plan = plan::plan(&parsed, &options.plan, &bases)?;
    for w in &plan.warnings {
        reporter.report(BuildEvent::Warning(w.clone()));
    }
    let no_cache_stages = no_cache_stages(&plan, &options.cache.no_cache_stages)?;
    let scratch = tempfile::Builder::new()
        .prefix("kiln-build-")
        .tempdir()
        .map_err(BuildError::Scratch)?;

    let wall_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let now = options.source_date_epoch.unwrap_or(wall_now);
    let created = rfc3339(now);
    let layer_options = LayerOptions {
        source_date_epoch: options.source_date_epoch,
        ..LayerOptions::default()
    };
    let remote = if options.cache.from.is_empty() {
        None
    } else {
        let client = registry::BlockingClient::new(options.registry.clone())?;
        let mut warnings = Vec::new();
        let caches = remote_cache::RemoteCaches::import(
            &client,
            &options.cache.from,
            &store,
            &mut warnings,
        )?;
        for w in warnings {
            reporter.report(BuildEvent::Warning(w));
        }
        Some(Arc::new(RemoteCacheSource { caches, client }))
    };
    let mut caching = caching::Caching {
        local,
        remote: remote.as_ref().map(|r| r.caches.clone()),
        hashes,
        no_cache: options.cache.no_cache,
        no_cache_stages,
        ttl: options.cache.ttl,
        now: wall_now,
        exported: cache::remote::RemoteCacheConfig::default(),
        export_inputs: !options.cache.to.is_empty(),
    };
    let uploads = match options.tags.first() {
        Some(tag) if options.push && options.upload_while_building => {
            Some(uploads::LayerUploads::new(bases.client()?, tag, &plan))
        }
        _ => None,
    };
    let total: usize = plan.order.iter().map(|i| plan.stages[i].steps.len()).sum();
    let mut number = 0;
    let mut results: BTreeMap<usize, StageResult> = BTreeMap::new();
    let mut trees: BTreeMap<usize, FsTree> = BTreeMap::new();
    // Each built stage's final key and the first step of its chain that missed.
    let mut stage_chains: BTreeMap<usize, caching::Chain> = BTreeMap::new();
    // `COPY --from=<image>` trees, by reference, for the platform of the stage using them (stages
    // run one after another, so a stage for another platform replaces the entry).
    let mut image_trees: BTreeMap<String, FsTree> = BTreeMap::new();
    let mut image_tree_platforms: BTreeMap<String, String> = BTreeMap::new();
    let mut steps = Vec::new();
    let mut summary = CacheSummary::default();
    let mut runner: Option<run::Runner<'_>> = None;
    let unpacked = layer::UnpackedLayers::new(&options.layers_dir)
        .with_ownership_tag(crate::exec::sandbox::ownership_tag());
    // Found out when first needed: a fully cached build never asks.
    let mut isolation: Option<Isolation> = None;

    for index in &plan.order {
        let stage = &plan.stages[index];
        let stage_name = stage.display_name();
        let (mut result, mut chain, mut base_name) = match &stage.base {
            Base::Scratch => (
                StageResult::empty(),
                caching::Chain {
                    key: keys::root_key(None, &stage.platform, options.source_date_epoch),
                    first_miss: None,
                },
                None,
            ),
            Base::Stage(j) => {
                let from = &stage_chains[j];
                (
                    results[j].clone(),
                    caching::Chain {
                        key: from.key.clone(),
                        first_miss: from.first_miss,
                    },
                    None,
                )
            }
            Base::Image(r) => {
                let base = bases.get(r, &stage.platform)?;
                let digest = base.image().digest()?;
                let chain = caching::Chain {
                    key: keys::root_key(Some(&digest), &stage.platform, options.source_date_epoch),
                    first_miss: None,
                };
                let name = format!("{}@{digest}", r.familiar());
                (StageResult::from_image(base)?, chain, Some(name))
            }
        };
        if result.remote_cache.is_none() {
            result.remote_cache = remote.clone();
        }
        // This stage's own history entries start here; those before are its base's.
        let own_history = result.history.len();
        for (position, step) in stage.steps.iter().enumerate() {
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
            let Some(canonical) = step.op.canonical() else {
                // Dated once the stage is done (`fill_times`), unless the epoch dates everything.
                let when = options.source_date_epoch.map(|_| created.clone());
                result.history.push(history(when, step, None));
                let duration = step_started.elapsed();
                reporter.report(BuildEvent::StepFinished {
                    number,
                    layer: None,
                    cache: StepCache::NotApplicable,
                    duration,
                });
                steps.push(StepReport {
                    stage: stage_name.clone(),
                    number,
                    line: step.location.start_line,
                    instruction: step.created_by.clone(),
                    layer: None,
                    cache: StepCache::NotApplicable,
                    key: None,
                    duration,
                });
                continue;
            };
            let (from, source_stage_miss) = match &step.op {
                Op::Copy(op) => match &op.from {
                    CopyFrom::Context => (None, None),
                    CopyFrom::Stage(j) => {
                        let c = &stage_chains[j];
                        let miss = c.first_miss.map(|n| (plan.stages[j].display_name(), n));
                        (Some(c.key.to_string()), miss)
                    }
                    CopyFrom::Image(r) => {
                        let d = bases.get(r, &stage.platform)?.image().digest()?;
                        (Some(format!("{}@{d}", r.familiar())), None)
                    }
                },
                _ => (None, None),
            };
            let base = base_name.take();
            let key_step = |walks, hashes: &mut FileHashes| {
                keys::step_key(
                    &chain.key,
                    step,
                    options.source_date_epoch,
                    canonical.clone(),
                    from.clone(),
                    base.clone(),
                    &context,
                    hashes,
                    walks,
                )
            };
            // Walks made ahead stand for the context only early in the build; after that a
            // step walks for itself. A file may also have changed since such a walk: one made
            // now tells whether that is the problem.
            let walks = if started.elapsed() <= PREFETCH_TRUSTED {
                ContextWalks::Prefetched
            } else {
                ContextWalks::Fresh
            };
            let keys::StepKey { key, inputs } = key_step(walks, &mut caching.hashes)
                .or_else(|_| key_step(ContextWalks::Fresh, &mut caching.hashes))
                .map_err(step_err)?;
            let slot = keys::slot(context.root(), &dockerfile_path, *index, position);
            let found = caching.find(&caching::Lookup {
                key: &key,
                slot: &slot,
                inputs: &inputs,
                stage: *index,
                chain: &chain,
                source_stage_miss,
            });
            let cache_status = StepCache::of(&found);
            // When the step's result was made: now, unless it comes from the cache.
            let mut made = None;
            let layer = match found {
                Ok((record, source)) => {
                    made = Some(record.created);
                    let layer = record.layer.as_ref().map(LayerRef::from);
                    match (&layer, &caching.local, source) {
                        (Some(l), Some(local), CacheSource::Local) => local
                            .export_blob(&l.digest, &store)
                            .map_err(BuildError::Cache)?,
                        (Some(l), _, CacheSource::Remote) if !store.has_blob(&l.digest) => {
                            result.pending.push(l.digest.clone());
                        }
                        _ => {}
                    }
                    if layer.is_some() {
                        // The filesystem model, if read, lacks the reused layer: read it again
                        // from the layers when a step next needs it.
                        result.tree = None;
                    }
                    summary.hits += 1;
                    summary.bytes_reused += layer.as_ref().map_or(0, |l| l.size);
                    caching.remember(record, &slot, &inputs, caching::Outcome::Reused, &store)?;
                    layer
                }
                Err(_) => {
                    chain.first_miss.get_or_insert(number);
                    let entries: Vec<Entry> = match &step.op {
                        Op::Config => Vec::new(),
                        Op::Workdir { path, user } => {
                            let tree = result.tree(&store, &unpacked)?;
                            exec::workdir(path, user.as_deref(), tree, now).map_err(step_err)?
                        }
                        Op::Copy(op) => {
                            match &op.from {
                                CopyFrom::Image(r)
                                    if image_tree_platforms.get(&r.to_string())
                                        != Some(&stage.platform.to_string()) =>
                                {
                                    let tree =
                                        bases.get(r, &stage.platform)?.tree(&store, &unpacked)?;
                                    image_trees.insert(r.to_string(), tree);
                                    image_tree_platforms
                                        .insert(r.to_string(), stage.platform.to_string());
                                }
                                CopyFrom::Stage(j) if !trees.contains_key(j) => {
                                    let tree = results
                                        .get_mut(j)
                                        .ok_or_else(|| {
                                            step_err(ExecError::Invalid(format!(
                                                "stage {j} was not built before it was needed"
                                            )))
                                        })?
                                        .tree(&store, &unpacked)?
                                        .clone();
                                    trees.insert(*j, tree);
                                }
                                _ => {}
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
                            exec::copy::copy(op, tree, &env).map_err(step_err)?
                        }
                        Op::Run(op) => {
                            let runner = runner.get_or_insert_with(|| run::Runner {
                                store: &store,
                                unpacked: unpacked.clone(),
                                isolation: *isolation.get_or_insert_with(|| {
                                    options.isolation.unwrap_or_else(detect_isolation)
                                }),
                                volumes: &options.volumes,
                                scratch: scratch.path(),
                                chroots: BTreeMap::new(),
                                steps: 0,
                            });
                            runner.run(*index, op, &mut result, &step.location, number, reporter)?
                        }
                    };
                    let mut chunks = None;
                    let layer = if entries.is_empty() {
                        None
                    } else {
                        // A tree not read yet will be read from the layers, this one included.
                        if let Some(tree) = result.tree.as_mut() {
                            tree.apply(&entries);
                        }
                        let unpack = if step_layer::run_follows(&stage.steps, position)
                            && *isolation.get_or_insert_with(|| {
                                options.isolation.unwrap_or_else(detect_isolation)
                            }) == Isolation::Namespace
                        {
                            Some((&unpacked, run::overlay_whiteouts()))
                        } else {
                            None
                        };
                        let (layer, chunk_index) = step_layer::StepLayer {
                            store: &store,
                            caching: &caching,
                            slot: &slot,
                            options: &layer_options,
                            unpack,
                            location: &step.location,
                            upload: uploads.as_ref().filter(|u| u.wants(*index)),
                        }
                        .write(entries)?;
                        chunks = chunk_index;
                        Some(layer)
                    };
                    summary.misses += 1;
                    summary.bytes_built += layer.as_ref().map_or(0, |l| l.size);
                    let record = CacheRecord {
                        key: key.clone(),
                        created: wall_now,
                        created_by: step.created_by.clone(),
                        layer: layer.as_ref().map(CachedLayer::from),
                    };
                    let outcome = caching::Outcome::Built {
                        chunks: chunks.as_ref(),
                    };
                    caching.remember(record, &slot, &inputs, outcome, &store)?;
                    layer
                }
            };
            chain.key = key.clone();
            let when = match (options.source_date_epoch, made) {
                (None, Some(made)) => rfc3339(made),
                _ => created.clone(),
            };
            result
                .history
                .push(history(Some(when), step, layer.as_ref()));
            if let Some(l) = &layer {
                result.layers.push(l.clone());
            }
            let duration = step_started.elapsed();
            reporter.report(BuildEvent::StepFinished {
                number,
                layer: layer.clone(),
                cache: cache_status.clone(),
                duration,
            });
            steps.push(StepReport {
                stage: stage_name.clone(),
                number,
                line: step.location.start_line,
                instruction: step.created_by.clone(),
                layer,
                cache: cache_status,
                key: Some(key),
                duration,
            });
        }
        fill_times(&mut result.history, own_history, &created);
        stage_chains.insert(*index, chain);
        results.insert(*index, result);
    }
    // Remembering hashes only saves the next build some reading: failing to is not an error.
    let _ = caching.hashes.save();

    let target = plan.target_stage();
    let mut result = results
        .remove(&plan.target)
        .unwrap_or_else(StageResult::empty);
    let mut config = target.config.clone();
    config.created = Some(
        result
            .history
            .last()
            .and_then(|h| h.created.clone())
            .filter(|_| options.source_date_epoch.is_none())
            .unwrap_or(created),
    );
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
        remote_cache: remote.clone(),
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
            .chain(remote.iter().flat_map(|r| r.caches.repositories()))
            .collect();
        let hints = push::PushHints {
            mount_from,
            sent_while_building: uploads
                .map(uploads::LayerUploads::finish)
                .unwrap_or_default(),
            memory: caching.local.as_ref(),
            now: wall_now,
        };
        Some(push::push_with(
            bases.client()?,
            &image,
            &options.tags,
            hints,
            reporter,
        )?)
    } else {
        None
    };
    if options.outputs.is_empty() && !options.push {
        // A stored image must be complete: fetch the layers the store does not have.
        result.fetch_blobs(&store)?;
        let names: Vec<String> = options.tags.iter().map(Reference::familiar).collect();
        store.add_manifest(&manifest, &names)?;
        reporter.report(BuildEvent::Exported(format!(
            "local store `{}`",
            store.root().display()
        )));
    }
    for dest in &options.cache.to {
        let none = remote_cache::RemoteCaches::none();
        let (client, imported) = match &remote {
            Some(r) => (&r.client, &r.caches),
            None => (bases.client()?, &none),
        };
        let mut mount_from: Vec<registry::Repository> = result
            .remote_base
            .iter()
            .map(|b| b.source().clone())
            .collect();
        if options.push {
            mount_from.extend(options.tags.iter().map(registry::Repository::of));
        }
        remote_cache::export(
            client,
            dest,
            caching.exported.clone(),
            &remote_cache::CacheBlobs {
                store: &store,
                local: caching.local.as_ref(),
                imported,
            },
            &remote_cache::ExportOptions {
                mount_from: &mount_from,
                ttl: options.cache.ttl,
                now: wall_now,
            },
        )?;
        reporter.report(BuildEvent::Exported(format!("cache `{dest}`")));
    }
    let duration = started.elapsed();
    if let Some(local) = &caching.local {
        // The build log only feeds `kiln cache stats`; the image is built either way.
        let _ = local.record_build(&cache::BuildStats {
            finished: wall_now,
            hits: summary.hits,
            misses: summary.misses,
            bytes_reused: summary.bytes_reused,
            bytes_built: summary.bytes_built,
            duration_ms: duration.as_millis() as u64,
        });
    }
    Ok(BuildReport {
        digest,
        config_digest: Digest::of(&config.to_bytes()),
        tags: options.tags.clone(),
        steps,
        cache: summary,
        warnings: plan.warnings.clone(),
        duration,
        push,
    })
}

/// How long after the build starts the walks made ahead of it stand for the context as it is:
/// about as long as a step's own walk and hashing of a large context take before its copy reads
/// the files. Later (after a long RUN, say), every step walks for itself, so that no step's key
/// describes files older than what the steps around it read.
const PREFETCH_TRUSTED: Duration = Duration::from_secs(1);

/// Dates this stage's entries (from `own` on) of steps that made no layer like the entry before
/// them (the first ones like the first dated entry; `now` if none is); the base's entries are
/// left as they are. With a cached step dated when it was first built, and the image like its
/// last entry, a fully cached rebuild without `SOURCE_DATE_EPOCH` then gives the very same
/// image, as with BuildKit.
fn fill_times(history: &mut [History], own: usize, now: &str) {
    let own = own.min(history.len());
    let (base, steps) = history.split_at_mut(own);
    let mut previous = base
        .iter()
        .rev()
        .chain(steps.iter())
        .find_map(|h| h.created.clone())
        .unwrap_or_else(|| now.to_string());
    for entry in steps {
        match &entry.created {
            Some(created) => previous.clone_from(created),
            None => entry.created = Some(previous.clone()),
        }
    }
}

/// The history entry of a step.
fn history(created: Option<String>, step: &plan::Step, layer: Option<&LayerRef>) -> History {
    History {
        created,
        created_by: Some(step.created_by.clone()),
        comment: Some("kiln.dockerfile.v0".to_string()),
        empty_layer: layer.is_none(),
        ..History::default()
    }
}

/// The stages `--no-cache-filter` names, by index.
fn no_cache_stages(plan: &plan::Plan, names: &[String]) -> Result<BTreeSet<usize>, BuildError> {
    let mut out = BTreeSet::new();
    for name in names {
        let wanted = name.to_lowercase();
        let found = plan
            .stages
            .values()
            .find(|s| s.name.as_deref() == Some(wanted.as_str()));
        match found {
            Some(s) => {
                out.insert(s.index);
            }
            None => {
                return Err(BuildError::UnknownNoCacheStage {
                    stage: name.clone(),
                    available: plan
                        .stages
                        .values()
                        .filter_map(|s| s.name.clone())
                        .collect(),
                });
            }
        }
    }
    Ok(out)
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
    use super::{fill_times, rfc3339};
    use crate::oci::History;

    fn dated(times: &[Option<&str>]) -> Vec<History> {
        times
            .iter()
            .map(|t| History {
                created: t.map(str::to_string),
                ..History::default()
            })
            .collect()
    }

    fn times(history: &[History]) -> Vec<Option<&str>> {
        history.iter().map(|h| h.created.as_deref()).collect()
    }

    #[test]
    fn steps_without_a_layer_are_dated_like_the_entry_before_them_and_the_base_is_left_alone() {
        let mut history = dated(&[None, Some("b"), None, Some("s1"), None, None, Some("s2")]);
        fill_times(&mut history, 2, "now");
        assert_eq!(
            times(&history),
            [
                None,
                Some("b"),
                Some("b"),
                Some("s1"),
                Some("s1"),
                Some("s1"),
                Some("s2")
            ]
        );
        // No dated base entry: the first ones take the first dated step's time.
        let mut history = dated(&[None, None, Some("s1"), None]);
        fill_times(&mut history, 1, "now");
        assert_eq!(times(&history), [None, Some("s1"), Some("s1"), Some("s1")]);
        let mut history = dated(&[None, None]);
        fill_times(&mut history, 0, "now");
        assert_eq!(times(&history), [Some("now"), Some("now")]);
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
