#!/usr/bin/env bash
# Writes the "many" context's files into DIR: 50 directories of 100 files, 10,000 random bytes
# each (5,000 files, 50 MB), the COPY the e2e benchmarks build on.
set -euo pipefail
dir=${1:?usage: make-many-context.sh DIR}
mkdir -p "$dir"
python3 - "$dir" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(50):
    os.makedirs(f"{root}/d{d:02}")
    for f in range(100):
        with open(f"{root}/d{d:02}/f{f:03}.bin", "wb") as fh:
            fh.write(os.urandom(10_000))
PY
