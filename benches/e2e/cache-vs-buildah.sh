#!/usr/bin/env bash
# The layer cache, kiln next to `buildah --layers` in one run. Every measurement is a build plus a
# push to a loopback registry (a CNCF distribution registry on a free 127.0.0.1 port, its storage in
# a temp dir); every tool pulls its base from that registry and pushes its image back to it.
#
# Contexts:
#   many   busybox + a 5,000-file, 50 MB COPY (random bytes) + 2 RUN steps
#   flask  the Flask example (testdata/flask) on the python base from scripts/make-python-image.sh;
#          pip reaches PyPI with the host's CA bundle mounted into its RUN step
# Scenarios, per context and tool:
#   cold     empty cache, store and target repository (kiln: fresh --cache-dir and --store;
#            buildah: fresh --root); BENCH_COLD_RUNS runs (1 by default), each from nothing
#            and to a repository of its own
#   warm     the same build again, nothing changed (BENCH_RUNS runs, 3 by default)
#   changed  one source file changed before each build (BENCH_RUNS runs; many: 10 kB of new bytes
#            in one of the 5,000 files; flask: a line appended to app.py)
# kiln builds with `--cache-dir --report --push`. buildah (chroot isolation) runs `build --layers`
# then `push`, timed together; the table also shows its build alone. It runs once per storage
# driver in BUILDAH_DRIVERS ("vfs overlay" by default; vfs copies a step's whole rootfs, overlay
# does not; empty for kiln alone). BENCH_CONTEXTS picks contexts ("many flask" by default);
# BENCH_TMPDIR the file system everything is written to (/tmp by default). Hit rates: kiln's
# from its report (hits / cacheable steps), buildah's from the "Using
# cache" lines of its output over its steps after FROM. Peak RSS is the largest of the runs, of
# any one process (a RUN step's included). Times are medians, min–max in brackets.
#
# Prints one line per measurement, then a markdown table.
# Needs root, skopeo, buildah, /usr/bin/docker-registry, jq, python3, network to PyPI, and a release
# build of kiln (cargo build --release -p builder-cli).
set -euo pipefail
cd "$(dirname "$0")/../.."

# buildah keeps a blob-info cache at /var/lib/containers/cache whatever --root says; run in a
# private mount namespace with a temp dir over it, so the host's is neither read nor written.
if [ -z "${KILN_BENCH_IN_NS:-}" ]; then
  exec unshare --mount --propagation private env KILN_BENCH_IN_NS=1 "$0" "$@"
fi

kiln=$(realpath "${KILN:-target/release/kiln}")
runs=${BENCH_RUNS:-3}
cold_runs=${BENCH_COLD_RUNS:-1}
# Appended to every repository name: each cold run but the last pushes to an empty repository
# of its own; the last, and the warm and changed runs after it, to the plain name.
suffix=
read -r -a drivers <<<"${BUILDAH_DRIVERS-vfs overlay}"
read -r -a contexts <<<"${BENCH_CONTEXTS:-many flask}"
work=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/kiln-cache-bench.XXXXXX")
registry_pid=
cleanup() {
  # buildah unmounts what it mounts; anything left (an interrupted run) goes before the files.
  findmnt -rn -o TARGET | grep "^$work/" | sort -r | xargs -r umount -l 2>/dev/null || true
  if [ -n "$registry_pid" ]; then
    kill "$registry_pid" 2>/dev/null || true
    wait "$registry_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
if [ -d /var/lib/containers/cache ]; then
  mkdir -p "$work/blob-info-cache"
  mount --bind "$work/blob-info-cache" /var/lib/containers/cache
fi
ca=/etc/ssl/certs/ca-certificates.crt

# The registry.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
reg=127.0.0.1:$port
mkdir -p "$work/registry/storage"
cat >"$work/registry/config.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $reg
  secret: kiln-bench-upload-secret
YML
/usr/bin/docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
registry_pid=$!
for _ in $(seq 100); do
  curl -fsS "http://$reg/v2/" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://$reg/v2/" >/dev/null || { cat "$work/registry/log" >&2; exit 1; }

# The bases, pushed into it.
python=$(scripts/make-python-image.sh)
busybox=$(scripts/registry/busybox-layout.sh)
skopeo copy -q --dest-tls-verify=false "oci:$python:python:3.11-slim" "docker://$reg/python:3.11-slim"
skopeo copy -q --dest-tls-verify=false "oci:$busybox:busybox:latest" "docker://$reg/busybox:latest"

# The contexts.
benches/e2e/make-many-context.sh "$work/ctx/many/files"
cat >"$work/ctx/many/Dockerfile" <<DF
FROM $reg/busybox:latest
COPY files/ /data/
RUN find /data -type f | wc -l > /count
RUN echo changed > /data/d00/f000.bin && rm -rf /data/d49
DF
cp -r testdata/flask "$work/ctx/flask"
sed -i "s|^FROM python:3.11-slim|FROM $reg/python:3.11-slim|" "$work/ctx/flask/Dockerfile"
grep -q "^FROM $reg/" "$work/ctx/flask/Dockerfile"

change() {
  case $1 in
    many) head -c 10000 /dev/urandom >"$work/ctx/many/files/d10/f050.bin" ;;
    flask) printf '# change %s\n' "$2" >>"$work/ctx/flask/app.py" ;;
  esac
}

