#!/usr/bin/env python3
"""Check the layout of src/ that lib.rs's `# Layout` doc promises:

1. a top-level module imports only modules listed below it in that doc (no import
   runs back up, so no circle between top-level modules);
2. no import circle between files anywhere in src/;
3. no function outside tests is longer than 100 lines, unless the comment above it
   says why (a line with "Long function:").

Imports are read from the code (comments and strings removed): `use crate::…`,
`use super::…`, `use self::…` and paths written inline as `crate::a::b`.
Usage: scripts/check-layout.py [SRC_DIR]   (exit 1 with a list of what is wrong)
"""
import os
import re
import sys

SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "src")
MAX_FN_LINES = 100


def strip(code):
    code = re.sub(r"/\*.*?\*/", "", code, flags=re.S)
    code = re.sub(r'(?<![\w"])r(#*)"(?:.|\n)*?"\1', '""', code)
    code = re.sub(r"'(\\.|[^'\\])'", "' '", code)
    code = re.sub(r'"(\\.|[^"\\])*"', '""', code)
    return "\n".join(line.split("//")[0] for line in code.split("\n"))


def modules(src):
    """file path -> module path (tuple), for every .rs file below src."""
    out = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            p = os.path.join(root, f)
            rel = os.path.relpath(p, src)[:-3].split(os.sep)
            if rel in (["lib"], ["main"]):
                mod = ()
            elif rel[-1] == "mod":
                mod = tuple(rel[:-1])
            else:
                mod = tuple(rel)
            if rel == ["main"]:
                continue  # the binary uses the library from outside
            out[p] = mod
    return out


def is_test(mod):
    return "tests" in mod


def references(code, mod, known):
    """Modules (as tuples, resolved to the deepest known one) that `code` imports."""
    refs = set()
    # Expand `use a::{b, c::{d}}` into paths; inline paths are matched as they are.
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", code):
        paths.extend(expand(m.group(1).replace("\n", " ").replace(" ", "")))
    paths.extend(re.findall(r"\b((?:crate|super|self)(?:::\w+)+)", code))
    for p in paths:
        parts = p.split("::")
        if parts[0] == "crate":
            base, rest = (), parts[1:]
        elif parts[0] in ("super", "self"):
            base = mod
            while parts and parts[0] in ("super", "self"):
                if parts[0] == "super":
                    base = base[:-1]
                parts = parts[1:]
            rest = parts
        else:
            continue
        full = base + tuple(rest)
        for n in range(len(full), 0, -1):
            if full[:n] in known:
                if full[:n] != mod:
                    refs.add(full[:n])
                break
    return refs


def expand(tree):
    """`a::{b,c::{d,e}}` -> [a::b, a::c::d, a::c::e]."""
    i = tree.find("{")
    if i < 0:
        return [tree.split(" as ")[0]]
    prefix, inner = tree[:i], tree[i + 1 : tree.rfind("}")]
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        if p in ("", "self"):
            out.append(prefix.rstrip(":"))
        elif p != "*":
            out.extend(expand(prefix + p))
        else:
            out.append(prefix.rstrip(":"))
    return out


def layout_order(src):
    text = open(os.path.join(src, "lib.rs"), encoding="utf-8").read()
    return re.findall(r"^//! - \[`(\w+)`\]", text, flags=re.M)


def long_functions(path, code_lines, raw_lines):
    bad = []
    i = 0
    while i < len(code_lines):
        m = re.match(r"\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)", code_lines[i])
        if not m:
            i += 1
            continue
        depth, started, j = 0, False, i
        while j < len(code_lines):
            depth += code_lines[j].count("{") - code_lines[j].count("}")
            started = started or "{" in code_lines[j]
            if (started and depth <= 0) or (not started and code_lines[j].rstrip().endswith(";")):
                break
            j += 1
        n = j - i + 1
        if n > MAX_FN_LINES:
            k, doc = i - 1, []
            while k >= 0 and raw_lines[k].strip().startswith(("///", "//", "#[")):
                doc.append(raw_lines[k])
                k -= 1
            if not any("Long function:" in d for d in doc):
                bad.append(f"{path}:{i + 1}: fn {m.group(6)} is {n} lines (over {MAX_FN_LINES}); split it, or say why in a 'Long function:' comment")
        i += 1
    return bad


def cycles(graph):
    """Every elementary circle found by DFS (one per back edge)."""
    found, color, stack = [], {}, []

    def dfs(u):
        color[u] = 1
        stack.append(u)
        for v in sorted(graph.get(u, ())):
            if color.get(v) == 1:
                found.append(stack[stack.index(v):] + [v])
            elif v not in color:
                dfs(v)
        stack.pop()
        color[u] = 2

    for u in sorted(graph):
        if u not in color:
            dfs(u)
    return found


def main():
    mods = modules(SRC)
    known = set(mods.values())
    order = layout_order(SRC)
    problems = []
    tops = {m[0] for m in known if m}
    missing = sorted(tops - set(order))
    if missing:
        problems.append(f"lib.rs # Layout does not list: {', '.join(missing)}")
    graph = {}
    for path, mod in sorted(mods.items()):
        raw = open(path, encoding="utf-8").read()
        code = strip(raw)
        if not is_test(mod) and "#[cfg(test)]" not in code.split("\n")[0]:
            problems.extend(long_functions(os.path.relpath(path), code.split("\n"), raw.split("\n")))
        # Unit tests may import anything; they are not part of the layout.
        code = re.split(r"#\[cfg\(test\)\]\s*mod\s+tests\s*\{", code)[0]
        if is_test(mod):
            continue
        refs = {r for r in references(code, mod, known) if not is_test(r)}
        graph[mod] = refs
        if not mod:
            continue
        for r in refs:
            if r and r[0] != mod[0] and r[0] in order and mod[0] in order:
                if order.index(r[0]) < order.index(mod[0]):
                    problems.append(f"{os.path.relpath(path)}: {'::'.join(mod)} imports {'::'.join(r)}, which lib.rs lists above it")
    for c in cycles(graph):
        problems.append("import circle: " + " -> ".join("::".join(m) or "crate" for m in c))
    if problems:
        print("layout check failed:")
        for p in problems:
            print("  " + p)
        sys.exit(1)
    print(f"layout ok: {len(graph)} files, {sum(len(v) for v in graph.values())} imports, no circle, none running back up, no function over {MAX_FN_LINES} lines")


if __name__ == "__main__":
    main()
