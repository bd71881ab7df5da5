#!/usr/bin/env bash
# Runs every test layer and sums their TAP lines into one closing line,
# "N passed, N failed" (what CI reads), exiting non-zero on any failure.
# A layer that dies without reporting a failure (a crash, a syntax error in
# a spec) counts as one failure, so nothing can pass by not running.
# Layers: C unit binaries, busted specs in tests/lua and tests/integration
# (run inside `tickforge run`), and the docker compose file check.
# TEST_ONLY=unit|lua|integration|compose|fuzz runs one layer (FUZZ_SECONDS=0 skips the fuzzers).
# Without DATABASE_URL the layers that need PostgreSQL use the private
# cluster (scripts/pg.sh): started with fsync off when it is not running and
# stopped again at the end; left running (and said so) when it was.
set -uo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
export TF_BIN=$PWD/$BUILD/tickforge
only=${TEST_ONLY:-}
pg_note=""
if [ -z "${DATABASE_URL:-}" ] && [ "$only" != unit ] && [ "$only" != compose ] && [ "$only" != fuzz ]; then
    if scripts/pg.sh status >/dev/null 2>&1; then
        pg_note="the private PostgreSQL ($(scripts/pg.sh status)) was already running and still is; scripts/pg.sh stop stops it"
    else
        scripts/pg.sh start --fast || exit 1
        trap 'scripts/pg.sh stop >/dev/null 2>&1' EXIT
        pg_note="the private PostgreSQL this run started (fsync off) is stopped again"
    fi
fi
export DATABASE_URL=${DATABASE_URL:-$(scripts/pg.sh url)}
# Under sanitizers every process writes its report to a file, servers the
# specs start in the background included (their stderr is a log nobody
# reads); a report anywhere is a failure (the "sanitizer reports" layer).
san_dir=""
if [ -n "${ASAN_OPTIONS:-}${UBSAN_OPTIONS:-}" ] && [ "$BUILD" != build ]; then
    san_dir=$PWD/$BUILD/sanitizer
    rm -rf "$san_dir" && mkdir -p "$san_dir"
    export ASAN_OPTIONS="${ASAN_OPTIONS:-}:log_path=$san_dir/asan"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:log_path=$san_dir/ubsan"
fi
passed=0
failed=0
log=$BUILD/test.log
: >"$log"

# run_tap NAME CMD...: runs CMD, echoes its TAP, and adds to the totals.
run_tap() {
    local name=$1 out rc ok notok
    shift
    echo "== $name"
    out=$("$@" 2>&1)
    rc=$?
    printf '%s\n' "$out" | tee -a "$log" | grep -vE '^ok ' || true
    ok=$(printf '%s\n' "$out" | grep -cE '^ok ')
    notok=$(printf '%s\n' "$out" | grep -cE '^not ok ')
    if [ "$rc" -ne 0 ] && [ "$notok" -eq 0 ]; then
        echo "not ok - $name exited with status $rc without reporting a failure"
        notok=1
    fi
    echo "   $ok passed, $notok failed"
    passed=$((passed + ok))
    failed=$((failed + notok))
}

if [ -z "$only" ] || [ "$only" = unit ]; then
    for t in $(find "$BUILD/tests/unit" -type f -perm -u+x 2>/dev/null | sort); do
        run_tap "unit ${t#"$BUILD"/tests/unit/}" "$t"
    done
fi

# The Lua layers expect the schema: apply the migrations once, up front.
if [ -z "$only" ] || [ "$only" = lua ] || [ "$only" = integration ]; then
    run_tap "migrations" sh -c "$TF_BIN migrate >\"$BUILD/migrate.log\" 2>&1 && echo 'ok 1 - tickforge migrate' || { cat \"$BUILD/migrate.log\"; echo 'not ok 1 - tickforge migrate'; }"
fi

