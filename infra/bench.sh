#!/usr/bin/env bash
# Reproduces the figures in BENCHMARKS.md (issue 2): the authorizer's decision per call
# (criterion), throughput and latency of an authenticated request to the local stack
# under wrk, and the cold start of the two Lambda functions under a local Runtime API.
#
# NOT part of CI (it takes several minutes and wants a quiet machine). It fails loudly if
# a tool is missing or a server does not come up. Figures are printed, and written to
# target/bench/summary.md (under $CARGO_TARGET_DIR when that is set).
#
# Knobs (environment):
#   TDEV_BENCH_DURATION     wrk duration per run                  (default 20s)
#   TDEV_BENCH_CONNECTIONS  wrk connection counts to try, bearer  (default "8 32 128")
#   TDEV_BENCH_KEY_CONNECTIONS  the same, for the x-api-key run   (default 32)
#   TDEV_BENCH_WRK_THREADS  wrk threads                           (default 1)
#   TDEV_BENCH_RUNS         cold starts per function, binary in the page cache (default 20)
#   TDEV_BENCH_COLD_RUNS    cold starts per function, binary dropped from it   (default 5)
#   TDEV_BENCH_SKIP         any of: decision load cold_start      (default none)
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${TDEV_BENCH_DURATION:-20s}
connections=${TDEV_BENCH_CONNECTIONS:-"8 32 128"}
key_connections=${TDEV_BENCH_KEY_CONNECTIONS:-32}
wrk_threads=${TDEV_BENCH_WRK_THREADS:-1}
export TDEV_BENCH_RUNS=${TDEV_BENCH_RUNS:-20}
export TDEV_BENCH_COLD_RUNS=${TDEV_BENCH_COLD_RUNS:-5}
skip=" ${TDEV_BENCH_SKIP:-} "

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'bench.sh: %s\n' "$*" >&2; exit 1; }
wants() { [[ "$skip" != *" $1 "* ]]; }