volumes() {
  if [ "$1" = flask ]; then printf '%s\n' -v "$ca:$ca:ro"; fi
}

# results.tsv: tool context scenario run seconds peak_kb hits steps build_only_seconds
results=$work/results.tsv
: >"$results"

record() { # tool ctx scenario run timefile hits steps build-only-seconds detail
  local secs kb
  read -r secs kb <"$5"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$secs" "$kb" "$6" "$7" "$8" >>"$results"
  printf '%s, %s, %s %s: %s s (%s), peak RSS %s KB, cache hits %s/%s\n' "$1" "$2" "$3" "$4" "$secs" \
    "$9" "$kb" "$6" "$7"
}

kiln_build() { # ctx scenario run
  local ctx=$1 out=$work/out/kiln-$1-$2-$3
  mkdir -p "$out"
  mapfile -t vol < <(volumes "$ctx")
  if ! /usr/bin/time -f '%e %M' -o "$out/time" "$kiln" build -q \
    --store "$work/kiln/$ctx/store" --cache-dir "$work/kiln/$ctx/cache" \
    --report "$out/report.json" --push -t "$reg/$ctx-kiln$suffix:latest" "${vol[@]}" \
    "$work/ctx/$ctx" >"$out/log" 2>&1; then
    cat "$out/log" >&2
    exit 1
  fi
  record kiln "$ctx" "$2" "$3" "$out/time" \
    "$(jq .summary.hits "$out/report.json")" \
    "$(jq '.summary.hits + .summary.misses' "$out/report.json")" - \
    "$(jq -r '"steps " + ([.steps[] | select(.cache != "n/a") | "\(.duration_ms)"] | join("/")) + " ms"' \
      "$out/report.json")"
}

