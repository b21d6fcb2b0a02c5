//! `dockerfile::parse` on a generated 1,000-line Dockerfile (goal: under 5 ms).
//!
//! The file is what a large monorepo might have: a dozen build stages, each with `ARG`s,
//! multi-line `ENV`, `COPY` with flags, `RUN` with `--mount` and long `\` continuations, `RUN`
//! and `COPY` here-documents, labels and a health check, then a final stage copying from every
//! build stage. Comments and blank lines fill it to exactly 1,000 lines.
#![allow(clippy::print_stderr)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Duration;

use builder_core::diag::SourceFile;
use builder_core::dockerfile::parse;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const LINES: usize = 1_000;

/// One build stage: about 75 lines.
fn build_stage(out: &mut String, n: usize) {
    let port = 8000 + n;
    write!(
        out,
        r#"
# ---- stage {n}: service-{n} ----------------------------------------------
FROM rust:1.88-bookworm AS build-{n}
ARG FEATURES_{n}="default,metrics"
ARG PROFILE=release
ENV CARGO_HOME=/usr/local/cargo \
    RUSTFLAGS="-C target-cpu=x86-64-v2 -C link-arg=-s" \
    SERVICE_NAME=service-{n} \
    SERVICE_PORT={port}
WORKDIR /src/service-{n}
COPY --chown=1000:1000 Cargo.toml Cargo.lock ./
COPY --link --chmod=644 crates/common/ crates/common/
COPY crates/service-{n}/ crates/service-{n}/
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \
    --mount=type=cache,target=/var/lib/apt,sharing=locked \
    apt-get update && \
    apt-get install -y --no-install-recommends \
        ca-certificates \
        clang \
        cmake \
        libssl-dev \
        pkg-config \
        protobuf-compiler && \
    rm -rf /var/lib/apt/lists/*
# Build the dependencies first so that they are cached apart from the sources.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/service-{n}/target \
    mkdir -p src && echo 'fn main() {{}}' > src/main.rs && \
    cargo build --profile "$PROFILE" --features "$FEATURES_{n}" \
        --package service-{n} --locked && \
    rm -rf src
RUN <<EOF
set -eux
cargo build --profile "$PROFILE" --features "$FEATURES_{n}" --package service-{n} --locked
install -D -m 755 target/$PROFILE/service-{n} /out/bin/service-{n}
strip /out/bin/service-{n}
EOF
COPY <<EOF /out/etc/service-{n}/config.toml
[server]
listen = "0.0.0.0:{port}"
workers = 4

[log]
level = "info"
format = "json"
EOF
COPY <<-"SCRIPT" /out/bin/healthcheck-{n}
	#!/bin/sh
	exec wget -q -O /dev/null "http://127.0.0.1:{port}/healthz"
	SCRIPT
RUN ["/bin/sh", "-c", "chmod 755 /out/bin/healthcheck-{n}"]
LABEL org.opencontainers.image.title="service-{n}" \
      org.opencontainers.image.version="1.{n}.0" \
      org.opencontainers.image.vendor="Example Corp" \
      com.example.team="platform"
EXPOSE {port}/tcp
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/out/bin/healthcheck-{n}"]

FROM build-{n} AS test-{n}
ENV RUST_BACKTRACE=1
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo test --profile "$PROFILE" --features "$FEATURES_{n}" \
        --package service-{n} --locked -- --test-threads=2
"#
    )
    .unwrap();
}

/// The whole file, exactly [`LINES`] lines long.
fn dockerfile() -> String {
    let mut text = String::from(
        "# syntax=docker/dockerfile:1\n# escape=\\\nARG BASE=debian:bookworm-slim\nARG VERSION=0.0.0\n",
    );
    let mut stages = 0;
    while text.lines().count() < LINES - 150 {
        build_stage(&mut text, stages);
        stages += 1;
    }
    text.push_str(
        "\n# ---- runtime ------------------------------------------------------------\n",
    );
    text.push_str("FROM ${BASE} AS runtime\nARG VERSION\n");
    text.push_str("SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\n");
    text.push_str("RUN groupadd --gid 1000 app && \\\n    useradd --uid 1000 --gid app --shell /usr/sbin/nologin app\n");
    for n in 0..stages {
        writeln!(
            text,
            "COPY --from=build-{n} --chown=app:app /out/ /opt/service-{n}/"
        )
        .unwrap();
    }
    text.push_str(
        "ENV PATH=/opt/bin:$PATH \\\n    VERSION=${VERSION}\nWORKDIR /opt\nVOLUME [\"/var/lib/app\", \"/var/log/app\"]\nUSER app:app\nSTOPSIGNAL SIGTERM\nENTRYPOINT [\"/opt/service-0/bin/service-0\"]\nCMD [\"--config\", \"/opt/service-0/etc/service-0/config.toml\"]\n",
    );
    let mut filler = 0;
    while text.lines().count() < LINES {
        filler += 1;
        if filler % 3 == 0 {
            text.push('\n');
        } else {
            writeln!(text, "# note {filler}: kept for the release checklist").unwrap();
        }
    }
    assert_eq!(text.lines().count(), LINES, "generator overshot");
    text
}

fn parse_bench(c: &mut Criterion) {
    let source = SourceFile::new("Dockerfile", dockerfile());
    let parsed = parse(source.clone()).expect("the generated Dockerfile parses");
    let bytes = source.text().len() as u64;
    eprintln!(
        "parse: {LINES} lines, {bytes} bytes, {} instructions",
        parsed.instructions.len()
    );

    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Bytes(bytes));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("dockerfile_1000_lines", |b| {
        b.iter(|| parse(black_box(source.clone())).unwrap());
    });
    group.finish();
}

criterion_group!(benches, parse_bench);
criterion_main!(benches);
