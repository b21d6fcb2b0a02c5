//! The steps of a plan: instructions with every word expanded and every default applied.

use crate::diag::Location;
use crate::oci::Reference;

/// One step of a stage, ready to execute.
#[derive(Debug, Clone)]
pub struct Step {
    /// The instruction it came from (the `FROM` line for `ONBUILD` triggers of the base).
    pub location: Location,
    /// The instruction with its words expanded (`COPY app.py /app/`): the history entry and what
    /// reports show.
    pub created_by: String,
    /// What to do.
    pub op: Op,
    /// The build args in scope and their values. They shape the step only through its expanded
    /// words and RUN's environment; kept to tell which arg changed when a step misses the cache.
    pub build_args: std::collections::BTreeMap<String, String>,
}

/// What a step does.
#[derive(Debug, Clone)]
pub enum Op {
    /// Only changes the image config (ENV, LABEL, CMD, ...); adds no layer.
    Config,
    /// Creates the working directory when missing (`WORKDIR`).
    Workdir {
        /// Absolute path.
        path: String,
        /// The `USER` in effect, who will own the directory if it is created.
        user: Option<String>,
    },
    /// `COPY` or `ADD`.
    Copy(CopyOp),
    /// `RUN`.
    Run(RunOp),
}

/// Where COPY sources come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyFrom {
    /// The build context.
    Context,
    /// The result of stage `index` (`--from=name` or `--from=N`).
    Stage(usize),
    /// Another image (`--from=alpine:3.20`).
    Image(Reference),
}

/// One source of a COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopySource {
    /// A path (maybe with wildcards) in the context or the `--from` stage.
    Path(String),
    /// A here-document (`COPY <<EOF /dest`), with its content already expanded if it should be.
    Heredoc {
        /// The delimiter (`EOF`), also the file name when the destination is a directory.
        name: String,
        /// The body.
        content: String,
    },
    /// A remote URL (`ADD https://...`).
    Url(String),
}

/// An expanded COPY or ADD.
#[derive(Debug, Clone)]
pub struct CopyOp {
    /// True for ADD (archives are extracted, URLs fetched).
    pub add: bool,
    /// The sources in order.
    pub sources: Vec<CopySource>,
    /// The destination, absolute (relative ones are joined to the WORKDIR). A trailing `/` is
    /// kept: it means "a directory".
    pub dest: String,
    /// Where the sources are read from.
    pub from: CopyFrom,
    /// `--chown`, unresolved (`app`, `1000:1000`, `app:staff`).
    pub chown: Option<String>,
    /// `--chmod` as permission bits.
    pub chmod: Option<u32>,
    /// `--exclude` patterns.
    pub excludes: Vec<String>,
    /// `--parents`: keep the source's parent directories under the destination.
    pub parents: bool,
    /// `--link`.
    pub link: bool,
}

/// An expanded RUN.
#[derive(Debug, Clone)]
pub struct RunOp {
    /// The program and its arguments (SHELL already applied to shell form).
    pub args: Vec<String>,
    /// The environment the command sees: ENV plus the build args in scope, as `KEY=value`.
    pub env: Vec<(String, String)>,
    /// The names in `env` that are build args (declared with ARG and not overridden by ENV).
    pub build_args: Vec<String>,
    /// The names in `env` that are undeclared proxy variables (`HTTP_PROXY`, ...): they reach the
    /// command but, as in Docker, do not make the step's cache key.
    pub proxies: Vec<String>,
    /// `USER` in effect.
    pub user: Option<String>,
    /// `WORKDIR` in effect.
    pub workdir: String,
    /// `--network`, when given.
    pub network: Option<String>,
    /// `--mount` values, unparsed.
    pub mounts: Vec<String>,
    /// A here-document with a `#!` line that is the whole command: run as a program of its
    /// own, as BuildKit does, rather than fed to the shell (`args` names it).
    pub script: Option<RunScript>,
}

/// A `RUN <<NAME` document whose first line is `#!`: an executable file (mode 0755) the step
/// sees, alone and read-only, in [`RunScript::DIR`], so its interpreter line chooses the
/// program and the file never reaches the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunScript {
    /// The file's name: the here-document's delimiter.
    pub name: String,
    /// The document, as the file's bytes.
    pub content: String,
}

impl RunScript {
    /// Where the step sees the script, as in BuildKit.
    pub const DIR: &'static str = "/dev/pipes";

    /// The script's path in the step's root.
    pub fn path(&self) -> String {
        format!("{}/{}", Self::DIR, self.name)
    }
}

impl Op {
    /// The step in canonical form, for cache keys: every field that shapes its layer, as JSON
    /// (so no two steps share a form), and nothing that only describes it. `None` for steps that
    /// make no layer. The files a COPY reads, the stage or image it reads them from, and the
    /// values of the environment are inputs beside this form, not part of it.
    pub fn canonical(&self) -> Option<String> {
        let value = match self {
            Op::Config => return None,
            Op::Workdir { path, user } => serde_json::json!({
                "op": "WORKDIR",
                "path": path,
                "user": user,
            }),
            Op::Copy(c) => {
                let sources: Vec<serde_json::Value> = c
                    .sources
                    .iter()
                    .map(|s| match s {
                        CopySource::Path(p) => serde_json::json!({ "path": p }),
                        CopySource::Heredoc { name, content } => {
                            serde_json::json!({ "heredoc": name, "content": content })
                        }
                        CopySource::Url(u) => serde_json::json!({ "url": u }),
                    })
                    .collect();
                let from = match &c.from {
                    CopyFrom::Context => "context".to_string(),
                    CopyFrom::Stage(_) => "stage".to_string(),
                    CopyFrom::Image(r) => format!("image {r}"),
                };
                serde_json::json!({
                    "op": if c.add { "ADD" } else { "COPY" },
                    "sources": sources,
                    "dest": c.dest,
                    "from": from,
                    "chown": c.chown,
                    "chmod": c.chmod,
                    "excludes": c.excludes,
                    "parents": c.parents,
                })
            }
            Op::Run(r) => serde_json::json!({
                "op": "RUN",
                "args": r.args,
                "user": r.user,
                "workdir": r.workdir,
                "network": r.network,
                "mounts": r.mounts,
                "script": r.script.as_ref().map(|s| [&s.name, &s.content]),
            }),
        };
        Some(value.to_string())
    }
}
