#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs the tools it needs into
# .venv (moto, cfn-lint, aws-sam-cli, cargo-lambda, schemathesis), starts moto for the AWS
# adapters, checks the import graph of shared/domain, runs the Rust test suites, fuzzes
# the local stack's API with schemathesis, lints the SAM template and builds the Lambda
# functions.
# Any missing tool or failing step fails the whole run: nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "Python tools (.venv, pinned in infra/requirements.txt)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r infra/requirements.txt
export PATH="$PWD/.venv/bin:$PATH"
for tool in curl jq; do
  if ! command -v "$tool" >/dev/null; then
    echo "installing $tool (the quickstart test needs it)"
    apt-get update -qq && apt-get install -y -qq "$tool"
  fi
done
export SAM_CLI_TELEMETRY=0

step "moto (a local AWS-protocol server for the AWS adapters)"
moto_port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
moto_log=$(mktemp)
# moto, with updated AgentCore runtimes becoming READY as on AWS (see the script).
.venv/bin/python infra/moto_server.py -H 127.0.0.1 -p "$moto_port" >"$moto_log" 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$moto_port/moto-api/" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then cat "$moto_log"; echo "moto failed to start" >&2; exit 1; fi
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$moto_port/moto-api/" >/dev/null || { cat "$moto_log"; echo "moto did not answer" >&2; exit 1; }
export TDEV_TEST_MOTO_URL="http://127.0.0.1:$moto_port"
# The Python producer (tests/python/producer.py) runs in the venv, with cryptography and boto3.
export TDEV_TEST_PYTHON="$PWD/.venv/bin/python"

step "Rust: formatting"
cargo fmt --all -- --check

step "shared/domain: the import graph (no cycle, no upward import; the self-test shows the check can fail)"
python3 infra/check_domain_imports.py --self-test
python3 infra/check_domain_imports.py

step "Crates: each depends only on its layer's (a function never on another function)"
python3 infra/check_crate_deps.py --self-test
python3 infra/check_crate_deps.py

step "Rust: every test of the workspace (embedded backend, moto, HTTP, Lambda events)"
cargo test --workspace --locked

step "README quickstart, pasted verbatim against a fresh local stack"
cargo build --locked -p tdev
./infra/quickstart-test.sh

step "schemathesis: every operation, every check, stateful, against a fresh local stack"
./infra/schemathesis.sh

step "SAM template: sam validate --lint and cfn-lint"
sam validate --lint --region us-east-1
cfn-lint template.yaml

step "Lambda functions: cargo lambda build --release --x86-64"
cargo lambda build --release --x86-64 --package tdev-auth --package tdev-router --package tdev-orchestrator \
  --package tdev-deployer
for bin in auth authorizer router message-consumer orchestrator step-worker deployer deploy-worker; do
  test -s "${CARGO_TARGET_DIR:-target}/lambda/$bin/bootstrap" || { echo "$bin/bootstrap was not built" >&2; exit 1; }
done

step "All checks passed"
