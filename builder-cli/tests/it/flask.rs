//! The classic course example, end to end: `testdata/flask` (a Flask app on `python:3.11-slim`,
//! `pip install` in a RUN step, a HEALTHCHECK, an unprivileged user, a `.env` kept out by
//! `.dockerignore`) is built by kiln with its base pulled through a registry mirror, pushed, read
//! back with skopeo and umoci, and run by podman, which must answer `from zero to hero` over HTTP.
//!
//! No Docker Hub: the base is `scripts/make-python-image.sh`'s Debian bookworm stand-in, pushed to a
//! loopback registry as `library/python:3.11-slim` and reached through `--registry-mirror`. Only
//! PyPI is on the network. This machine reaches it through a TLS-intercepting proxy whose CA only
//! the host trusts; Debian's pip reads the system bundle, so mounting the host's bundle read-only
//! over the image's with `--volume` is all a RUN step needs (no PIP_* variable, no build arg).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::args;
use crate::common::{Sandbox, json, manifest_and_config, run, testdata, unpack};
use crate::support::registry::free_port;
use crate::support::{TestRegistry, repo_root};

/// The host's CA bundle: it trusts the proxy in front of PyPI, the image's own does not.
const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// How long the container may take to answer after `podman run` returned.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// The python base layout, built once per machine by `scripts/make-python-image.sh` (debootstrap;
/// minutes the first time) and cached outside the checkout.
fn python_layout() -> PathBuf {
    let script = repo_root().join("scripts/make-python-image.sh");
    let started = Instant::now();
    let out = run(Command::new("bash").arg(&script)).success();
    eprintln!(
        "python base layout ready in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    PathBuf::from(out.stdout.trim())
}

/// podman with a private storage, run root and temporary directory inside the sandbox, so the
/// host's images and containers are untouched; runc, because crun refuses this machine's mixed
/// cgroup v1/v2 setup.
struct Podman {
    dir: PathBuf,
}

impl Podman {
    fn new(dir: PathBuf) -> Podman {
        for sub in ["root", "runroot", "tmp"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        Podman { dir }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .args([
                "--runtime",
                "runc",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ]);
        cmd
    }

    /// Runs podman with `args`; it must succeed. Returns stdout.
    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let mut cmd = self.command();
        cmd.args(args);
        let out = run(&mut cmd);
        assert_eq!(
            out.code, 0,
            "podman {args:?} failed\nstdout:\n{}\nstderr:\n{}",
            out.stdout, out.stderr
        );
        out.stdout
    }
}

/// A running container, stopped and removed (with the images podman pulled and any mount left
/// in the private storage) when the test ends, passing or not.
struct Container<'a> {
    podman: &'a Podman,
    id: String,
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        for args in [
            &["stop", "--time", "2", self.id.as_str()][..],
            &["rm", "--force", "--ignore", self.id.as_str()],
            &["rmi", "--all", "--force"],
        ] {
            let _ = run(self.podman.command().args(args));
        }
        let root = self.podman.dir.display().to_string();
        let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mut left: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(1))
            .filter(|m| m.starts_with(&root))
            .collect();
        left.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for mount in left {
            let _ = Command::new("umount").args(["-l", mount]).status();
        }
    }
}

/// Every path under `root` whose last component is `name`.
fn find_named(root: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name() == name {
                found.push(entry.path());
            }
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            }
        }
    }
    found
}

/// `GET url` with curl; the body when it answered 2xx.
fn get(url: &str) -> Option<String> {
    let out = run(Command::new("curl").args([
        "--silent",
        "--fail",
        "--noproxy",
        "*",
        "--max-time",
        "2",
        url,
    ]));
    (out.code == 0).then_some(out.stdout)
}