buildah_build() { # driver ctx scenario run
  local driver=$1 ctx=$2 tool=buildah-$1
  local out=$work/out/$tool-$2-$3-$4 tag=$reg/$2-$tool$suffix:latest
  mkdir -p "$out"
  mapfile -t vol < <(volumes "$ctx")
  date +%s.%N >"$out/started"
  if ! /usr/bin/time -f '%e %M' -o "$out/time" bash -c '
      set -e
      bah=(buildah --root "$2" --runroot "$3" --storage-driver "$4")
      "${bah[@]}" build -t "$5" "${@:6}" >"$1" 2>&1
      date +%s.%N >"$1.built"
      "${bah[@]}" push --tls-verify=false -q "$5" >>"$1" 2>&1
    ' - "$out/log" "$work/$tool/$ctx/root" "$work/$tool/$ctx/run" "$driver" "$tag" \
    --isolation chroot --layers --tls-verify=false "${vol[@]}" "$work/ctx/$ctx"; then
    cat "$out/log" >&2
    exit 1
  fi
  local steps from
  steps=$(grep -c '^STEP [0-9]*/[0-9]*: ' "$out/log" || true)
  from=$(grep -c '^STEP [0-9]*/[0-9]*: FROM ' "$out/log" || true)
  local built
  built=$(python3 -c 'import sys; print(f"{float(sys.argv[2]) - float(sys.argv[1]):.2f}")' \
    "$(cat "$out/started")" "$(cat "$out/log.built")")
  record "$tool" "$ctx" "$3" "$4" "$out/time" \
    "$(grep -c 'Using cache' "$out/log" || true)" "$((steps - from))" "$built" \
    "build $built s, push the rest"
}

# Every tool builds the same scenario, one after another, before the next scenario starts. Each
# starts once what the one before wrote is on disk, so none pays for another's writeback.
each_tool() { # ctx scenario run
  sync
  kiln_build "$@"
  for driver in "${drivers[@]}"; do
    sync
    buildah_build "$driver" "$@"
  done
}

for ctx in "${contexts[@]}"; do
  for i in $(seq "$cold_runs"); do
    suffix=-cold$i
    if [ "$i" = "$cold_runs" ]; then suffix=; fi
    # Each cold run starts from nothing: no store, cache or buildah root of an earlier one.
    rm -rf "${work:?}/kiln/$ctx"
    for driver in "${drivers[@]}"; do
      root=$work/buildah-$driver/$ctx
      findmnt -rn -o TARGET | grep "^$root/" | sort -r | xargs -r umount -l 2>/dev/null || true
      rm -rf "$root"
    done
    each_tool "$ctx" cold "$i"
  done
  suffix=
  for i in $(seq "$runs"); do
    each_tool "$ctx" warm "$i"
  done
  for i in $(seq "$runs"); do
    change "$ctx" "$i"
    each_tool "$ctx" changed "$i"
  done
done

# Every tool's image must be in the registry.
for ctx in "${contexts[@]}"; do
  for tool in kiln "${drivers[@]/#/buildah-}"; do
    skopeo inspect --tls-verify=false "docker://$reg/$ctx-$tool:latest" >/dev/null
  done
done

echo
python3 - "$results" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
goals = {("many", "cold"): "≤ 1.5 s", ("many", "warm"): "≤ 0.05 s", ("many", "changed"): "≤ 1.0 s"}
tools = list(dict.fromkeys(r[0] for r in rows))
print("| context | scenario | tool | runs | build + push | of which build | peak RSS | cache hits | kiln goal |")
print("|---|---|---|---|---|---|---|---|---|")
for ctx in ("many", "flask"):
    for scen in ("cold", "warm", "changed"):
        for tool in tools:
            rs = [r for r in rows if r[0] == tool and r[1] == ctx and r[2] == scen]
            if not rs:
                continue
            secs = [float(r[4]) for r in rs]
            t = f"{statistics.median(secs):.2f} s"
            if len(secs) > 1:
                t += f" ({min(secs):.2f}–{max(secs):.2f})"
            build = [float(r[8]) for r in rs if r[8] != "-"]
            b = f"{statistics.median(build):.2f} s" if build else "–"
            mem = f"{max(int(r[5]) for r in rs) / 1024:.0f} MiB"
            hits = [(int(r[6]), int(r[7])) for r in rs]
            rate = ", ".join(f"{a}/{n}" for a, n in sorted(set(hits)))
            pct = statistics.median(a / n if n else 0 for a, n in hits)
            goal = goals.get((ctx, scen), "–") if tool == "kiln" else ""
            print(f"| {ctx} | {scen} | {tool} | {len(rs)} | {t} | {b} | {mem} | {rate} ({pct:.0%}) | {goal} |")
PY
