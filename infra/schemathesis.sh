#!/usr/bin/env bash
# The standing fuzz campaign: schemathesis against a freshly started local stack, every
# check (infra/schemathesis.toml), the stateful phase on (it follows the OpenAPI links), bounded in time. Any server
# error, schema violation, undocumented status or accepted invalid request fails the run.
#
#   infra/schemathesis.sh                         # CI: about 3 minutes of testing
#   TDEV_SCHEMATHESIS_LONG=1 infra/schemathesis.sh  # a local soak run (30 minutes)
#   TDEV_SCHEMATHESIS_SECONDS=600 infra/schemathesis.sh
#
# The JUnit report and the stack's log end in target/schemathesis (or
# $TDEV_SCHEMATHESIS_REPORT_DIR).
#
# schemathesis comes from .venv (pinned in infra/requirements.txt), or $SCHEMATHESIS.
# The stack runs from target/debug/tdev (or $TDEV_BIN) in an empty folder of its own, and
# schemathesis calls it with an admin key of its own, which it may revoke: the key the
# first start printed is only used to make that one.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${TDEV_BIN:-${CARGO_TARGET_DIR:-$repo/target}/debug/tdev}
st=${SCHEMATHESIS:-$repo/.venv/bin/schemathesis}
[ -x "$bin" ] || { echo "no tdev binary at $bin: run cargo build first" >&2; exit 1; }
[ -x "$st" ] || { echo "no schemathesis at $st: pip install -r infra/requirements.txt" >&2; exit 1; }
command -v curl >/dev/null && command -v jq >/dev/null || { echo "schemathesis.sh needs curl and jq" >&2; exit 1; }

if [ "${TDEV_SCHEMATHESIS_LONG:-}" = 1 ]; then
  seconds=${TDEV_SCHEMATHESIS_SECONDS:-1800}
else
  seconds=${TDEV_SCHEMATHESIS_SECONDS:-180}
fi

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
pid=
cleanup() {
  [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Failed authentications are throttled per address (30 a minute); schemathesis sends many
# on purpose (its ignored_auth check), and each must be answered as itself, a 401.
(cd "$work" && TDEV_ADDR="127.0.0.1:$port" TDEV_FAILED_AUTH_CAPACITY=1000000 RUST_LOG=warn \
  exec "$bin" serve >"$work/serve.log" 2>&1) &
pid=$!
for _ in $(seq 1 100); do
  curl -fsS "$base/health" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
curl -fsS "$base/health" >/dev/null || { cat "$work/serve.log"; echo "the stack did not start" >&2; exit 1; }

# schemathesis's own admin key, with a rate limit it will not reach: a 429 is declared on
# every guarded operation, but would hide what the operation does with the case.
key=$(curl -fsS "$base/v1/keys" -H "x-api-key: $(cat "$work/.tdev/admin-key")" -H 'content-type: application/json' \
  -d '{"name":"schemathesis","scopes":["admin"],"rate_limit":{"capacity":1000000,"refill_per_minute":6000000}}' |
  jq -er .secret)

report=${TDEV_SCHEMATHESIS_REPORT_DIR:-$repo/target/schemathesis}
mkdir -p "$report"
started=$(date +%s)
status=0
# The event stream (`stream_events`) is left out: its 200 never ends (it is a stream), so
# every case would wait out the request timeout. Its behaviour, errors included, is
# tested through HTTP in tests/local_stack_messages.rs.
"$st" --config-file "$repo/infra/schemathesis.toml" run "$base/openapi.json" \
  --url "$base" \
  --phases examples,coverage,fuzzing,stateful \
  --max-time "$seconds" \
  --workers 1 \
  --request-timeout 30 \
  --generation-with-security-parameters false \
  --header "X-Api-Key: $key" \
  --generation-database none \
  --suppress-health-check too_slow,filter_too_much \
  --exclude-operation-id stream_events \
  --report junit --report-dir "$report" || status=$?
echo "schemathesis: $(( $(date +%s) - started )) s, exit $status"
cp "$work/serve.log" "$report/serve.log"
if ! kill -0 "$pid" 2>/dev/null; then
  tail -50 "$work/serve.log"; echo "the stack died during the run" >&2; exit 1
fi
if grep -q "panicked" "$work/serve.log"; then
  grep -B2 -A10 "panicked" "$work/serve.log" | head -60; echo "the stack panicked during the run" >&2; exit 1
fi
exit "$status"