#[test]
fn the_flask_example_builds_pushes_and_answers_over_http() {
    let started = Instant::now();
    let layout = python_layout();
    let registry = TestRegistry::plain();
    registry.push_image(&layout, "library/python:3.11-slim");
    let sb = Sandbox::new();
    let context = testdata("flask");
    assert!(
        context.join(".env").is_file(),
        "the example's .env is part of the context"
    );

    let dest = registry.reference("course/flask:1");
    let build_started = Instant::now();
    let mut cmd = sb.kiln();
    cmd.env("DOCKER_CONFIG", sb.path("docker"))
        .env("REGISTRY_AUTH_FILE", sb.path("no-podman-auth.json"))
        .args(args![
            "build",
            "--store",
            sb.store(),
            "--cache-dir",
            sb.path("cache"),
            "--registry-mirror",
            &registry.host,
            "--volume",
            format!("{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"),
            "--push",
            "-t",
            &dest,
            &context
        ]);
    let built = run(&mut cmd).success();
    eprintln!(
        "kiln build --push in {:.1}s",
        build_started.elapsed().as_secs_f64()
    );
    let digest = built.digest();
    assert!(
        built.stderr.contains("Successfully installed") && built.stderr.contains("flask-3.0.3"),
        "pip's output is streamed:\n{}",
        built.stderr
    );
    assert!(
        built.stderr.contains("mounted from library/python"),
        "the base came from the mirror, so its layer is mounted, not uploaded:\n{}",
        built.stderr
    );
    assert_eq!(registry.inspect("course/flask:1")["Digest"], digest);

    // What was pushed, read back by skopeo and unpacked by umoci.
    let pulled = sb.path("pulled");
    registry.pull_image("course/flask:1", &pulled, "flask:1");
    let (manifest, config) = manifest_and_config(&pulled, "flask:1");
    assert_eq!(
        manifest["layers"].as_array().unwrap().len(),
        6,
        "base + WORKDIR + COPY + RUN + COPY + RUN"
    );
    let c = &config["config"];
    assert_eq!(c["User"], "appuser");
    assert_eq!(c["WorkingDir"], "/app");
    assert_eq!(c["Cmd"], serde_json::json!(["python", "app.py"]));
    assert_eq!(c["ExposedPorts"], serde_json::json!({"5000/tcp": {}}));
    assert_eq!(
        c["Healthcheck"],
        serde_json::json!({
            "Test": ["CMD-SHELL", "curl -f http://localhost:5000/health || exit 1"],
            "Interval": 30_000_000_000u64,
        })
    );
    let env = c["Env"].as_array().unwrap();
    assert!(
        env.iter()
            .all(|v| !v.as_str().unwrap().starts_with("PIP_CERT")),
        "nothing of the host's pip setup reaches the image: {env:?}"
    );

    let root = unpack(&pulled, "flask:1", &sb.path("bundle"));
    assert_eq!(
        find_named(&root, ".env"),
        Vec::<PathBuf>::new(),
        ".dockerignore keeps .env out"
    );
    assert_eq!(
        fs::read(root.join("app/app.py")).unwrap(),
        fs::read(context.join("app.py")).unwrap()
    );
    assert!(
        root.join("usr/local/lib/python3.11/dist-packages/flask/__init__.py")
            .is_file(),
        "pip installed flask into the image"
    );
    assert_ne!(
        fs::read(root.join("etc/ssl/certs/ca-certificates.crt")).unwrap(),
        fs::read(HOST_CA_BUNDLE).unwrap(),
        "the host's CA bundle was mounted over the image's, never written into a layer"
    );
    use std::os::unix::fs::MetadataExt;
    let passwd = fs::read_to_string(root.join("etc/passwd")).unwrap();
    let uid: u32 = passwd
        .lines()
        .find_map(|l| l.strip_prefix("appuser:x:"))
        .and_then(|rest| rest.split(':').next())
        .expect("adduser created appuser")
        .parse()
        .unwrap();
    assert_eq!(
        fs::metadata(root.join("app/app.py")).unwrap().uid(),
        uid,
        "chown -R appuser /app"
    );

    // The unpacked copies are large (the base is ~250 MB unpacked); podman needs the room.
    for dir in ["bundle", "pulled", "cache"] {
        fs::remove_dir_all(sb.path(dir)).unwrap();
    }

    // A real runtime runs what was pushed.
    let podman = Podman::new(sb.path("podman"));
    let port = free_port();
    let run_started = Instant::now();
    let id = podman
        .ok(&[
            "run",
            "--quiet",
            "--detach",
            "--rm",
            "--publish",
            &format!("127.0.0.1:{port}:5000"),
            "--ulimit",
            "nofile=20000:20000",
            "--ulimit",
            "nproc=32768:32768",
            "--tls-verify=false",
            &dest,
        ])
        .trim()
        .to_string();
    let container = Container {
        podman: &podman,
        id,
    };
    let url = format!("http://127.0.0.1:{port}/");
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    let answer = loop {
        if let Some(body) = get(&url) {
            break body;
        }
        if Instant::now() > deadline {
            let logs = run(podman.command().args(["logs", &container.id]));
            panic!(
                "{url} did not answer within {ANSWER_TIMEOUT:?}; container logs:\n{}{}",
                logs.stdout, logs.stderr
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(answer, "from zero to hero");
    eprintln!(
        "podman pull + run answered in {:.1}s",
        run_started.elapsed().as_secs_f64()
    );

    // The HEALTHCHECK's command works inside the container, as the user it runs as.
    let health = podman.ok(&[
        "exec",
        &container.id,
        "sh",
        "-c",
        "id -un && curl -f http://localhost:5000/health",
    ]);
    assert_eq!(health.lines().next(), Some("appuser"));
    let body = health.lines().nth(1).unwrap_or_default();
    assert_eq!(json(body)["status"], "ok", "{health}");
    drop(container);
    eprintln!("flask example in {:.1}s", started.elapsed().as_secs_f64());
}
