#!/usr/bin/env bash
# Fetches TradingView's lightweight-charts (npm, Apache-2.0) into build/ui/
# once, for the HTML reports of `tickforge backtest --html` (inlined there so
# the page opens offline). Without it the report draws a plain SVG equity
# curve and says so. Usage: scripts/fetch_charts.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build}/ui
file=$out/lightweight-charts.standalone.production.js
version=${LWC_VERSION:-4.2.3}
[ -s "$file" ] && exit 0
command -v npm >/dev/null || { echo "fetch_charts: npm not found; HTML reports fall back to SVG" >&2; exit 0; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "lightweight-charts@$version" >/dev/null && tar xzf lightweight-charts-*.tgz)
mkdir -p "$out"
cp "$tmp/package/dist/lightweight-charts.standalone.production.js" "$file"
echo "fetch_charts: $file (lightweight-charts $version)"