busted=$(command -v busted)
for layer in lua integration; do
    if [ -z "$only" ] || [ "$only" = "$layer" ]; then
        if ls tests/$layer/*_spec.lua >/dev/null 2>&1; then
            run_tap "$layer specs" "$TF_BIN" run "$busted" -o TAP --pattern=_spec "tests/$layer"
        fi
    fi
done

# The compose file: refuses to start without its secrets, and with them set
# (test values) is valid, publishes on loopback only, and keeps PgBouncer's
# admin apart from the app's database user.
compose_tap() {
    local f=docker/docker-compose.yml secrets="POSTGRES_PASSWORD TICKFORGE_DB_PASSWORD PGBOUNCER_ADMIN_PASSWORD TICKFORGE_API_KEY TICKFORGE_ADMIN_KEY GRAFANA_PASSWORD"
    local unset_all="" v out i=1
    for v in $secrets; do unset_all="$unset_all -u $v"; done
    for v in $secrets; do
        # shellcheck disable=SC2086
        out=$(env $unset_all docker-compose -f $f config -q 2>&1)
        if [ $? -ne 0 ] && printf '%s' "$out" | grep -q "set $v"; then
            echo "ok $i - compose refuses to start without $v"
        else
            echo "not ok $i - compose refuses to start without $v"; printf '# %s\n' "$out"
        fi
        i=$((i + 1))
        unset_all=$(printf '%s' "$unset_all" | sed "s/ -u $v//")
        export "$v=test-$v"
    done
    if out=$(docker-compose -f $f config 2>&1); then
        echo "ok $i - docker-compose.yml is valid with every secret set"
    else
        echo "not ok $i - docker-compose.yml is valid with every secret set"; printf '# %s\n' "$out"
    fi
    i=$((i + 1))
    if printf '%s\n' "$out" | grep -E '^ +- [0-9.]*:?[0-9]+:[0-9]+' | grep -vq '^ *- 127\.0\.0\.1:'; then
        echo "not ok $i - every published port is on loopback"; printf '%s\n' "$out" | grep -E '^ +- [0-9.:]+/tcp'
    else
        echo "ok $i - every published port is on loopback"
    fi
    i=$((i + 1))
    local admin app
    admin=$(printf '%s\n' "$out" | sed -n 's/^ *ADMIN_USERS: //p')
    app=$(printf '%s\n' "$out" | sed -n 's/^ *DB_USER: //p')
    if [ -n "$admin" ] && [ -n "$app" ] && [ "$admin" != "$app" ]; then
        echo "ok $i - PgBouncer's admin ($admin) is not the app user ($app)"
    else
        echo "not ok $i - PgBouncer's admin ($admin) is not the app user ($app)"
    fi
}

if [ -z "$only" ] || [ "$only" = compose ]; then
    run_tap "docker compose" compose_tap
fi

# The fuzzers (tests/fuzz, docs/fuzzing.md): built by clang with libFuzzer
# and ASan+UBSan, each run FUZZ_SECONDS (default 10; 0 skips the layer); a
# crash, leak or sanitizer report is a failure with its input kept under
# build/fuzz/crashes/. Not in the sanitizer pass (its own build).
fuzz_tap() {
    local i=1 t n
    if ! make --no-print-directory fuzz >"$BUILD/fuzz-build.log" 2>&1; then
        echo "not ok 1 - the fuzzers build"; sed 's/^/# /' "$BUILD/fuzz-build.log" | tail -20
        return
    fi
    for t in build/fuzz/fuzz_*; do
        [ -x "$t" ] || continue
        n=${t##*/fuzz_}
        mkdir -p "build/fuzz/corpus/$n" "build/fuzz/crashes/$n"
        if "$t" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix="build/fuzz/crashes/$n/" "build/fuzz/corpus/$n" "tests/fuzz/corpus/$n" \
            >"build/fuzz/$n.log" 2>&1; then
            echo "ok $i - fuzz $n for $FUZZ_SECONDS s: $(grep -E '^stat::number_of_executed_units' "build/fuzz/$n.log" | awk '{print $2}') inputs, no crash"
        else
            echo "not ok $i - fuzz $n found a crash (input in build/fuzz/crashes/$n/)"; tail -30 "build/fuzz/$n.log" | sed 's/^/# /'
        fi
        i=$((i + 1))
    done
}
FUZZ_SECONDS=${FUZZ_SECONDS:-10}
if { [ -z "$only" ] || [ "$only" = fuzz ]; } && [ "$FUZZ_SECONDS" != 0 ] && [ "$BUILD" = build ]; then
    run_tap "fuzzers (short runs)" fuzz_tap
fi

if [ -n "$san_dir" ]; then
    san_tap() {
        local f bad=0
        for f in "$san_dir"/*; do
            [ -e "$f" ] || continue
            bad=1
            echo "not ok - sanitizer report ${f##*/}"
            sed -n '1,40s/^/# /p' "$f"
        done
        [ "$bad" -eq 1 ] || echo "ok 1 - no sanitizer report from any process (servers included)"
    }
    run_tap "sanitizer reports" san_tap
fi

if [ -n "$pg_note" ]; then
    # the trap stops it when this script exits, right after the last line
    echo
    echo "== $pg_note"
fi
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
