#!/usr/bin/env bash
# `make bench`: runs every bench/*_bench.sh in name order. Each script prints
# its own table (markdown) and the command that produced it; results worth
# keeping are copied into BENCHMARKS.md by hand, with that command.
set -euo pipefail
cd "$(dirname "$0")/.."
export BUILD=${BUILD:-build}
export TF_BIN=$PWD/$BUILD/tickforge
export DATABASE_URL=${DATABASE_URL:-$(scripts/pg.sh url)}
for b in bench/*_bench.sh; do
    [ -n "${BENCH_ONLY:-}" ] && [[ $b != *"$BENCH_ONLY"* ]] && continue
    echo "## $b"
    bash "$b"
done
