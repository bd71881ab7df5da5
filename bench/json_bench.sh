#!/usr/bin/env bash
# tf.json.encode's cost on the answers shipped routes give (bench/json_encode.lua).
# BASE_BIN=/path/to/other/tickforge runs the same script with another build
# too, for a ratio (e.g. before and after an encoder change).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "command: $TF_BIN run bench/json_encode.lua"
"$TF_BIN" run bench/json_encode.lua
if [ -n "${BASE_BIN:-}" ]; then
    echo "command: $BASE_BIN run bench/json_encode.lua"
    "$BASE_BIN" run bench/json_encode.lua
fi
