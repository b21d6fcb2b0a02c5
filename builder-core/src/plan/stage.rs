//! Dispatching a stage's instructions: expansion, ARG scope and config changes, one instruction
//! at a time, as Docker's builder does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::args::{ArgScope, PROXY_ARGS, predefined_args};
use super::op::{CopyFrom, CopyOp, CopySource, Op, RunOp, RunScript, Step};
use super::values::{check_signal, parse_chmod, parse_port_spec};
use super::{Base, ImageResolver, PlanError, PlanOptions, Stage, StageSource};
use crate::diag::SourceFile;
use crate::dockerfile::parse_go_duration;
use crate::dockerfile::shell::Lexer;
use crate::dockerfile::{Command, CommandLine, Dockerfile, Healthcheck, Instruction};
use crate::oci::config::EmptyObject;
use crate::oci::{self, ImageConfig, Platform, Reference};

const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// The `PATH` BuildKit gives every non-Windows stage whose base sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Progress {
    Planning,
    Done,
}

pub(super) struct Planner<'a> {
    file: Arc<SourceFile>,
    lexer: Lexer,
    options: &'a PlanOptions,
    resolver: &'a dyn ImageResolver,
    sources: &'a [StageSource<'a>],
    /// Global ARGs (before the first FROM) plus the platform args.
    globals: ArgScope,
    /// Names declared by global ARGs (with or without a value), and the predefined ones.
    global_names: BTreeSet<String>,
    consumed: BTreeSet<String>,
    progress: BTreeMap<usize, Progress>,
    planned: BTreeMap<usize, Stage>,
    order: Vec<usize>,
}

/// What planning produced: the stages, their build order, and which build args were used.
pub(super) struct Planned {
    pub(super) stages: BTreeMap<usize, Stage>,
    pub(super) order: Vec<usize>,
    pub(super) consumed_args: BTreeSet<String>,
}

/// The state of a stage while its instructions are dispatched.
struct StageState {
    config: ImageConfig,
    args: ArgScope,
    cmd_set: bool,
}

impl StageState {
    fn workdir(&self) -> &str {
        self.config.config.working_dir.as_deref().unwrap_or("/")
    }

    fn shell(&self) -> Vec<String> {
        self.config
            .config
            .shell
            .clone()
            .unwrap_or_else(|| DEFAULT_SHELL.iter().map(|s| s.to_string()).collect())
    }

    /// The variables expansion sees: the args in scope, overridden by ENV of the same name.
    fn expansion_env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for kv in self.config.config.env.iter().flatten() {
            let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
            env.push((k.to_string(), v.to_string()));
        }
        env
    }
}

