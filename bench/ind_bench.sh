#!/usr/bin/env bash
# Indicator benchmark (run by bench/run.sh, or alone: bash bench/ind_bench.sh).
# Builds bench/ind_bench.c against core/ind/ with the flags below and, when
# TA-Lib's C sources are found (TALIB_SRC, default: the npm package `talib`
# installed in /tmp/talibref), builds TA-Lib with the same flags in /tmp to
# time it side by side. Never writes TA-Lib code into the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
CC=${CC:-cc}
FLAGS=${IND_BENCH_FLAGS:-"-O2"}
OUT=${TMPDIR:-/tmp}/tf_ind_bench
TALIB_SRC=${TALIB_SRC:-/tmp/talibref/node_modules/talib/src/lib}
mkdir -p "$OUT"
extra=()
if [ -d "$TALIB_SRC/src/ta_func" ]; then
    if [ ! -f "$OUT/libta.a" ] || [ "$(cat "$OUT/libta.flags" 2>/dev/null)" != "$FLAGS" ]; then
        rm -rf "$OUT/ta" && mkdir -p "$OUT/ta"
        for f in "$TALIB_SRC"/src/ta_func/*.c "$TALIB_SRC"/src/ta_common/*.c; do
            $CC $FLAGS -w -I"$TALIB_SRC/include" -I"$TALIB_SRC/src/ta_common" -I"$TALIB_SRC/src/ta_func" \
                -c "$f" -o "$OUT/ta/$(basename "$f" .c).o" &
            while [ "$(jobs -r | wc -l)" -ge 4 ]; do wait -n; done
        done
        wait
        ar rcs "$OUT/libta.a" "$OUT"/ta/*.o
        echo "$FLAGS" >"$OUT/libta.flags"
    fi
    extra=(-DHAVE_TALIB -I"$TALIB_SRC/include" "$OUT/libta.a")
else
    echo "(TA-Lib sources not found at $TALIB_SRC: TA-Lib column left empty)"
fi
$CC -std=c11 -D_GNU_SOURCE $FLAGS -Icore bench/ind_bench.c core/ind/*.c core/mem.c "${extra[@]}" -lm -o "$OUT/ind_bench"
echo "command: bash bench/ind_bench.sh   (CC=$CC; flags: -std=c11 $FLAGS; $(uname -m); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
"$OUT/ind_bench"

# The `tickforge run` example over stored candles, when the host and a
# database are there (bench/run.sh exports both).
if [ -n "${TF_BIN:-}" ] && [ -x "$TF_BIN" ] && [ -n "${DATABASE_URL:-}" ]; then
    echo
    echo "command: $TF_BIN run bench/ind_compute.lua BENCH_IND 100000"
    "$TF_BIN" run bench/ind_compute.lua BENCH_IND 100000
fi
