#!/usr/bin/env python3
"""Checks the import graph of the pure domain crate (shared/domain/src).

The rules (docs/design.md, "The domain crate"):

- no cycle between files;
- no cycle between areas;
- the shared kernel (KERNEL) imports no area;
- an area imports only areas below it in AREAS (earlier in the list), never one above.

An import is a `use` of a path inside the crate (`crate::`, `super::`, `self::`, or a
child module's name) or such a path written in the code (`crate::validation::unsafe_char(..)`),
test modules included; comments and strings are not read. A path is followed through the
re-exports of the module it names (`pub use model::Agent` in `agents/mod.rs`) to the file
that defines the item, so importing `crate::agents::Agent` is an import of
`agents/model.rs`. A `pub use` is the module tree, like `mod`, and not an import of the
file that writes it, unless that file uses the name in its own code.

Usage:
    infra/check_domain_imports.py [--root shared/domain/src]   check; exit 1 on a violation
    infra/check_domain_imports.py --self-test                  show that the check can fail

Standard library only; reads the files once (well under a second).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field

# Lower first: an area may import only the areas before it.
AREAS = ["workflow", "agents", "squads", "events", "auth", "messaging", "runs", "deploy"]
# What every area shares; it imports no area.
KERNEL = ["ports", "queue", "clock", "health", "bounded", "strict", "validation", "yaml"]

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "shared", "domain", "src")


# ---------------------------------------------------------------------------------------
# Reading a file: comments and literals blanked (newlines kept, so lines still count).


RAW_STRING = re.compile(r'b?r(#*)"')
CHAR_LITERAL = re.compile(r"'(\\(u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^\\'])'", re.S)


def blank_comments_and_literals(text: str) -> str:
    out = []
    i, n = 0, len(text)

    def blank(chunk: str) -> str:
        return "".join("\n" if c == "\n" else " " for c in chunk)

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(blank(text[i:j]))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(text[i:j]))
            i = j
        elif (m := RAW_STRING.match(text, i)) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = text.find('"' + m.group(1), m.end())
            j = n if end < 0 else end + 1 + len(m.group(1))
            out.append(blank(text[i:j]))
            i = j
        elif c == '"' or (c == "b" and text.startswith('b"', i) and (i == 0 or not text[i - 1].isalnum())):
            j = i + (2 if c == "b" else 1)
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(blank(text[i : j + 1]))
            i = j + 1
        elif c == "'":
            # A char literal ('x', '\n', '\u{1F600}'), or a lifetime ('a), left as it is.
            m = CHAR_LITERAL.match(text, i)
            if m:
                out.append(blank(m.group(0)))
                i = m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


@dataclass
class UseItem:
    """One leaf of a use tree: `path` relative to its prefix (`crate`, `super`, ...)."""

    path: list[str]
    name: str | None  # the name it binds (None for a glob)
    glob: bool


def parse_use_tree(text: str) -> list[UseItem]:
    tokens = re.findall(r"::|[{},*]|\w+", text)
    pos = 0

    def tree(prefix: list[str]) -> list[UseItem]:
        nonlocal pos
        path = list(prefix)
        while pos < len(tokens):
            t = tokens[pos]
            if t == "{":
                pos += 1
                items: list[UseItem] = []
                while pos < len(tokens) and tokens[pos] != "}":
                    if tokens[pos] == ",":
                        pos += 1
                        continue
                    items += tree(path)
                pos += 1
                return items
            if t == "*":
                pos += 1
                return [UseItem(path, None, True)]
            if t == "::":
                pos += 1
                continue
            if t in (",", "}"):
                break
            path.append(t)
            pos += 1
            if pos < len(tokens) and tokens[pos] == "as":
                alias = tokens[pos + 1]
                pos += 2
                return [UseItem(path, alias, False)]
            if pos >= len(tokens) or tokens[pos] in (",", "}"):
                break
        if path and path[-1] == "self":
            return [UseItem(path[:-1], path[-2] if len(path) > 1 else None, False)]
        return [UseItem(path, path[-1] if path else None, False)]

    return tree([])


@dataclass
class Import:
    file: str
    line: int
    text: str
    target: str  # the file imported


@dataclass
class SourceFile:
    rel: str
    module: tuple[str, ...]
    code: str
    # (inline module path, start offset, end offset)
    inline: list[tuple[tuple[str, ...], int, int]] = field(default_factory=list)
    children: dict[tuple[str, ...], set[str]] = field(default_factory=dict)
    # (offset, end, is_pub, items, module where written)
    uses: list[tuple[int, int, bool, list[UseItem], tuple[str, ...]]] = field(default_factory=list)


def module_of(rel: str) -> tuple[str, ...]:
    parts = rel[:-3].split("/")
    if parts == ["lib"]:
        return ()
    if parts[-1] == "mod":
        parts = parts[:-1]
    return tuple(parts)


def read_file(root: str, rel: str) -> SourceFile:
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        code = blank_comments_and_literals(f.read())
    src = SourceFile(rel, module_of(rel), code)
    # Inline modules (`mod tests { ... }`), found by matching braces.
    for m in re.finditer(r"\bmod\s+(\w+)\s*\{", code):
        depth, j = 1, m.end()
        while j < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[j], 0)
            j += 1
        src.inline.append(((m.group(1),), m.start(), j))
    for m in re.finditer(r"\bmod\s+(\w+)\s*[;{]", code):
        src.children.setdefault(module_at(src, m.start()), set()).add(m.group(1))
    for m in re.finditer(r"(\bpub(\s*\([^)]*\))?\s+)?\buse\s+([^;]*);", code):
        items = parse_use_tree(m.group(3))
        src.uses.append((m.start(), m.end(), bool(m.group(1)), items, module_at(src, m.start())))
    return src


def module_at(src: SourceFile, offset: int) -> tuple[str, ...]:
    path = src.module
    for names, start, end in sorted(src.inline, key=lambda x: x[1]):
        if start <= offset < end:
            path = path + names
    return path


def line_of(code: str, offset: int) -> int:
    return code.count("\n", 0, offset) + 1


class Crate:
    def __init__(self, root: str):
        self.root = root
        self.files: dict[str, SourceFile] = {}
        for dirpath, _, names in os.walk(root):
            for name in sorted(names):
                if name.endswith(".rs"):
                    rel = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
                    self.files[rel] = read_file(root, rel)
        self.modules = {src.module: rel for rel, src in self.files.items()}
        # module -> name -> absolute path of what it re-exports under that name
        self.reexports: dict[tuple[str, ...], dict[str, list[str]]] = {}
        for src in self.files.values():
            for _, _, is_pub, items, module in src.uses:
                if not is_pub:
                    continue
                for item in items:
                    absolute = self.absolute(src, module, item.path)
                    if absolute is not None and item.name and not item.glob:
                        self.reexports.setdefault(module, {})[item.name] = absolute

    def file_module(self, module: tuple[str, ...]) -> tuple[str, ...]:
        while module not in self.modules:
            module = module[:-1]
        return module

    def absolute(self, src: SourceFile, module: tuple[str, ...], path: list[str]) -> list[str] | None:
        """The path from the crate root, or None for another crate's path."""
        if not path:
            return None
        head, rest = path[0], path[1:]
        if head == "crate":
            return rest
        if head in ("self", "super"):
            at = list(module)
            while path and path[0] in ("self", "super"):
                if path[0] == "super":
                    at = at[:-1]
                path = path[1:]
            return at + path
        declared = src.children.get(module, set())
        if head in declared:
            return list(module) + path
        return None

    def resolve(self, path: list[str], depth: int = 0) -> str:
        """The file that defines what `path` (from the crate root) names."""
        i = len(path)
        while i > 0 and tuple(path[:i]) not in self.modules:
            i -= 1
        module, rest = tuple(path[:i]), path[i:]
        source = self.reexports.get(module, {}).get(rest[0]) if rest else None
        if source is not None and depth < 32:
            return self.resolve(source + rest[1:], depth + 1)
        return self.modules[module]

    def imports(self) -> list[Import]:
        found: list[Import] = []
        for rel, src in self.files.items():
            if src.module == ():
                continue  # lib.rs: the crate's table of contents
            code = src.code
            body = list(code)
            for start, end, is_pub, items, module in src.uses:
                text = " ".join(code[start:end].split())
                for k in range(start, end):
                    if body[k] != "\n":
                        body[k] = " "
                for item in items:
                    absolute = self.absolute(src, module, item.path)
                    if absolute is None:
                        continue
                    if is_pub and not item.glob:
                        continue  # judged below, by whether the file uses the name
                    target = self.modules[self.file_module(tuple(absolute))] if item.glob else self.resolve(absolute)
                    found.append(Import(rel, line_of(code, start), text, target))
            rest = "".join(body)
            for start, end, is_pub, items, module in src.uses:
                if not is_pub:
                    continue
                text = " ".join(code[start:end].split())
                for item in items:
                    absolute = self.absolute(src, module, item.path)
                    if absolute is None or item.glob or not item.name:
                        continue
                    if re.search(r"(?<![\w:])" + re.escape(item.name) + r"\b", rest):
                        found.append(Import(rel, line_of(code, start), text, self.resolve(absolute)))
            heads = {"crate", "super", "self"}
            for names in src.children.values():
                heads |= names
            pattern = r"(?<![\w:])(" + "|".join(sorted(heads)) + r")((?:\s*::\s*\w+)+)"
            for m in re.finditer(pattern, rest):
                module = module_at(src, m.start())
                if m.group(1) not in ("crate", "super", "self") and m.group(1) not in src.children.get(module, set()):
                    continue
                path = [m.group(1)] + re.findall(r"\w+", m.group(2))
                absolute = self.absolute(src, module, path)
                if absolute is None:
                    continue
                text = " ".join(m.group(0).split())
                found.append(Import(rel, line_of(code, m.start()), text, self.resolve(absolute)))
        unique = {(i.file, i.line, i.text, i.target): i for i in found if i.target != i.file}
        return list(unique.values())


