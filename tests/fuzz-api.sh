#!/bin/sh
# Fuzzes the REST API with Schemathesis from the committed OpenAPI document.
# Starts the wa-sim binary (so no request ever goes to WhatsApp) and
# `wa-device-admin serve` built with the `simulator` feature, in a throw-away
# data folder; fails if any answer is a 5xx, if the server crashes, or if it
# does not stop cleanly on SIGTERM. Run inside tests/desktop-session.sh (the
# server uses the keyring). Usage: tests/fuzz-api.sh ST APP SIM [ST-ARGS...]
set -eu
st=$1 app=$2 sim=$3
shift 3
work=$(mktemp -d "${TMPDIR:-/tmp}/wa-fuzz.XXXXXX")
sim_pid="" app_pid=""
cleanup() {
    status=$?
    [ -n "$app_pid" ] && kill "$app_pid" 2>/dev/null || true
    [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits until FILE has a line, at most 60 s.
first_line() {
    i=0
    while [ ! -s "$1" ] || ! grep -q . "$1"; do
        i=$((i + 1))
        if [ "$i" -gt 600 ]; then
            echo "fuzz-api: $2 did not start" >&2
            cat "$work"/*.err >&2 || true
            exit 1
        fi
        sleep 0.1
    done
    head -n 1 "$1"
}

"$sim" --listen 127.0.0.1:0 --control 127.0.0.1:0 >"$work/sim.out" 2>"$work/sim.err" &
sim_pid=$!
ws_url=$(first_line "$work/sim.out" wa-sim | sed -n 's/.*"ws_url":"\([^"]*\)".*/\1/p')

user=fuzz
password=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
APP_BASIC_AUTH="$user:$password" "$app" serve --listen 127.0.0.1:0 \
    --data-dir "$work/data" --simulator-url "$ws_url" >"$work/app.out" 2>"$work/app.err" &
app_pid=$!
base=$(first_line "$work/app.out" "wa-device-admin serve" | sed -n 's/^listening on //p')
echo "fuzz-api: serving on $base, simulator at $ws_url"
# The documented example id exists, so the examples phase reaches the real
# login, logout, reconnect and delete paths (against the simulator).
curl -fsS -o /dev/null -u "$user:$password" -H 'Content-Type: application/json' \
    -d '{"device_id":"my-device-id"}' "$base/devices"

status=0
# /events is an endless stream (each case would wait for the request
# timeout); the API's own tests read it (src-tauri/api/tests/it/events.rs).
"$st" run docs/openapi.json --url "$base" --auth "$user:$password" \
    --exclude-path /events \
    --checks not_a_server_error,content_type_conformance,response_schema_conformance \
    --request-timeout 90 --seed 1 --no-color "$@" || status=$?

if ! kill -0 "$app_pid" 2>/dev/null; then
    echo "fuzz-api: the server died during the run" >&2
    cat "$work/app.err" >&2
    exit 1
fi
kill -TERM "$app_pid"
app_status=0
wait "$app_pid" || app_status=$?
app_pid=""
if [ "$app_status" -ne 0 ]; then
    echo "fuzz-api: the server exited with $app_status on SIGTERM" >&2
    cat "$work/app.err" >&2
    exit 1
fi
if grep -q "$password" "$work/app.err" "$work/app.out"; then
    echo "fuzz-api: the password appeared in the server's output" >&2
    exit 1
fi
exit "$status"
