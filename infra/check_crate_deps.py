#!/usr/bin/env python3
"""Which crate of the workspace may depend on which: the layering of docs/design.md, checked.

Reads every member's Cargo.toml ([dependencies] only: tests and benches may reach
further) and fails, naming the crate and the dependency, when one of the workspace's own
crates depends on a crate its layer may not use. The rules:

- shared/domain (pure) depends on none of the workspace's crates;
- shared/runtime on the domain only; the adapters (shared/aws, shared/embedded,
  shared/invoke, shared/platforms) on the domain and runtime only;
- shared/http and shared/worker (the inbound glue) on the domain, runtime and the
  adapters, never on each other: a queue worker does not link the HTTP stack;
- a function (functions/*) never depends on another function: each links only its own
  code. Only the local stack (the root package) puts them all together.

Usage: python3 infra/check_crate_deps.py [--self-test]
"""

import pathlib
import sys
import tempfile
import tomllib

DOMAIN = {"tdev-domain"}
RUNTIME = {"tdev-runtime"}
ADAPTERS = {"tdev-aws", "tdev-embedded", "tdev-invoke", "tdev-platforms"}
INBOUND = {"tdev-http", "tdev-worker"}
FUNCTIONS = {"tdev-auth", "tdev-router", "tdev-orchestrator", "tdev-deployer"}
TEST_SUPPORT = {"tdev-conformance"}

ALLOWED = {
    "tdev-domain": set(),
    "tdev-runtime": DOMAIN,
    **{adapter: DOMAIN | RUNTIME for adapter in ADAPTERS},
    "tdev-http": DOMAIN | RUNTIME | ADAPTERS,
    "tdev-worker": DOMAIN | RUNTIME | ADAPTERS,
    **{function: DOMAIN | RUNTIME | ADAPTERS | INBOUND for function in FUNCTIONS},
    # The conformance suite drives the ports and the worker rule on both backends.
    "tdev-conformance": DOMAIN | RUNTIME | {"tdev-worker"},
    "tdev": DOMAIN | RUNTIME | ADAPTERS | INBOUND | FUNCTIONS,
}


def members(root: pathlib.Path) -> list[pathlib.Path]:
    workspace = tomllib.loads((root / "Cargo.toml").read_text())
    return [root] + [root / member for member in workspace["workspace"]["members"]]


def problems(root: pathlib.Path) -> list[str]:
    found = []
    for member in members(root):
        manifest = tomllib.loads((member / "Cargo.toml").read_text())
        name = manifest["package"]["name"]
        ours = {dep for dep in manifest.get("dependencies", {}) if dep.startswith("tdev")}
        if name not in ALLOWED:
            found.append(f"{member / 'Cargo.toml'}: crate {name} has no layer here: add it to ALLOWED")
            continue
        for dep in sorted(ours - ALLOWED[name]):
            found.append(f"{member / 'Cargo.toml'}: {name} may not depend on {dep}")
    return found


def self_test() -> None:
    """A tree that breaks two rules must be reported twice: the check can fail."""
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        crates = {
            ".": ("tdev", {}),
            "shared/domain": ("tdev-domain", {"tdev-http": {}}),
            "shared/http": ("tdev-http", {"tdev-domain": {}}),
            "functions/auth": ("tdev-auth", {"tdev-router": {}, "tdev-http": {}}),
            "functions/router": ("tdev-router", {"tdev-domain": {}}),
        }
        listed = ", ".join(f'"{path}"' for path in crates if path != ".")
        for path, (name, deps) in crates.items():
            (root / path).mkdir(parents=True, exist_ok=True)
            text = f'[package]\nname = "{name}"\n\n[dependencies]\n'
            text += "".join(f'{dep} = {{ path = "x" }}\n' for dep in deps)
            if path == ".":
                text = f"[workspace]\nmembers = [{listed}]\n\n" + text
            (root / path / "Cargo.toml").write_text(text)
        found = problems(root)
        expected = ["tdev-domain may not depend on tdev-http", "tdev-auth may not depend on tdev-router"]
        missing = [e for e in expected if not any(e in line for line in found)]
        if missing or len(found) != len(expected):
            sys.exit(f"self-test failed: expected {expected}, found {found}")
    print("check_crate_deps self-test: a domain -> http and a function -> function dependency are both reported")


def main() -> None:
    if "--self-test" in sys.argv[1:]:
        self_test()
        return
    root = pathlib.Path(__file__).resolve().parent.parent
    found = problems(root)
    for line in found:
        print(line, file=sys.stderr)
    if found:
        sys.exit(f"{len(found)} crate dependencies break the layering (see docs/design.md)")
    print(f"check_crate_deps: {len(members(root))} crates, every dependency within its layer")


if __name__ == "__main__":
    main()
