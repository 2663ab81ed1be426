#!/usr/bin/env bash
# Runs the README's quickstart and its workflow, messaging and deployment walk-throughs
# verbatim against a freshly started local stack (the README's run command, `tdev serve`, in
# an empty folder standing for the repository) and an echo agent. Each block runs twice in a
# row on the same stack: both runs must pass the same checks, print the same (once ids and
# times are set aside), stay within their time, and write nothing into the folder. Then the
# stack restarts and the data must have survived.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${TDEV_BIN:-${CARGO_TARGET_DIR:-$repo/target}/debug/tdev}
[ -x "$bin" ] || { echo "no tdev binary at $bin: run cargo build first" >&2; exit 1; }
for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "the quickstart needs $tool" >&2; exit 1; }
done

work=$(mktemp -d)
# The blocks run here, as at the repository root: the stack's .tdev and nothing else.
root="$work/root"
mkdir "$root"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
export TDEV="http://127.0.0.1:$port"
pid=
agent_pid=
cleanup() {
  for p in $pid $agent_pid; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
cd "$root"

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
out=/dev/null
fail() { echo "quickstart: $*" >&2; echo "--- output ($out):" >&2; cat "$out" >&2; exit 1; }

# run_twice NAME [VAR=value ...]: the block between the README's NAME markers, without its
# fences, run twice in a row with these variables; each run's output in $work/NAME-1.txt
# and $work/NAME-2.txt.
run_twice() {
  local name=$1 n started
  shift
  awk "/<!-- $name:end -->/{on=0} on && !/^\`\`\`/{print} /<!-- $name:begin -->/{on=1}" \
    "$repo/README.md" >"$work/$name.sh"
  [ -s "$work/$name.sh" ] || { echo "no $name block in README.md" >&2; exit 1; }
  for n in 1 2; do
    out="$work/$name-$n.txt"
    started=$(date +%s%N)
    env "$@" timeout 120 bash -euo pipefail "$work/$name.sh" >"$out" 2>&1 \
      || fail "the $name block failed on run $n (or took over 120 s)"
    echo "quickstart: $name, run $n: $(( ($(date +%s%N) - started) / 1000000 )) ms"
  done
}

# What a run prints, with what differs from run to run by design set aside: ids, keys,
# tokens, times, request ids, the agent name the deployment walk-through makes per run (and
# so its spec's size).
normalized() {
  sed -E \
    -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9:]+)/<time>/g' \
    -e 's/tdk_[A-Za-z0-9_-]+/<key>/g' \
    -e 's/"(id|key_id)":"[^"]*"/"\1":"<id>"/g' \
    -e 's/eyJ[A-Za-z0-9_.-]+/<token>/g' \
    -e 's/dep[-_][A-Za-z0-9_-]+/<deployment>/g' \
    -e 's/[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}/<id>/g' \
    -e 's/helper-[0-9]+-[0-9]+/helper-<run>/g' \
    -e 's/the spec is valid \([0-9]+ bytes\)/the spec is valid (<size>)/' \
    -e 's/^(x-request-id|date|ratelimit-reset|retry-after): .*/\1: <varies>/I' \
    "$1"
}
# same NAME: both runs printed the same.
same() {
  diff <(normalized "$work/$1-1.txt") <(normalized "$work/$1-2.txt") >"$work/$1.diff" \
    || { out="$work/$1.diff"; fail "the second run of the $1 block printed otherwise than the first"; }
}
# Nothing but the stack's own folder in the folder the blocks ran in.
wrote_nothing() {
  local found
  found=$(ls -A "$root" | tr '\n' ' ')
  [ "$found" = ".tdev " ] || { out=/dev/null; fail "the $1 block left files where it ran: $found"; }
}

start first
out="$work/serve-first.log"
grep -q "First start: created the admin API key" "$out" || fail "no admin key was printed"
grep -q "$(cat .tdev/admin-key)" "$out" || fail "the printed key is not the one in .tdev/admin-key"
grep -q "it may make 100 requests at once" "$out" || fail "the admin key's rate limit is not stated"
[ "$(stat -c %a .tdev/admin-key)" = 600 ] || fail ".tdev/admin-key is not mode 0600"

run_twice quickstart
for out in "$work"/quickstart-{1,2}.txt; do
  [ "$(grep -c '"via":"token"' "$out")" = 2 ] || fail "expected two successful whoami calls"
  grep -q '^HTTP/1.1 429' "$out" || fail "expected a 429"
  grep -qi '^retry-after: [0-9]' "$out" || fail "expected Retry-After"
  grep -qi '^content-type: application/problem+json' "$out" || fail "expected problem+json"
  grep -q 'urn:tdev:problem:rate-limited' "$out" || fail "expected the rate-limited problem type"
