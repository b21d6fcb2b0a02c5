//! Planning semantics against Docker's Dockerfile reference and BuildKit's dispatch: ARG scoping
//! and build args, the predefined platform args, ENV, and the config each instruction leaves.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod semantics_support;

use builder_core::oci::ImageConfig;
use builder_core::plan::{Base, CopyFrom, CopySource, Op};
use semantics_support::{FakeImages, args, plan, plan_err, plan_with};

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn label(p: &builder_core::plan::Plan, key: &str) -> Option<String> {
    p.target_stage()
        .config
        .config
        .labels
        .as_ref()
        .and_then(|l| l.get(key).cloned())
}

fn env(p: &builder_core::plan::Plan) -> Vec<String> {
    p.target_stage()
        .config
        .config
        .env
        .clone()
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// ARG

#[test]
fn global_arg_is_usable_in_from() {
    let p = plan("ARG BASE=builder\nFROM scratch AS builder\nFROM ${BASE}\nLABEL x=1\n");
    assert_eq!(p.target_stage().base, Base::Stage(0));
    let p = plan_with(
        "ARG BASE=nope\nFROM scratch AS builder\nFROM scratch AS other\nFROM $BASE\n",
        &FakeImages::default(),
        |o| o.build_args = args(&["BASE=other"]),
    )
    .unwrap();
    assert_eq!(p.target_stage().base, Base::Stage(1));
}

#[test]
fn global_arg_is_not_visible_in_a_stage_until_redeclared() {
    let p = plan("ARG V=global\nFROM scratch\nLABEL a=\"[$V]\"\nARG V\nLABEL b=\"[$V]\"\n");
    assert_eq!(label(&p, "a").as_deref(), Some("[]"));
    assert_eq!(label(&p, "b").as_deref(), Some("[global]"));
}

#[test]
fn build_arg_overrides_defaults_global_and_local() {
    let df =
        "ARG G=gdefault\nFROM scratch\nARG G\nARG L=ldefault\nARG N\nLABEL g=$G l=$L n=\"[$N]\"\n";
    let p = plan(df);
    assert_eq!(label(&p, "g").as_deref(), Some("gdefault"));
    assert_eq!(label(&p, "l").as_deref(), Some("ldefault"));
    assert_eq!(label(&p, "n").as_deref(), Some("[]"));
    let p = plan_with(df, &FakeImages::default(), |o| {
        o.build_args = args(&["G=gcli", "L=lcli", "N=ncli"])
    })
    .unwrap();
    assert_eq!(label(&p, "g").as_deref(), Some("gcli"));
    assert_eq!(label(&p, "l").as_deref(), Some("lcli"));
    assert_eq!(label(&p, "n").as_deref(), Some("[ncli]"));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn a_stage_default_wins_over_the_global_default() {
    let p = plan("ARG V=global\nFROM scratch\nARG V=local\nLABEL v=$V\n");
    assert_eq!(label(&p, "v").as_deref(), Some("local"));
}

#[test]
fn arg_defaults_reference_earlier_args_and_env() {
    let p = plan("ARG A=x\nARG B=$A-y\nFROM scratch\nARG B\nLABEL b=$B\n");
    assert_eq!(label(&p, "b").as_deref(), Some("x-y"));
    let p = plan("FROM scratch\nENV E=env\nARG A=a\nARG B=${A}-${E}\nLABEL b=$B\n");
    assert_eq!(label(&p, "b").as_deref(), Some("a-env"));
}

#[test]
fn env_overrides_an_arg_of_the_same_name() {
    // Reference, "Using ARG variables": the ENV value wins, whatever --build-arg says.
    let df = "FROM scratch\nARG V=arg\nENV V=env\nLABEL v=$V\n";
    let p = plan_with(df, &FakeImages::default(), |o| {
        o.build_args = args(&["V=cli"])
    })
    .unwrap();
    assert_eq!(label(&p, "v").as_deref(), Some("env"));
    // Declared after the ENV, the ARG still does not shadow it (the documented rule).
    let p = plan("FROM scratch\nENV V=env\nARG V=arg\nLABEL v=$V\n");
    assert_eq!(label(&p, "v").as_deref(), Some("env"));
}

#[test]
fn unused_build_args_are_reported_but_proxy_args_are_not() {
    let p = plan_with(
        "ARG USED_IN_FROM\nFROM scratch\nARG USED\n",
        &FakeImages::default(),
        |o| {
            o.build_args = args(&[
                "USED=1",
                "USED_IN_FROM=1",
                "UNUSED=1",
                "HTTP_PROXY=http://p",
                "no_proxy=x",
            ])
        },
    )
    .unwrap();
    assert_eq!(
        p.warnings,
        ["one or more build args were not consumed: UNUSED"]
    );
}

#[test]
fn platform_args_work_in_from_without_declaration() {
    let df = "FROM scratch AS base-amd64\nFROM scratch AS base-arm64\nFROM base-${TARGETARCH}\n";
    let p = plan(df);
    assert_eq!(p.target_stage().base, Base::Stage(0));
    let p = plan_with(df, &FakeImages::default(), |o| {
        o.platform = "linux/arm64".parse().unwrap()
    })
    .unwrap();
    assert_eq!(p.target_stage().base, Base::Stage(1));
    let p = plan("FROM --platform=$BUILDPLATFORM scratch\n");
    assert_eq!(p.target_stage().platform.to_string(), "linux/arm64/v8");
}

#[test]
fn platform_args_are_visible_in_a_stage_once_declared() {
    let p = plan(
        "FROM scratch\nLABEL before=\"[$TARGETARCH]\"\n\
         ARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM BUILDOS BUILDARCH BUILDVARIANT TARGETSTAGE\n\
         LABEL tp=$TARGETPLATFORM to=$TARGETOS ta=$TARGETARCH tv=\"[$TARGETVARIANT]\" \
         bp=$BUILDPLATFORM bo=$BUILDOS ba=$BUILDARCH bv=$BUILDVARIANT ts=$TARGETSTAGE\n",
    );
    let l = |k: &str| label(&p, k).unwrap();
    assert_eq!(l("before"), "[]");
    assert_eq!(l("tp"), "linux/amd64");
    assert_eq!(l("to"), "linux");
    assert_eq!(l("ta"), "amd64");
    assert_eq!(l("tv"), "[]");
    assert_eq!(l("bp"), "linux/arm64/v8");
    assert_eq!(l("bo"), "linux");
    assert_eq!(l("ba"), "arm64");
    assert_eq!(l("bv"), "v8");
    // BuildKit's TARGETSTAGE is the target's name, `default` when the target has none.
    assert_eq!(l("ts"), "default");
    let p = plan("FROM scratch AS final\nARG TARGETSTAGE\nLABEL ts=$TARGETSTAGE\n");
    assert_eq!(label(&p, "ts").as_deref(), Some("final"));
}

#[test]
fn build_args_override_platform_args() {
    let p = plan_with(
        "FROM scratch\nARG TARGETARCH\nLABEL ta=$TARGETARCH\n",
        &FakeImages::default(),
        |o| o.build_args = args(&["TARGETARCH=riscv64"]),
    )
    .unwrap();
    assert_eq!(label(&p, "ta").as_deref(), Some("riscv64"));
}

#[test]
fn arg_values_never_reach_the_config_env() {
    let p = plan("ARG G=1\nFROM scratch\nARG G\nARG L=2\nARG TARGETARCH\nENV E=3\n");
    assert_eq!(env(&p), [DEFAULT_PATH, "E=3"]);
}

// ---------------------------------------------------------------------------------------------
// ENV

#[test]
fn env_pairs_expand_with_the_values_before_the_instruction() {
    // Reference, "Environment replacement": `ENV abc=bye def=$abc` gives def the old abc.
    let p = plan("FROM scratch\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n");
    assert_eq!(env(&p), [DEFAULT_PATH, "abc=bye", "def=hello", "ghi=bye"]);
}

#[test]
fn env_legacy_form_quotes_and_escapes() {
    let p = plan(
        "FROM scratch\nENV legacy the rest  of the line\n\
         ENV q=\"hello world\" e=a\\ b s='$NOPE'\n",
    );
    assert_eq!(
        env(&p),
        [
            DEFAULT_PATH,
            "legacy=the rest  of the line",
            "q=hello world",
            "e=a b",
            "s=$NOPE",
        ]
    );
}

#[test]
fn env_replaces_in_place_and_keeps_the_base_images_env() {
    let mut images = FakeImages::default();
    let mut base = ImageConfig::default();
    base.config.env = Some(vec!["PATH=/opt/bin".into(), "LANG=C".into()]);
    images.images.insert("base:latest".into(), base);
    let p = plan_with(
        "FROM base\nENV A=1 LANG=C.UTF-8\nENV PATH=$PATH:/x A=2\n",
        &images,
        |_| {},
    )
    .unwrap();
    assert_eq!(env(&p), ["PATH=/opt/bin:/x", "LANG=C.UTF-8", "A=2"]);
}

#[test]
fn path_is_always_set_as_buildkit_does() {
    let p = plan("FROM scratch\nLABEL a=b\n");
    assert_eq!(env(&p), [DEFAULT_PATH]);
    let p = plan("FROM scratch\nENV PATH=/only\n");
    assert_eq!(env(&p), ["PATH=/only"]);
}

// ---------------------------------------------------------------------------------------------
// WORKDIR, USER and destinations (plan level)

#[test]
fn workdir_chains_relative_paths_and_expands_variables() {
    let p = plan("FROM scratch\nWORKDIR /a\nWORKDIR b\nENV D=dir\nWORKDIR ./$D/../c/\n");
    assert_eq!(
        p.target_stage().config.config.working_dir.as_deref(),
        Some("/a/b/c")
    );
    let ops: Vec<&str> = p
        .target_stage()
        .steps
        .iter()
        .map(|s| s.created_by.as_str())
        .collect();
    assert!(ops.contains(&"WORKDIR /a/b/c"), "{ops:?}");
}

#[test]
fn copy_destinations_join_the_workdir() {
    let p = plan(
        "FROM scratch\nWORKDIR /app\nCOPY a .\nCOPY a sub/\nCOPY a file\nCOPY a /abs\nCOPY a ..\n",
    );
    let dests: Vec<String> = p
        .target_stage()
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            Op::Copy(c) => Some(c.dest.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(dests, ["/app/", "/app/sub/", "/app/file", "/abs", "/"]);
}

// ---------------------------------------------------------------------------------------------
// CMD, ENTRYPOINT, SHELL and the other config instructions

#[test]
fn shell_form_goes_through_shell() {
    let p = plan(
        "FROM scratch\nCMD echo hi\nSHELL [\"/bin/bash\", \"-euc\"]\nENTRYPOINT run it\nHEALTHCHECK CMD curl -f x\n",
    );
    let c = &p.target_stage().config.config;
    assert_eq!(
        c.entrypoint.as_deref().unwrap(),
        ["/bin/bash", "-euc", "run it"]
    );
    // ENTRYPOINT after CMD in the same stage keeps that CMD.
    assert_eq!(c.cmd.as_deref().unwrap(), ["/bin/sh", "-c", "echo hi"]);
    assert_eq!(c.shell.as_deref().unwrap(), ["/bin/bash", "-euc"]);
    assert_eq!(c.args_escaped, Some(true));
    // HEALTHCHECK's shell form is CMD-SHELL, not the SHELL.
    assert_eq!(
        c.healthcheck.as_ref().unwrap().test,
        ["CMD-SHELL", "curl -f x"]
    );
}

#[test]
fn entrypoint_resets_the_inherited_cmd_only() {
    let p = plan("FROM scratch AS base\nCMD [\"base\"]\nFROM base\nENTRYPOINT [\"ep\"]\n");
    assert_eq!(p.target_stage().config.config.cmd, None);
    let p = plan("FROM scratch AS base\nCMD [\"base\"]\nFROM base\nLABEL x=y\n");
    assert_eq!(
        p.target_stage().config.config.cmd.as_deref().unwrap(),
        ["base"]
    );
    let p = plan(
        "FROM scratch AS base\nCMD [\"base\"]\nFROM base\nCMD [\"mine\"]\nENTRYPOINT [\"ep\"]\n",
    );
    assert_eq!(
        p.target_stage().config.config.cmd.as_deref().unwrap(),
        ["mine"]
    );
    let p = plan("FROM scratch\nENTRYPOINT [\"ep\"]\nCMD [\"arg\"]\n");
    assert_eq!(
        p.target_stage().config.config.cmd.as_deref().unwrap(),
        ["arg"]
    );
}

#[test]
fn healthcheck_flags_and_none() {
    let p = plan(
        "FROM scratch\nHEALTHCHECK --interval=30s --timeout=1m30s --start-period=5s --start-interval=2s --retries=3 CMD [\"/check\", \"-q\"]\n",
    );
    let h = p.target_stage().config.config.healthcheck.clone().unwrap();
    assert_eq!(h.test, ["CMD", "/check", "-q"]);
    assert_eq!(h.interval, 30_000_000_000);
    assert_eq!(h.timeout, 90_000_000_000);
    assert_eq!(h.start_period, 5_000_000_000);
    assert_eq!(h.start_interval, 2_000_000_000);
    assert_eq!(h.retries, 3);
    let p = plan("FROM scratch AS a\nHEALTHCHECK CMD x\nFROM a\nHEALTHCHECK NONE\n");
    let h = p.target_stage().config.config.healthcheck.clone().unwrap();
    assert_eq!(h.test, ["NONE"]);
}

#[test]
fn expose_ranges_and_protocols() {
    let p = plan("FROM scratch\nENV P=8080\nEXPOSE 80 53/udp 7000-7002/tcp $P/SCTP\n");
    let ports: Vec<&String> = p
        .target_stage()
        .config
        .config
        .exposed_ports
        .as_ref()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        ports,
        [
            "53/udp",
            "7000/tcp",
            "7001/tcp",
            "7002/tcp",
            "80/tcp",
            "8080/sctp"
        ]
    );
    assert!(plan_err("FROM scratch\nEXPOSE 80/foo\n").contains("invalid proto"));
}

#[test]
fn volume_json_and_words() {
    let p = plan("FROM scratch\nENV D=/data\nVOLUME [\"/a\", \"$D\"]\nVOLUME /b /c\n");
    let v: Vec<&String> = p
        .target_stage()
        .config
        .config
        .volumes
        .as_ref()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(v, ["/a", "/b", "/c", "/data"]);
}

#[test]
fn stopsignal_maintainer_labels_user() {
    let p = plan(
        "FROM scratch\nMAINTAINER Jane <jane@example.com>\nSTOPSIGNAL SIGQUIT\n\
         LABEL a=1 \"b c\"=\"two words\" d='$NOPE'\nUSER app:staff\n",
    );
    let c = &p.target_stage().config;
    assert_eq!(c.author.as_deref(), Some("Jane <jane@example.com>"));
    assert_eq!(c.config.stop_signal.as_deref(), Some("SIGQUIT"));
    assert_eq!(c.config.user.as_deref(), Some("app:staff"));
    let labels = c.config.labels.clone().unwrap();
    assert_eq!(labels["a"], "1");
    assert_eq!(labels["b c"], "two words");
    assert_eq!(labels["d"], "$NOPE");
}

#[test]
fn cli_labels_apply_to_the_target_only() {
    let p = plan_with(
        "FROM scratch AS base\nLABEL from=base over=base\nFROM base AS final\nLABEL over=dockerfile\n",
        &FakeImages::default(),
        |o| {
            o.labels = args(&["over=cli", "new=cli"]);
            o.target = Some("final".into());
        },
    )
    .unwrap();
    assert_eq!(label(&p, "over").as_deref(), Some("cli"));
    assert_eq!(label(&p, "new").as_deref(), Some("cli"));
    assert_eq!(label(&p, "from").as_deref(), Some("base"));
    let base = &p.stages[&0].config.config.labels.clone().unwrap();
    assert_eq!(base.get("new"), None);
    assert_eq!(base["over"], "base");
}

// ---------------------------------------------------------------------------------------------
// ONBUILD

#[test]
fn onbuild_triggers_run_in_the_child_and_are_cleared() {
    let p = plan(
        "FROM scratch AS base\nONBUILD ENV FROM_TRIGGER=1\nONBUILD COPY trig /trig\nLABEL base=1\n\
         FROM base\nLABEL child=1\n",
    );
    let base = &p.stages[&0];
    assert_eq!(
        base.config.config.on_build.as_deref().unwrap(),
        ["ENV FROM_TRIGGER=1", "COPY trig /trig"]
    );
    let child = p.target_stage();
    assert_eq!(child.config.config.on_build, None);
    assert_eq!(child.config.config.env_var("FROM_TRIGGER"), Some("1"));
    // The triggers run first, before the child's own instructions.
    let ops: Vec<&str> = child.steps.iter().map(|s| s.created_by.as_str()).collect();
    assert_eq!(ops[..2], ["ENV FROM_TRIGGER=1", "COPY trig /trig"]);
}

#[test]
fn onbuild_of_a_base_image_runs() {
    let mut images = FakeImages::default();
    let mut base = ImageConfig::default();
    base.config.on_build = Some(vec!["LABEL onbuild=yes".into()]);
    images.images.insert("base:latest".into(), base);
    let p = plan_with("FROM base\n", &images, |_| {}).unwrap();
    assert_eq!(label(&p, "onbuild").as_deref(), Some("yes"));
    assert_eq!(p.target_stage().config.config.on_build, None);
}

// ---------------------------------------------------------------------------------------------
// Stages

#[test]
fn target_picks_a_stage_and_unneeded_stages_are_not_planned() {
    let p = plan_with(
        "FROM scratch AS a\nFROM unresolvable-image AS b\nFROM a AS c\nFROM scratch AS d\n",
        &FakeImages::default(),
        |o| o.target = Some("C".into()),
    )
    .unwrap();
    assert_eq!(p.target, 2);
    assert_eq!(p.order, [0, 2]);
    assert!(!p.stages.contains_key(&1));
    let e = plan_with("FROM scratch AS a\n", &FakeImages::default(), |o| {
        o.target = Some("zzz".into())
    })
    .unwrap_err();
    assert!(e.to_string().contains("`zzz`"), "{e}");
}

#[test]
fn copy_from_by_name_index_and_image() {
    let p = plan(
        "FROM scratch AS first\nFROM scratch\nCOPY --from=first /a /a\nCOPY --from=0 /b /b\nCOPY --from=alpine:3.20 /c /c\n",
    );
    let froms: Vec<CopyFrom> = p
        .target_stage()
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            Op::Copy(c) => Some(c.from.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(froms[0], CopyFrom::Stage(0));
    assert_eq!(froms[1], CopyFrom::Stage(0));
    assert!(matches!(&froms[2], CopyFrom::Image(r) if r.familiar() == "alpine:3.20"));
}

#[test]
fn copy_from_cycles_name_the_stage() {
    let e = plan_err(
        "FROM scratch AS a\nCOPY --from=b /x /x\nFROM scratch AS b\nCOPY --from=a /y /y\n",
    );
    assert!(e.contains("circular dependency detected on stage"), "{e}");
    assert!(e.contains("`a`") || e.contains("`b`"), "{e}");
    let e = plan_err("FROM scratch AS self\nCOPY --from=self /x /x\n");
    assert!(
        e.contains("circular dependency detected on stage `self`"),
        "{e}"
    );
}

#[test]
fn copy_from_a_later_stage_is_refused_as_buildkit_does() {
    let e = plan_err("FROM scratch AS a\nCOPY --from=b /x /x\nFROM scratch AS b\nFROM a\n");
    assert!(
        e.contains("cannot copy from stage `b`, it needs to be defined before current stage `a`"),
        "{e}"
    );
}

#[test]
fn copy_from_is_not_expanded() {
    let e = plan_err("FROM scratch AS a\nFROM scratch\nARG S=a\nCOPY --from=$S /x /x\n");
    assert!(
        e.contains("variable expansion is not supported for --from"),
        "{e}"
    );
}

#[test]
fn heredoc_sources_expand_unless_the_delimiter_is_quoted() {
    let p = plan(
        "FROM scratch\nENV W=world\nCOPY <<EOF /a\nhello \"$W\" 'x'\nEOF\nCOPY <<'EOF' /b\nhello $W\nEOF\n",
    );
    let contents: Vec<String> = p
        .target_stage()
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            Op::Copy(c) => match &c.sources[0] {
                CopySource::Heredoc { content, .. } => Some(content.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    // Quotes in the body belong to the file: BuildKit expands it without quote processing.
    assert_eq!(contents, ["hello \"world\" 'x'\n", "hello $W\n"]);
}

#[test]
fn a_shebang_heredoc_runs_as_a_script_file_keyed_by_its_content() {
    let run_of = |dockerfile: &str| {
        let p = plan(dockerfile);
        let step = p.target_stage().steps.last().unwrap().clone();
        let Op::Run(run) = &step.op else {
            panic!("not a RUN: {:?}", step.op)
        };
        (run.clone(), step.op.canonical().unwrap())
    };
    let (run, key) = run_of("FROM scratch\nRUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\n");
    assert_eq!(run.args, ["/bin/sh", "-c", "/dev/pipes/EOF"]);
    let script = run.script.unwrap();
    assert_eq!(script.name, "EOF");
    assert_eq!(script.content, "#!/usr/bin/env python3\nprint(1)\n");
    // The argv is the same whatever the script says; the key must not be.
    let (_, changed) = run_of("FROM scratch\nRUN <<EOF\n#!/usr/bin/env python3\nprint(2)\nEOF\n");
    assert_ne!(key, changed);
    // Without `#!` the document is the shell's script, and there is no file.
    let (plain, _) = run_of("FROM scratch\nRUN <<EOF\necho hi\nEOF\n");
    assert_eq!(plain.args, ["/bin/sh", "-c", "echo hi\n"]);
    assert!(plain.script.is_none());
}