impl<'a> Planner<'a> {
    pub(super) fn new(
        dockerfile: &Dockerfile,
        options: &'a PlanOptions,
        resolver: &'a dyn ImageResolver,
        sources: &'a [StageSource<'a>],
        target_stage: Option<&str>,
    ) -> Planner<'a> {
        let mut globals = ArgScope::default();
        let mut global_names = BTreeSet::new();
        let mut consumed = BTreeSet::new();
        let predefined = predefined_args(
            &options.platform,
            &options.build_platform,
            target_stage,
            &options.build_args,
        );
        for (k, v) in predefined {
            if options.build_args.contains_key(&k) {
                consumed.insert(k.clone());
            }
            global_names.insert(k.clone());
            globals.set(&k, v);
        }
        Planner {
            file: dockerfile.source.clone(),
            lexer: Lexer::new(dockerfile.directives.escape),
            options,
            resolver,
            sources,
            globals,
            global_names,
            consumed,
            progress: BTreeMap::new(),
            planned: BTreeMap::new(),
            order: Vec::new(),
        }
    }

    fn err(&self, ins: &Instruction, message: impl Into<String>) -> PlanError {
        PlanError::Instruction {
            message: message.into(),
            location: ins.location(&self.file),
        }
    }

    fn expand(
        &self,
        ins: &Instruction,
        word: &str,
        env: &[(String, String)],
    ) -> Result<String, PlanError> {
        self.lexer
            .process_word(word, &env.to_vec())
            .map_err(|e| self.err(ins, format!("failed to expand `{word}`: {e}")))
    }

    pub(super) fn declare_globals(&mut self, decls: &[&Instruction]) -> Result<(), PlanError> {
        for ins in decls {
            let Command::Arg { args } = &ins.command else {
                continue;
            };
            for decl in args {
                self.global_names.insert(decl.name.clone());
                let value = match self.options.build_args.get(&decl.name) {
                    Some(v) => {
                        self.consumed.insert(decl.name.clone());
                        Some(v.clone())
                    }
                    None => match &decl.default {
                        Some(d) => {
                            let env: Vec<(String, String)> = self
                                .globals
                                .iter()
                                .map(|(k, v)| (k.to_string(), v.to_string()))
                                .collect();
                            Some(self.expand(ins, d, &env)?)
                        }
                        None => None,
                    },
                };
                if let Some(v) = value {
                    self.globals.set(&decl.name, v);
                }
            }
        }
        Ok(())
    }

    fn global_env(&self) -> Vec<(String, String)> {
        self.globals
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Plans stage `index` and, first, every stage it needs. `needed_by` is the instruction that
    /// asked for it, for cycle errors.
    pub(super) fn plan_stage(
        &mut self,
        index: usize,
        needed_by: Option<&Instruction>,
    ) -> Result<(), PlanError> {
        match self.progress.get(&index) {
            Some(Progress::Done) => return Ok(()),
            Some(Progress::Planning) => {
                let source = &self.sources[index];
                return Err(PlanError::Cycle {
                    stage: source.name.clone().unwrap_or_else(|| index.to_string()),
                    location: needed_by.unwrap_or(source.from).location(&self.file),
                });
            }
            None => {}
        }
        self.progress.insert(index, Progress::Planning);
        let sources = self.sources;
        let source = &sources[index];
        let (base, platform, mut base_config) = self.plan_from(index, source)?;
        if platform.os != "windows" && base_config.config.env_var("PATH").is_none() {
            base_config.config.set_env_var("PATH", DEFAULT_PATH);
        }
        let mut state = StageState {
            config: base_config,
            args: ArgScope::default(),
            cmd_set: false,
        };
        let mut steps = Vec::new();
        // ONBUILD triggers of the base run first, then are cleared.
        if let Some(triggers) = state.config.config.on_build.take() {
            for trigger in triggers {
                // A trigger is one instruction; the parser wants it inside a stage.
                let parsed = crate::dockerfile::parse(SourceFile::new(
                    format!("ONBUILD trigger `{trigger}`"),
                    format!("FROM scratch\n{trigger}\n"),
                ))
                .map_err(|e| {
                    self.err(
                        source.from,
                        format!("invalid ONBUILD trigger `{trigger}` in the base image: {e}"),
                    )
                })?;
                for ins in parsed.instructions.iter().skip(1) {
                    let mut step = self.dispatch(index, ins, &mut state)?;
                    if let Some(s) = step.as_mut() {
                        s.location = source.from.location(&self.file);
                    }
                    steps.extend(step);
                }
            }
        }
        for ins in &source.body {
            steps.extend(self.dispatch(index, ins, &mut state)?);
        }
        let mut config = state.config;
        config.config.on_build = config.config.on_build.filter(|t| !t.is_empty());
        self.planned.insert(
            index,
            Stage {
                index,
                name: source.name.clone(),
                location: source.from.location(&self.file),
                base,
                platform,
                steps,
                config,
            },
        );
        self.progress.insert(index, Progress::Done);
        self.order.push(index);
        Ok(())
    }

    fn plan_from(
        &mut self,
        index: usize,
        source: &StageSource<'_>,
    ) -> Result<(Base, Platform, ImageConfig), PlanError> {
        let ins = source.from;
        let Command::From { image, .. } = &ins.command else {
            return Err(self.err(ins, "a stage must start with FROM"));
        };
        let env = self.global_env();
        let platform = match ins.flag("platform") {
            Some(p) => {
                let p = self.expand(ins, p, &env)?;
                p.parse::<Platform>()
                    .map_err(|e| self.err(ins, e.to_string()))?
            }
            None => self.options.platform.clone(),
        };
        let image = self.expand(ins, image, &env)?;
        if image.is_empty() {
            return Err(self.err(ins, "base name should not be blank"));
        }
        let lower = image.to_lowercase();
        if let Some(j) = self.sources[..index]
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
        {
            self.plan_stage(j, Some(ins))?;
            let mut config = self.planned[&j].config.clone();
            config.history.clear();
            return Ok((Base::Stage(j), self.planned[&j].platform.clone(), config));
        }
        if lower == "scratch" {
            return Ok((
                Base::Scratch,
                platform.clone(),
                ImageConfig::scratch(&platform),
            ));
        }
        let reference: Reference = image
            .parse()
            .map_err(|e: oci::reference::ReferenceError| self.err(ins, e.to_string()))?;
        let mut config = self
            .resolver
            .image_config(&reference, &platform)
            .map_err(|source| PlanError::Resolve {
                image: image.clone(),
                location: ins.location(&self.file),
                source,
            })?;
        // Top-level fields kiln does not model (`container_config`, `docker_version`, BuildKit's
        // build info) describe how the base was built, not this image; BuildKit drops them too.
        config.extra.clear();
        Ok((Base::Image(reference), platform, config))
    }

    /// Applies one instruction to `state`; returns the step it makes (ARG makes none).
    fn dispatch(
        &mut self,
        stage: usize,
        ins: &Instruction,
        state: &mut StageState,
    ) -> Result<Option<Step>, PlanError> {
        let env = state.expansion_env();
        let location = ins.location(&self.file);
        let build_args: std::collections::BTreeMap<String, String> = state
            .args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let step = |created_by: String, op: Op| {
            Some(Step {
                location: location.clone(),
                created_by,
                op,
                build_args: build_args.clone(),
            })
        };
        Ok(match &ins.command {
            Command::From { .. } => return Err(self.err(ins, "unexpected FROM inside a stage")),
            Command::Arg { args } => {
                let mut shown = Vec::new();
                for decl in args {
                    let value = if let Some(v) = self.options.build_args.get(&decl.name) {
                        self.consumed.insert(decl.name.clone());
                        Some(v.clone())
                    } else if let Some(d) = &decl.default {
                        Some(self.expand(ins, d, &state.expansion_env())?)
                    } else if self.global_names.contains(&decl.name) {
                        self.globals.get(&decl.name).map(str::to_string)
                    } else {
                        None
                    };
                    match value {
                        Some(v) => {
                            shown.push(format!("{}={v}", decl.name));
                            state.args.set(&decl.name, v);
                        }
                        None => shown.push(decl.name.clone()),
                    }
                }
                step(format!("ARG {}", shown.join(" ")), Op::Config)
            }
            Command::Env { pairs } => {
                let mut shown = Vec::new();
                let mut expanded = Vec::new();
                for kv in pairs {
                    let key = self.expand(ins, &kv.key, &env)?;
                    if key.is_empty() {
                        return Err(self.err(ins, "ENV names can not be blank"));
                    }
                    let value = self.expand(ins, &kv.value, &env)?;
                    shown.push(format!("{key}={value}"));
                    expanded.push((key, value));
                }
                for (k, v) in expanded {
                    state.config.config.set_env_var(&k, &v);
                }
                step(format!("ENV {}", shown.join(" ")), Op::Config)
            }
            Command::Label { pairs } => {
                let mut shown = Vec::new();
                for kv in pairs {
                    let key = self.expand(ins, &kv.key, &env)?;
                    let value = self.expand(ins, &kv.value, &env)?;
                    shown.push(format!("{key}={value}"));
                    state
                        .config
                        .config
                        .labels
                        .get_or_insert_with(BTreeMap::new)
                        .insert(key, value);
                }
                step(format!("LABEL {}", shown.join(" ")), Op::Config)
            }
            Command::Workdir { path } => {
                let expanded = self.expand(ins, path, &env)?;
                if expanded.is_empty() {
                    return Err(self.err(ins, "WORKDIR requires a path"));
                }
                let abs = clean_path(&join_path(state.workdir(), &expanded));
                state.config.config.working_dir = Some(abs.clone());
                step(
                    format!("WORKDIR {abs}"),
                    Op::Workdir {
                        path: abs,
                        user: state.config.config.user.clone(),
                    },
                )
            }
            Command::User { user } => {
                let user = self.expand(ins, user, &env)?;
                state.config.config.user = Some(user.clone());
                step(format!("USER {user}"), Op::Config)
            }
            Command::Expose { ports } => {
                let mut keys = Vec::new();
                for p in ports {
                    let p = self.expand(ins, p, &env)?;
                    keys.extend(parse_port_spec(&p).map_err(|e| self.err(ins, e))?);
                }
                let exposed = state
                    .config
                    .config
                    .exposed_ports
                    .get_or_insert_with(BTreeMap::new);
                for k in &keys {
                    exposed.insert(k.clone(), EmptyObject {});
                }
                step(format!("EXPOSE {}", keys.join(" ")), Op::Config)
            }
            Command::Volume { paths } => {
                let mut shown = Vec::new();
                for p in paths {
                    let p = self.expand(ins, p, &env)?;
                    if p.trim().is_empty() {
                        return Err(self.err(ins, "VOLUME specified can not be an empty string"));
                    }
                    state
                        .config
                        .config
                        .volumes
                        .get_or_insert_with(BTreeMap::new)
                        .insert(p.clone(), EmptyObject {});
                    shown.push(p);
                }
                step(format!("VOLUME {}", json(&shown)), Op::Config)
            }
            Command::Stopsignal { signal } => {
                let signal = self.expand(ins, signal, &env)?;
                check_signal(&signal).map_err(|e| self.err(ins, e))?;
                state.config.config.stop_signal = Some(signal.clone());
                step(format!("STOPSIGNAL {signal}"), Op::Config)
            }
            Command::Maintainer { name } => {
                state.config.author = Some(name.clone());
                step(format!("MAINTAINER {name}"), Op::Config)
            }
            Command::Cmd { command } => {
                let args = self.command_args(command, state);
                state.config.config.cmd = Some(args.clone());
                // BuildKit marks every CMD so; Docker only reads it for Windows images.
                state.config.config.args_escaped = Some(true);
                state.cmd_set = true;
                step(format!("CMD {}", json(&args)), Op::Config)
            }
            Command::Entrypoint { command } => {
                let args = self.command_args(command, state);
                state.config.config.entrypoint = Some(args.clone());
                if !state.cmd_set {
                    state.config.config.cmd = None;
                }
                step(format!("ENTRYPOINT {}", json(&args)), Op::Config)
            }
            Command::Shell { shell } => {
                state.config.config.shell = Some(shell.clone());
                step(format!("SHELL {}", json(shell)), Op::Config)
            }
            Command::Healthcheck { check } => {
                let hc = self.healthcheck(ins, check, state)?;
                let shown = json(&hc.test);
                state.config.config.healthcheck = Some(hc);
                step(format!("HEALTHCHECK {shown}"), Op::Config)
            }
            Command::Onbuild { expression, .. } => {
                state
                    .config
                    .config
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(expression.clone());
                step(format!("ONBUILD {expression}"), Op::Config)
            }
            Command::Run { command } => {
                let (args, script) = self.run_args(ins, command, state)?;
                let mut run_env: Vec<(String, String)> = Vec::new();
                let mut build_args = Vec::new();
                let mut proxies = Vec::new();
                for (k, v) in state.args.iter() {
                    if state.config.config.env_var(k).is_none() {
                        run_env.push((k.to_string(), v.to_string()));
                        build_args.push(k.to_string());
                    }
                }
                for p in PROXY_ARGS {
                    if let Some(v) = self.options.build_args.get(*p)
                        && state.args.get(p).is_none()
                    {
                        run_env.push((p.to_string(), v.clone()));
                        proxies.push(p.to_string());
                    }
                }
                for kv in state.config.config.env.iter().flatten() {
                    let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
                    run_env.push((k.to_string(), v.to_string()));
                }
                let mounts = ins
                    .flag_values("mount")
                    .map(|m| self.expand(ins, m, &env))
                    .collect::<Result<Vec<_>, _>>()?;
                let network = ins
                    .flag("network")
                    .map(|n| self.expand(ins, n, &env))
                    .transpose()?;
                step(
                    format!("RUN {}", args.join(" ")),
                    Op::Run(RunOp {
                        args,
                        env: run_env,
                        build_args,
                        proxies,
                        user: state.config.config.user.clone(),
                        workdir: state.workdir().to_string(),
                        network,
                        mounts,
                        script,
                    }),
                )
            }
            Command::Copy { sources, dest } | Command::Add { sources, dest } => {
                let add = matches!(ins.command, Command::Add { .. });
                let op = self.copy_op(stage, ins, add, sources, dest, state, &env)?;
                let mut shown: Vec<String> = Vec::new();
                if let Some(f) = ins.flag("from") {
                    shown.push(format!("--from={f}"));
                }
                if let Some(c) = &op.chown {
                    shown.push(format!("--chown={c}"));
                }
                if let Some(m) = op.chmod {
                    shown.push(format!("--chmod={m:o}"));
                }
                for s in &op.sources {
                    shown.push(match s {
                        CopySource::Path(p) | CopySource::Url(p) => p.clone(),
                        CopySource::Heredoc { name, .. } => format!("<<{name}"),
                    });
                }
                shown.push(op.dest.clone());
                let keyword = if add { "ADD" } else { "COPY" };
                step(format!("{keyword} {}", shown.join(" ")), Op::Copy(op))
            }
        })
    }

    fn command_args(&self, command: &CommandLine, state: &StageState) -> Vec<String> {
        match command {
            CommandLine::Exec(args) => args.clone(),
            CommandLine::Shell(text) => {
                let mut args = state.shell();
                args.push(text.clone());
                args
            }
        }
    }

    /// RUN's argv, and the script file it runs, if any. Here-documents are given to the shell
    /// as BuildKit does: a command that is only `<<EOF` runs the document as its script, or,
    /// when the document starts with `#!`, runs it as a file of its own; otherwise the bodies
    /// follow the command line, so the shell reads each one where its `<<NAME` stands (and
    /// expands it, unless the delimiter was quoted).
    fn run_args(
        &self,
        ins: &Instruction,
        command: &CommandLine,
        state: &StageState,
    ) -> Result<(Vec<String>, Option<RunScript>), PlanError> {
        let (CommandLine::Shell(text), false) = (command, ins.heredocs.is_empty()) else {
            return Ok((self.command_args(command, state), None));
        };
        let mut args = state.shell();
        if let [doc] = ins.heredocs.as_slice()
            && is_lone_heredoc(text)
        {
            if doc.content.starts_with("#!") {
                if doc.name.is_empty() || doc.name.contains('/') || doc.name == ".." {
                    return Err(self.err(
                        ins,
                        format!(
                            "here-document name `{}` cannot name a script file; use a word such as EOF",
                            doc.name
                        ),
                    ));
                }
                let script = RunScript {
                    name: doc.name.clone(),
                    content: doc.content.clone(),
                };
                args.push(script.path());
                return Ok((args, Some(script)));
            }
            args.push(doc.content.clone());
            return Ok((args, None));
        }
        let mut script = text.clone();
        for doc in &ins.heredocs {
            script.push('\n');
            script.push_str(&doc.content);
            if !doc.content.is_empty() && !doc.content.ends_with('\n') {
                script.push('\n');
            }
            script.push_str(&doc.name);
        }
        args.push(script);
        Ok((args, None))
    }

    fn healthcheck(
        &self,
        ins: &Instruction,
        check: &Healthcheck,
        state: &StageState,
    ) -> Result<oci::Healthcheck, PlanError> {
        let test = match check {
            Healthcheck::None => {
                if !ins.flags.is_empty() {
                    return Err(self.err(ins, "HEALTHCHECK NONE takes no flags"));
                }
                return Ok(oci::Healthcheck {
                    test: vec!["NONE".to_string()],
                    ..Default::default()
                });
            }
            Healthcheck::Cmd(CommandLine::Exec(args)) => {
                let mut t = vec!["CMD".to_string()];
                t.extend(args.iter().cloned());
                t
            }
            Healthcheck::Cmd(CommandLine::Shell(text)) => {
                let _ = state;
                vec!["CMD-SHELL".to_string(), text.clone()]
            }
        };
        let duration = |name: &str, label: &str| -> Result<u64, PlanError> {
            match ins.flag(name) {
                None => Ok(0),
                Some(v) => {
                    let ns = parse_go_duration(v)
                        .map_err(|e| self.err(ins, format!("--{name}: {e}")))?;
                    let ns = u64::try_from(ns)
                        .map_err(|_| self.err(ins, format!("--{name} cannot be negative")))?;
                    if ns != 0 && ns < 1_000_000 {
                        return Err(
                            self.err(ins, format!("{label} \"{v}\" cannot be less than 1ms"))
                        );
                    }
                    Ok(ns)
                }
            }
        };
        let retries = match ins.flag("retries") {
            None => 0,
            Some(v) => {
                let n: i64 = v
                    .parse()
                    .map_err(|_| self.err(ins, format!("--retries: invalid number `{v}`")))?;
                if n < 0 {
                    return Err(self.err(ins, "--retries cannot be negative"));
                }
                n as u64
            }
        };
        Ok(oci::Healthcheck {
            test,
            interval: duration("interval", "Interval")?,
            timeout: duration("timeout", "Timeout")?,
            start_period: duration("start-period", "StartPeriod")?,
            start_interval: duration("start-interval", "StartInterval")?,
            retries,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_op(
        &mut self,
        stage: usize,
        ins: &Instruction,
        add: bool,
        sources: &[String],
        dest: &str,
        state: &StageState,
        env: &[(String, String)],
    ) -> Result<CopyOp, PlanError> {
        let from = match ins.flag("from") {
            None => CopyFrom::Context,
            Some(f) => self.copy_from(stage, ins, f)?,
        };
        let mut srcs = Vec::new();
        for s in sources {
            if let Some(name) = s.strip_prefix("<<") {
                let name = name
                    .trim_start_matches('-')
                    .trim_matches(|c| c == '"' || c == '\'');
                let doc = ins
                    .heredocs
                    .iter()
                    .find(|h| h.name == name)
                    .ok_or_else(|| self.err(ins, format!("no here-document named `{name}`")))?;
                let content = if doc.expand {
                    // The body is file content: variables expand, quotes stay, and the escape
                    // is always `\`, as in BuildKit.
                    Lexer::new('\\')
                        .skip_process_quotes(true)
                        .process_word(&doc.content, &env.to_vec())
                        .map_err(|e| {
                            self.err(ins, format!("failed to expand here-document `{name}`: {e}"))
                        })?
                } else {
                    doc.content.clone()
                };
                srcs.push(CopySource::Heredoc {
                    name: doc.name.clone(),
                    content,
                });
                continue;
            }
            let s = self.expand(ins, s, env)?;
            if add
                && (s.starts_with("http://") || s.starts_with("https://") || s.starts_with("git@"))
            {
                srcs.push(CopySource::Url(s));
            } else {
                srcs.push(CopySource::Path(s));
            }
        }
        let dest = self.expand(ins, dest, env)?;
        let chown = ins
            .flag("chown")
            .map(|c| self.expand(ins, c, env))
            .transpose()?
            .filter(|c| !c.is_empty());
        let chmod = match ins.flag("chmod") {
            Some(m) => {
                let m = self.expand(ins, m, env)?;
                Some(parse_chmod(&m).map_err(|e| self.err(ins, e))?)
            }
            None => None,
        };
        let excludes = ins
            .flag_values("exclude")
            .map(|e| self.expand(ins, e, env))
            .collect::<Result<Vec<_>, _>>()?;
        let is_true = |name: &str| ins.flag(name).is_some_and(|v| v != "false");
        Ok(CopyOp {
            add,
            sources: srcs,
            dest: resolve_dest(state.workdir(), &dest),
            from,
            chown,
            chmod,
            excludes,
            parents: is_true("parents"),
            link: is_true("link"),
        })
    }

    /// Resolves `--from`: a stage name, a stage index, or an image. As in BuildKit, the value
    /// is not expanded, and only stages defined before this one can be copied from.
    fn copy_from(
        &mut self,
        stage: usize,
        ins: &Instruction,
        from: &str,
    ) -> Result<CopyFrom, PlanError> {
        let no_vars: Vec<(String, String)> = Vec::new();
        if self.lexer.process_word(from, &no_vars).ok().as_deref() != Some(from) {
            return Err(self.err(
                ins,
                "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround",
            ));
        }
        let target = if let Ok(n) = from.parse::<usize>() {
            if n >= self.sources.len() {
                return Err(self.err(
                    ins,
                    format!(
                        "invalid stage index `{n}`: the Dockerfile has {} stages",
                        self.sources.len()
                    ),
                ));
            }
            Some(n)
        } else {
            let lower = from.to_lowercase();
            self.sources
                .iter()
                .position(|s| s.name.as_deref() == Some(lower.as_str()))
        };
        match target {
            Some(j) if j == stage => Err(PlanError::Cycle {
                stage: from.to_string(),
                location: ins.location(&self.file),
            }),
            Some(j) if j > stage => {
                // BuildKit reports a loop first; planning the later stage finds one if any.
                if let Err(e @ PlanError::Cycle { .. }) = self.plan_stage(j, Some(ins)) {
                    return Err(e);
                }
                let current = match &self.sources[stage].name {
                    Some(n) => n.clone(),
                    None => format!("stage-{stage}"),
                };
                Err(self.err(
                    ins,
                    format!(
                        "cannot copy from stage `{from}`, it needs to be defined before current stage `{current}`"
                    ),
                ))
            }
            Some(j) => {
                self.plan_stage(j, Some(ins))?;
                Ok(CopyFrom::Stage(j))
            }
            None => {
                let r: Reference = from.parse().map_err(|e: oci::reference::ReferenceError| {
                    self.err(ins, format!("`--from={from}` names no stage, and {e}"))
                })?;
                Ok(CopyFrom::Image(r))
            }
        }
    }

    pub(super) fn finish(
        mut self,
        target: usize,
        options: &PlanOptions,
    ) -> Result<Planned, PlanError> {
        if let Some(stage) = self.planned.get_mut(&target)
            && !options.labels.is_empty()
        {
            let labels = stage.config.config.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in &options.labels {
                labels.insert(k.clone(), v.clone());
            }
        }
        Ok(Planned {
            stages: self.planned,
            order: self.order,
            consumed_args: self.consumed,
        })
    }
}

/// Whether a RUN command line is nothing but one here-document opener (`<<EOF`, `<<-"EOF"`).
fn is_lone_heredoc(text: &str) -> bool {
    let word = text.trim();
    word.starts_with("<<") && !word.contains(char::is_whitespace)
}

fn json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Joins `path` to `base` unless it is absolute.
fn join_path(base: &str, path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{}/{path}", base.trim_end_matches('/'))
    }
}

/// Lexically cleans an absolute path (`/a/./b/../c` → `/a/c`), as Go's `path.Clean`.
pub(crate) fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The absolute COPY destination: relative to WORKDIR, with a trailing `/` kept (or added for
/// `.`-like destinations) because it means "a directory".
fn resolve_dest(workdir: &str, dest: &str) -> String {
    let is_dir = dest.ends_with('/') || dest == "." || dest.ends_with("/.") || dest == "..";
    let cleaned = clean_path(&join_path(workdir, dest));
    if is_dir && cleaned != "/" {
        format!("{cleaned}/")
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_resolve_against_workdir() {
        assert_eq!(resolve_dest("/app", "."), "/app/");
        assert_eq!(resolve_dest("/app", "src/"), "/app/src/");
        assert_eq!(resolve_dest("/app", "x.txt"), "/app/x.txt");
        assert_eq!(resolve_dest("/app", "/etc/conf"), "/etc/conf");
        assert_eq!(resolve_dest("/", "."), "/");
        assert_eq!(clean_path("/a/./b/../c"), "/a/c");
        assert_eq!(clean_path("/../x"), "/x");
    }
}
