#!/usr/bin/env bash
# Runs the README's quickstart and its workflow, messaging and deployment walk-throughs verbatim against a freshly
# started local stack (the README's run command, `tdev serve`, in an empty folder) and an
# echo agent, checks what they printed, then restarts the stack and checks that the data
# survived.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${TDEV_BIN:-${CARGO_TARGET_DIR:-$repo/target}/debug/tdev}
[ -x "$bin" ] || { echo "no tdev binary at $bin: run cargo build first" >&2; exit 1; }
for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "the quickstart needs $tool" >&2; exit 1; }
done

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export TDEV="http://127.0.0.1:$port"
pid=
agent_pid=
cleanup() {
  for p in $pid $agent_pid; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

start() {
  TDEV_ADDR="127.0.0.1:$port" RUST_LOG=warn "$bin" serve >"$work/serve-$1.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    curl -fsS "$TDEV/health" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$work/serve-$1.log"; echo "the stack did not start" >&2; exit 1
}
fail() { echo "quickstart: $*" >&2; echo "--- output:" >&2; cat "$work/out.txt" >&2; exit 1; }

start first
grep -q "First start: created the admin API key" "$work/serve-first.log" || fail "no admin key was printed"
grep -q "$(cat .tdev/admin-key)" "$work/serve-first.log" || fail "the printed key is not the one in .tdev/admin-key"
[ "$(stat -c %a .tdev/admin-key)" = 600 ] || fail ".tdev/admin-key is not mode 0600"

# The block between the README's quickstart markers, without its fences.
awk '/<!-- quickstart:end -->/{on=0} on && !/^```/{print} /<!-- quickstart:begin -->/{on=1}' \
  "$repo/README.md" >"$work/quickstart.sh"
[ -s "$work/quickstart.sh" ] || { echo "no quickstart block in README.md" >&2; exit 1; }
bash -euo pipefail "$work/quickstart.sh" >"$work/out.txt" 2>&1 || fail "the quickstart failed"

[ "$(grep -c '"via":"token"' "$work/out.txt")" = 2 ] || fail "expected two successful whoami calls"
grep -q '^HTTP/1.1 429' "$work/out.txt" || fail "expected a 429"
grep -qi '^retry-after: [0-9]' "$work/out.txt" || fail "expected Retry-After"
grep -qi '^content-type: application/problem+json' "$work/out.txt" || fail "expected problem+json"
grep -q 'urn:tdev:problem:rate-limited' "$work/out.txt" || fail "expected the rate-limited problem type"

# The workflow walk-through, verbatim, against an echo agent.
agent_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" echo-agent --addr "127.0.0.1:$agent_port" >"$work/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 1 50); do grep -q listening "$work/agent.log" && break; sleep 0.1; done
awk '/<!-- workflow:end -->/{on=0} on && !/^```/{print} /<!-- workflow:begin -->/{on=1}' \
  "$repo/README.md" >"$work/workflow.sh"
[ -s "$work/workflow.sh" ] || { echo "no workflow block in README.md" >&2; exit 1; }
AGENT="http://127.0.0.1:$agent_port" timeout 60 bash -euo pipefail "$work/workflow.sh" >"$work/out.txt" 2>&1 \
  || fail "the workflow walk-through failed"
grep -q '"status":"succeeded"' "$work/out.txt" || fail "the run did not succeed"
grep -q '"report":{"inputs":{"clean_data":{"inputs":{"raw_data":{"inputs":{"source":"s3://bucket/raw.csv"}' "$work/out.txt" \
  || fail "each step must receive the previous one's output"
# The messaging walk-through, verbatim, against the same echo agent.
awk '/<!-- messaging:end -->/{on=0} on && !/^```/{print} /<!-- messaging:begin -->/{on=1}' \
  "$repo/README.md" >"$work/messaging.sh"
[ -s "$work/messaging.sh" ] || { echo "no messaging block in README.md" >&2; exit 1; }
AGENT="http://127.0.0.1:$agent_port" timeout 60 bash -euo pipefail "$work/messaging.sh" >"$work/out.txt" 2>&1 \
  || fail "the messaging walk-through failed"
grep -q '"priority":2,"queue":"messages"' "$work/out.txt" || fail "a message should be accepted onto the messages queue"
grep -q '"reason":"agent_rejected","attempts":1,"source_queue":"messages"' "$work/out.txt" \
  || fail "the misconfigured agent's message should be dead-lettered as agent_rejected"
grep -q '{"redriven":1}' "$work/out.txt" || fail "the redrive should send one message back"
grep -q '\["summarizer","misconfigured"\]' "$work/out.txt" || fail "both messages should end delivered"
# The deployment walk-through, verbatim, with the tdev binary as the CLI (the smoke test
# calls the same echo agent).
awk '/<!-- deploy:end -->/{on=0} on && !/^```/{print} /<!-- deploy:begin -->/{on=1}' \
  "$repo/README.md" >"$work/deploy.sh"
[ -s "$work/deploy.sh" ] || { echo "no deploy block in README.md" >&2; exit 1; }
AGENT="http://127.0.0.1:$agent_port" TDEV_CLI="$bin" TDEV_URL="$TDEV" timeout 120 bash -euo pipefail "$work/deploy.sh" \
  >"$work/out.txt" 2>&1 || fail "the deployment walk-through failed"
kill "$agent_pid" 2>/dev/null || true
grep -q 'the smoke test passed; registry entry helper points at it; deployed' "$work/out.txt" \
  || fail "the first deploy should pass its smoke test and register the agent"
grep -q '^\* version 2 ' "$work/out.txt" || fail "version 2 should serve after the second deploy"
grep -q 'rolled_back (version 1, before 2)' "$work/out.txt" || fail "the rollback should put version 1 back"
[ "$(grep -c '^\* version 1 .*rollback' "$work/out.txt")" = 1 ] || fail "the history should end with version 1 serving again"

kill "$pid"; wait "$pid" 2>/dev/null || true
start second
! grep -q "First start" "$work/serve-second.log" || fail "a restart must not make a new admin key"
keys=$(curl -fsS "$TDEV/v1/keys" -H "x-api-key: $(cat .tdev/admin-key)" | jq '.keys | length')
[ "$keys" = 2 ] || fail "expected the admin and quickstart keys to survive the restart, found $keys"
agents=$(curl -fsS "$TDEV/v1/agents" -H "x-api-key: $(cat .tdev/admin-key)" | jq '.agents | length')
[ "$agents" = 6 ] || fail "expected the six agents to survive the restart, found $agents"
dead=$(curl -fsS "$TDEV/v1/dead-letters?state=all" -H "x-api-key: $(cat .tdev/admin-key)" | jq '.dead_letters | length')
[ "$dead" = 1 ] || fail "expected the redriven dead letter to survive the restart, found $dead"
versions=$(TDEV_URL="$TDEV" "$bin" history helper --json | jq '.versions | length')
[ "$versions" = 3 ] || fail "expected the agent's three versions to survive the restart, found $versions"
echo "quickstart: 4 passed, 0 failed"
