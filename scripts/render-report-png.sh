#!/bin/bash
# Renders an HTML report to a PNG with headless Chromium (for docs/ and for looking at a report):
#
#   scripts/render-report-png.sh REPORT.html OUT.png [WIDTHxHEIGHT]    (default 1280x2400)
#
# Installs Debian's chromium when it is missing (needs root). The browser runs with no network
# features (no background networking, component updates or sync) and a throwaway profile; the
# report itself is self-contained, so nothing is fetched. Fails unless the PNG is over 20 KB
# (a blank or error page is smaller).
set -euo pipefail

[ $# -ge 2 ] || { echo "usage: $0 REPORT.html OUT.png [WIDTHxHEIGHT]" >&2; exit 2; }
REPORT=$1
OUT=$2
SIZE=${3:-1280x2400}
[ -f "$REPORT" ] || { echo "$0: no such report: $REPORT" >&2; exit 2; }
[[ $SIZE =~ ^[0-9]+x[0-9]+$ ]] || { echo "$0: size must be WIDTHxHEIGHT, not $SIZE" >&2; exit 2; }

BROWSER=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$BROWSER" ]; then
    [ "$(id -u)" = 0 ] || { echo "$0: chromium is missing; run as root to install it (apt-get install chromium)" >&2; exit 2; }
    echo "installing chromium" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium >/dev/null
    BROWSER=$(command -v chromium)
fi

ABS_REPORT=$(cd "$(dirname "$REPORT")" && pwd)/$(basename "$REPORT")
ABS_OUT=$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")
PROFILE=$(mktemp -d)
trap 'rm -rf "$PROFILE"' EXIT
rm -f "$ABS_OUT"

# --virtual-time-budget lets layout settle before the shot; stderr carries Chromium's own noise.
"$BROWSER" --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --hide-scrollbars \
    --user-data-dir="$PROFILE" --virtual-time-budget=2000 \
    --screenshot="$ABS_OUT" --window-size="${SIZE/x/,}" "file://$ABS_REPORT" 2>"$PROFILE/stderr" || {
    cat "$PROFILE/stderr" >&2
    exit 1
}

[ -f "$ABS_OUT" ] || { cat "$PROFILE/stderr" >&2; echo "$0: no PNG written" >&2; exit 1; }
BYTES=$(stat -c %s "$ABS_OUT")
if [ "$BYTES" -le 20480 ]; then
    echo "$0: $OUT is only $BYTES bytes: the page did not render" >&2
    exit 1
fi
echo "$OUT: $BYTES bytes"