target_dir=${CARGO_TARGET_DIR:-target}
out="$target_dir/bench"
mkdir -p "$out"
summary="$out/summary.md"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# The 1/5/15-minute load and any compiler running now: a busy machine makes every
# figure worse, so each section of the summary records what else was going on.
load_note() {
  local others
  others=$(pgrep -x rustc | wc -l || true)
  echo "load average before this section: $(cut -d' ' -f1-3 /proc/loadavg); rustc processes running: $others"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Waits until `url` answers 2xx, failing if process `pid` exits first or 30 s pass.
wait_for() {
  local url=$1 pid=$2 log=$3
  for _ in $(seq 1 150); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then cat "$log" >&2; die "the server behind $url exited"; fi
    sleep 0.2
  done
  cat "$log" >&2
  die "nothing answered at $url within 30 s"
}

step "Tools"
for tool in cargo rustc curl jq python3 nproc lscpu pgrep dd; do
  command -v "$tool" >/dev/null || die "$tool is missing"
done
if ! command -v wrk >/dev/null; then
  echo "wrk is missing: installing it with apt-get"
  command -v apt-get >/dev/null || die "wrk is missing and there is no apt-get to install it"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq || die "apt-get update failed"
  $sudo apt-get install -y -qq wrk || die "apt-get install wrk failed"
  command -v wrk >/dev/null || die "wrk is still missing after apt-get install"
fi
if [ ! -x .venv/bin/moto_server ]; then
  echo "moto is missing: installing the pinned version from infra/requirements.txt into .venv"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  moto_pin=$(grep -E '^moto\[server\]==' infra/requirements.txt) || die "no moto pin in infra/requirements.txt"
  .venv/bin/pip install --quiet --disable-pip-version-check "$moto_pin"
  [ -x .venv/bin/moto_server ] || die ".venv/bin/moto_server is still missing"
fi

step "Machine"
{
  echo "# Benchmark run $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo '```'
  echo "nproc: $(nproc)"
  lscpu | sed -n 1,15p
  free -h | sed -n 1,2p
  echo "uptime: $(uptime)"
  if git rev-parse --short HEAD >/dev/null 2>&1; then
    echo "git: $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' (with uncommitted changes)')"
  fi
  echo "rustc: $(rustc --version)"
  echo "wrk: $(wrk -v 2>&1 | sed -n 1p)"
  echo '```'
} | tee "$summary"

step "Build (release): tdev, the Lambda binaries and the benches"
cargo build --release --locked -p tdev --bin tdev
cargo bench --locked -p tdev-auth --bench decision --bench cold_start --no-run
tdev_bin="$target_dir/release/tdev"
[ -x "$tdev_bin" ] || die "$tdev_bin was not built"

if wants decision; then
  step "1. The authorizer's decision per call (criterion)"
  load1=$(load_note)
  cargo bench --locked -p tdev-auth --bench decision 2>&1 | tee "$work/decision.txt"
  {
    echo
    echo "## 1. Decision per call (criterion; [lower estimate upper])"
    echo
    echo "$load1"
    echo
    echo '```'
    grep -E -A1 '^(decision/|jwt/|guard:)' "$work/decision.txt" | grep -E '^(decision/|jwt/|guard:|\s+time:)' || true
    echo '```'
  } >>"$summary"
fi

if wants load; then
  step "2. Throughput and latency of GET /v1/whoami on tdev serve (wrk)"
  load2=$(load_note)
  port=$(free_port)
  base="http://127.0.0.1:$port"
  TDEV_ADDR="127.0.0.1:$port" TDEV_DATA="$work/data/tdev.db" TDEV_ADMIN_KEY_FILE="$work/data/admin-key" \
    RUST_LOG=warn "$tdev_bin" serve >"$work/serve.log" 2>&1 &
  serve_pid=$!
  pids+=("$serve_pid")
  wait_for "$base/health" "$serve_pid" "$work/serve.log"
  admin=$(cat "$work/data/admin-key") || die "the first start wrote no admin key"
  key=$(curl -fsS -X POST "$base/v1/keys" -H "x-api-key: $admin" -H 'content-type: application/json' \
    -d '{"name":"bench","scopes":["read"],"rate_limit":{"capacity":1000000,"refill_per_minute":6000000}}' |
    jq -er .secret) || die "creating the bench key failed"
  token() { curl -fsS -X POST "$base/v1/tokens" -H "x-api-key: $key" | jq -er .access_token; }
  via=$(curl -fsS "$base/v1/whoami" -H "authorization: Bearer $(token)" | jq -er .via)
  [ "$via" = token ] || die "GET /v1/whoami with the bench token did not answer as expected"

  # One wrk run; appends a table row. A non-2xx answer or a socket error fails the run:
  # a 401 or a 429 would be fast, and would flatter the figures.
  load() {
    local label=$1 c=$2 header=$3 file
    file="$work/wrk-$label-$c.txt"
    wrk -t"$wrk_threads" -c"$c" -d"$duration" --latency -H "$header" "$base/v1/whoami" | tee "$file"
    if grep -qE 'Non-2xx|Socket errors' "$file"; then die "wrk saw errors or non-2xx answers ($label, $c connections)"; fi
    awk -v label="$label" -v c="$c" -v t="$wrk_threads" -v d="$duration" '
      /Requests\/sec:/ { rps = $2 }
      /^ +Latency +[0-9]/ { avg = $2; max = $4 }
      /^ +50%/ { p50 = $2 } /^ +75%/ { p75 = $2 } /^ +90%/ { p90 = $2 } /^ +99%/ { p99 = $2 }
      /requests in/ { n = $1 }
      END { printf "| %s | %s | %s | %s | %s | %.0f | %s | %s | %s | %s | %s | %s |\n", label, t, c, d, n, rps, avg, p50, p75, p90, p99, max }
    ' "$file" >>"$work/load-rows.md"
  }
  for c in $connections; do
    load bearer "$c" "Authorization: Bearer $(token)"
  done
  for c in $key_connections; do
    load x-api-key "$c" "x-api-key: $key"
  done
  kill -INT "$serve_pid"
  wait "$serve_pid" || die "tdev serve did not stop cleanly"
  {
    echo
    echo "## 2. GET /v1/whoami on tdev serve (release, embedded SQLite, RUST_LOG=warn)"
    echo
    echo "$load2"
    echo
    echo "| credential | wrk threads | connections | duration | requests | req/s | avg | p50 | p75 | p90 | p99 | max |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    cat "$work/load-rows.md"
  } >>"$summary"
fi

if wants cold_start; then
  step "3. Cold start of the Lambda functions (local Runtime API, moto)"
  load3=$(load_note)
  moto_port=$(free_port)
  .venv/bin/moto_server -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
  moto_pid=$!
  pids+=("$moto_pid")
  wait_for "http://127.0.0.1:$moto_port/moto-api/" "$moto_pid" "$work/moto.log"
  TDEV_BENCH_MOTO_URL="http://127.0.0.1:$moto_port" \
    cargo bench --locked -p tdev-auth --bench cold_start 2>&1 | tee "$work/cold_start.txt"
  {
    echo
    echo "## 3. Cold start (TDEV_BENCH_RUNS=$TDEV_BENCH_RUNS warm and TDEV_BENCH_COLD_RUNS=$TDEV_BENCH_COLD_RUNS with the binary dropped from the page cache, per function)"
    echo
    echo "$load3"
    echo
    sed -n '/^cold start:/,$p' "$work/cold_start.txt"
  } >>"$summary"
fi

step "Summary (also in $summary)"
echo "uptime at the end: $(uptime)" >>"$summary"
cat "$summary"