# ---------------------------------------------------------------------------------------
# The rules.


def area_of(rel: str) -> str:
    top = rel.split("/")[0]
    return top[:-3] if top.endswith(".rs") else top


def cycles(nodes: list[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(edges.get(succ, ())))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def check(root: str, areas: list[str] = AREAS, kernel: list[str] = KERNEL) -> tuple[list[str], str]:
    crate = Crate(root)
    imports = crate.imports()
    problems: list[str] = []
    for rel in sorted(crate.files):
        top = area_of(rel)
        if top != "lib" and top not in areas and top not in kernel:
            problems.append(f"{rel}: `{top}` is neither an area nor the shared kernel: add it to AREAS or KERNEL")

    def at(i: Import) -> str:
        return f"{i.file}:{i.line}: `{i.text}` -> {i.target}"

    file_edges: dict[str, set[str]] = {}
    for i in imports:
        file_edges.setdefault(i.file, set()).add(i.target)
    for component in cycles(sorted(crate.files), file_edges):
        members = set(component)
        problems.append("a cycle between files: " + " <-> ".join(component))
        problems += ["  " + at(i) for i in imports if i.file in members and i.target in members]

    area_edges: dict[str, set[str]] = {}
    for i in imports:
        a, b = area_of(i.file), area_of(i.target)
        if a != b and a in areas and b in areas:
            area_edges.setdefault(a, set()).add(b)
    for component in cycles(areas, area_edges):
        members = set(component)
        problems.append("a cycle between areas: " + " <-> ".join(component))
        problems += [
            "  " + at(i)
            for i in imports
            if area_of(i.file) in members and area_of(i.target) in members and area_of(i.file) != area_of(i.target)
        ]

    for i in imports:
        a, b = area_of(i.file), area_of(i.target)
        if a in kernel and b in areas:
            problems.append(f"the shared kernel imports an area: {at(i)}")
        elif a in areas and b in areas and areas.index(b) > areas.index(a):
            problems.append(f"an area imports one above it ({a} < {b} in AREAS): {at(i)}")

    between = sorted({(area_of(i.file), area_of(i.target)) for i in imports if area_of(i.file) != area_of(i.target)})
    area_arrows = [f"{a} -> {b}" for a, b in between if a in areas and b in areas]
    summary = (
        f"{len(crate.files)} files, {len(imports)} imports between files; "
        f"areas, lowest first: {' < '.join(areas)}; kernel: {', '.join(kernel)}\n"
        f"area -> area: {', '.join(area_arrows) or 'none'}"
    )
    return problems, summary


# ---------------------------------------------------------------------------------------
# The self-test: a tiny crate with one of each violation, and the same crate mended.

BROKEN = {
    "lib.rs": "pub mod agents;\npub mod events;\npub mod ports;\n",
    # The kernel importing an area.
    "ports.rs": "use crate::agents::Agent;\npub struct StoreError;\n",
    "agents/mod.rs": "mod model;\nmod other;\npub use model::Agent;\npub use other::Other;\n",
    # An area importing one above it (agents < events); with events/c.rs, an area cycle.
    "agents/model.rs": (
        "// use crate::events::Hidden; in a comment is no import\n"
        "use crate::events::Event;\n"
        'pub struct Agent;\nconst NOT_AN_IMPORT: &str = "crate::events::Event";\n'
        "#[cfg(test)]\nmod tests {\n    use super::*;\n}\n"
    ),
    "agents/other.rs": "pub struct Other;\n",
    "events/mod.rs": "mod a;\nmod b;\nmod c;\npub use a::Event;\n",
    # A cycle between two files: one way by `use`, the other by a path in the code.
    "events/a.rs": "use super::b::B;\npub struct Event;\n",
    "events/b.rs": "pub struct B;\nfn f() -> super::a::Event {\n    super::a::Event\n}\n",
    "events/c.rs": "use crate::agents::Other;\n",
}

MENDED = dict(
    BROKEN,
    **{
        "ports.rs": "pub struct StoreError;\n",
        "agents/model.rs": "use crate::ports::StoreError;\npub struct Agent;\n",
        "events/b.rs": "pub struct B;\n",
    },
)

EXPECTED = [
    "a cycle between files: events/a.rs <-> events/b.rs",
    "  events/b.rs:2: `super::a::Event` -> events/a.rs",
    "  events/a.rs:1: `use super::b::B;` -> events/b.rs",
    "a cycle between areas: agents <-> events",
    "  events/c.rs:1: `use crate::agents::Other;` -> agents/other.rs",
    "the shared kernel imports an area: ports.rs:1: `use crate::agents::Agent;` -> agents/model.rs",
    "an area imports one above it (agents < events in AREAS): agents/model.rs:2: `use crate::events::Event;` -> events/a.rs",
]


def self_test() -> int:
    areas, kernel = ["agents", "events"], ["ports"]
    failures = []
    for name, tree in (("broken", BROKEN), ("mended", MENDED)):
        with tempfile.TemporaryDirectory() as root:
            for rel, text in tree.items():
                os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
                with open(os.path.join(root, rel), "w", encoding="utf-8") as f:
                    f.write(text)
            problems, _ = check(root, areas, kernel)
        report = "\n".join(problems)
        print(f"self-test, {name} tree: {len(problems)} lines reported")
        for line in problems:
            print("  | " + line)
        if name == "broken":
            failures += [f"not reported: {e}" for e in EXPECTED if e not in problems]
            failures += [f"a comment or a string was read: {line}" for line in problems if "Hidden" in line or "NOT_AN" in line]
            failures += [f"a test module's `use super::*` was read: {line}" for line in problems if "super::*" in line]
        elif problems:
            failures.append("the mended tree should pass")
    for failure in failures:
        print("SELF-TEST FAILED: " + failure, file=sys.stderr)
    if not failures:
        print("self-test passed: every kind of violation is reported, and the mended tree passes")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=ROOT, help="the crate's src directory")
    parser.add_argument("--self-test", action="store_true", help="show that the check can fail")
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    problems, summary = check(os.path.normpath(args.root))
    print(f"shared/domain import graph: {summary}")
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print(f"FAILED: {sum(not p.startswith('  ') for p in problems)} problems", file=sys.stderr)
        return 1
    print("OK: no cycle between files or areas, no import from the kernel into an area, none against the area order")
    return 0


if __name__ == "__main__":
    sys.exit(main())