done
same quickstart
wrote_nothing quickstart

# The walk-throughs, against an echo agent.
agent_port=$(free_port)
"$bin" echo-agent --addr "127.0.0.1:$agent_port" >"$work/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 1 50); do grep -q listening "$work/agent.log" && break; sleep 0.1; done
agent="http://127.0.0.1:$agent_port"

run_twice workflow AGENT="$agent"
for out in "$work"/workflow-{1,2}.txt; do
  grep -q '"status":"succeeded"' "$out" || fail "the run did not succeed"
  grep -q '"report":{"inputs":{"clean_data":{"inputs":{"raw_data":{"inputs":{"source":"s3://bucket/raw.csv"}' "$out" \
    || fail "each step must receive the previous one's output"
done
same workflow
wrote_nothing workflow

run_twice squad AGENT="$agent"
for out in "$work"/squad-{1,2}.txt; do
  grep -q '{"id":"sky-board","version":"1"}' "$out" || fail "the squad should be stored (again)"
  grep -q '{"status":"succeeded","answer":"blue","tally":\[{"value":"blue","votes":2,"members":\[1,2\]},{"value":"green","votes":1,"members":\[0\]}\]}' "$out" \
    || fail "the majority answer should be blue, with its tally"
done
same squad
wrote_nothing squad

run_twice messaging AGENT="$agent"
for out in "$work"/messaging-{1,2}.txt; do
  grep -q '"priority":2,"queue":"messages"' "$out" || fail "a message should be accepted onto the messages queue"
  grep -q '"reason":"agent_rejected","attempts":1,"source_queue":"messages"' "$out" \
    || fail "the misconfigured agent's message should be dead-lettered as agent_rejected"
  grep -q '{"redriven":1}' "$out" || fail "the redrive should send one message back"
  grep -q '\["summarizer","misconfigured"\]' "$out" || fail "both messages should end delivered"
done
same messaging
wrote_nothing messaging

# The deployment walk-through with the tdev binary as the CLI (the smoke test calls the
# same echo agent).
run_twice deploy AGENT="$agent" TDEV_CLI="$bin" TDEV_URL="$TDEV"
for out in "$work"/deploy-{1,2}.txt; do
  grep -q 'the smoke test passed; registry entry helper points at it; deployed' "$out" \
    || fail "the first deploy should pass its smoke test and register the agent"
  grep -q '^\* version 2 ' "$out" || fail "version 2 should serve after the second deploy"
  grep -q 'rolled_back (version 1, before 2)' "$out" || fail "the rollback should put version 1 back"
  [ "$(grep -c '^\* version 1 .*rollback' "$out")" = 1 ] || fail "the history should end with version 1 serving again"
done
same deploy
wrote_nothing deploy
name=$(grep -o 'helper-[0-9]*-[0-9]*' "$work/deploy-2.txt" | head -1)
[ "$(grep -o 'helper-[0-9]*-[0-9]*' "$work/deploy-1.txt" | head -1)" != "$name" ] \
  || { out="$work/deploy-1.txt"; fail "both runs of the deploy block used the agent name $name"; }
kill "$agent_pid" 2>/dev/null || true

out=/dev/null
kill "$pid"; wait "$pid" 2>/dev/null || true
start second
! grep -q "First start" "$work/serve-second.log" || fail "a restart must not make a new admin key"
keys=$(curl -fsS "$TDEV/v1/keys" -H "x-api-key: $(cat .tdev/admin-key)" | jq '.keys | length')
[ "$keys" = 3 ] || fail "expected the admin key and the two quickstart keys to survive the restart, found $keys"
agents=$(curl -fsS "$TDEV/v1/agents" -H "x-api-key: $(cat .tdev/admin-key)" | jq '.agents | length')
[ "$agents" = 9 ] || fail "expected the nine agents to survive the restart, found $agents"
dead=$(curl -fsS "$TDEV/v1/dead-letters?state=all" -H "x-api-key: $(cat .tdev/admin-key)" | jq '.dead_letters | length')
[ "$dead" = 2 ] || fail "expected the two redriven dead letters to survive the restart, found $dead"
versions=$(TDEV_URL="$TDEV" "$bin" history "$name" --json | jq '.versions | length')
[ "$versions" = 3 ] || fail "expected $name's three versions to survive the restart, found $versions"
echo "quickstart: 5 blocks, each run twice, passed"
