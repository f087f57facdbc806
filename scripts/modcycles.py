#!/usr/bin/env python3
"""Report import cycles between the modules of one Rust crate.

Usage: scripts/modcycles.py <crate>/src [<crate>/src ...] [-v]

Reads every `.rs` file under a crate's `src/` and collects the paths it names inside the crate:
`use crate::a::{b, c::d}`, `crate::a::f()`, `super::x`, `self::x` and, in a crate root or a
`mod.rs`, paths that start with one of its own child modules. Doc comments and `//` comments
are ignored (a doc link is not a dependency). A path through a re-export (`crate::App` when the
root says `pub use app::App`) counts as a reference to the module that defines the item.

Cycles are checked at every level of the module tree, one directory module at a time: the
nodes are its direct children, each counted with all its descendants (so `ws/chat.rs` is part
of `ws` at the crate level, and a node of its own inside `ws`). References between a module
and its own ancestors are the tree, not edges. The top level is the crate-level graph.

Prints each level's edges with -v, every cycle found, and exits 1 if there is one.
"""

import os
import re
import sys
from collections import defaultdict

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip_comments(text):
    """Blanks out comments and string/char literals, keeping offsets and newlines."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
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
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not text[i - 1].isalnum()):
            m = re.match(r'r(#*)"', text[i:])
            end = text.find('"' + m.group(1), i + len(m.group(0)))
            j = n if end < 0 else end + 1 + len(m.group(1))
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]) or text.startswith("'\\u{", i):
            j = text.find("'", i + 1) + 1
            out.append(" " * (j - i))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def module_path(src, path):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] in ("lib", "main", "mod"):
        rel = rel[:-1]
    return tuple(rel)


def expand_use(tree):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e] (as lists of segments)."""
    tree = re.sub(r"\s+", "", tree)
    out = []

    def walk(prefix, s):
        # split the top-level comma list of s
        depth, parts, cur = 0, [], ""
        for ch in s:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        if cur:
            parts.append(cur)
        for p in parts:
            if "{" in p:
                head, rest = p.split("{", 1)
                head = [x for x in head.split("::") if x]
                walk(prefix + head, rest[:-1])
            else:
                p = re.sub(r"\bas\b.*", "", p)
                segs = [x for x in p.split("::") if x]
                out.append(prefix + segs)

    walk([], tree)
    return out


class Crate:
    def __init__(self, src):
        self.src = src
        self.files = {}  # module path -> stripped text
        for root, _, names in os.walk(src):
            for name in names:
                if name.endswith(".rs"):
                    p = os.path.join(root, name)
                    with open(p, encoding="utf-8") as f:
                        self.files[module_path(src, p)] = strip_comments(f.read())
        self.modules = set(self.files)
        # Inline modules (`mod tests { ... }`) are parts of their file, not nodes.
        self.reexports = {m: self.parse_reexports(m, t) for m, t in self.files.items()}

    def parse_reexports(self, mod, text):
        table = {}
        for m in re.finditer(r"\bpub(\([^)]*\))?\s+use\s+([^;]+);", text):
            for segs in expand_use(m.group(2)):
                target = self.absolute(mod, mod, segs)
                if target and segs[-1] != "*":
                    table[segs[-1]] = target
        return table

    def absolute(self, file_mod, scope, segs):
        """Segments as a path from the crate root, or None if outside the crate."""
        if not segs:
            return None
        head = segs[0]
        if head == "crate":
            return tuple(segs[1:])
        if head in ("super", "self"):
            base = list(scope)
            rest = list(segs)
            while rest and rest[0] in ("super", "self"):
                if rest[0] == "super":
                    if not base:
                        return None
                    base.pop()
                rest.pop(0)
            return tuple(base + rest)
        # In a crate root or mod.rs, `child::x` names the file's own child module.
        if scope == file_mod and tuple(file_mod) + (head,) in self.modules:
            return tuple(file_mod) + tuple(segs)
        return None

    def resolve(self, path, depth=0):
        """The module a crate path lands in: its longest module prefix, followed through
        re-exports when the next segment is an item re-exported there."""
        path = tuple(path)
        best = ()
        for k in range(len(path), -1, -1):
            if path[:k] in self.modules:
                best = path[:k]
                break
        rest = path[len(best):]
        if rest and depth < 8:
            target = self.reexports.get(best, {}).get(rest[0])
            if target is not None and target != best + (rest[0],):
                return self.resolve(tuple(target) + rest[1:], depth + 1)
        return best

    def inline_scopes(self, mod, text):
        """(start, end, scope) of inline `mod name { ... }` blocks."""
        spans = []
        for m in re.finditer(r"\bmod\s+(" + IDENT + r")\s*\{", text):
            depth, j = 1, m.end()
            while j < len(text) and depth:
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            spans.append((m.start(), j, m.group(1)))
        return spans

    def scope_at(self, mod, spans, pos):
        scope = list(mod)
        for start, end, name in spans:
            if start <= pos < end:
                scope.append(name)
        return tuple(scope)

    def references(self):
        """(from module, to module) for every crate path a file names."""
        refs = set()
        for mod, text in self.files.items():
            spans = self.inline_scopes(mod, text)
            found = []
            for m in re.finditer(r"\buse\s+([^;]+);", text):
                for segs in expand_use(m.group(1)):
                    found.append((m.start(), segs))
            code = re.sub(r"\buse\s+[^;]+;", lambda m: " " * len(m.group(0)), text)
            for m in re.finditer(r"(?<![A-Za-z0-9_:])(" + IDENT + r"(?:::" + IDENT + r")+)", code):
                found.append((m.start(), m.group(1).split("::")))
            for pos, segs in found:
                segs = [s for s in segs if s != "*"]
                target = self.absolute(mod, self.scope_at(mod, spans, pos), segs)
                if target is None:
                    continue
                refs.add((mod, self.resolve(target)))
        return refs


def cycles(nodes, edges):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def check(src, verbose):
    crate = Crate(src)
    refs = crate.references()
    parents = sorted({m[:-1] for m in crate.modules if m} | {()})
    name = os.path.basename(os.path.dirname(os.path.abspath(src)))
    found = False
    for parent in parents:
        children = sorted({m[len(parent)] for m in crate.modules
                           if len(m) > len(parent) and m[:len(parent)] == parent})
        if len(children) < 2:
            continue
        edges = defaultdict(set)

        def child_of(m):
            if len(m) > len(parent) and m[:len(parent)] == parent:
                return m[len(parent)]
            return None

        for a, b in refs:
            ca, cb = child_of(a), child_of(b)
            if ca and cb and ca != cb:
                edges[ca].add(cb)
        level = "::".join(("crate",) + parent)
        if verbose:
            for a in children:
                print(f"{name} {level}: {a} -> {', '.join(sorted(edges[a])) or '-'}")
        for comp in cycles(children, edges):
            found = True
            print(f"{name} {level}: CYCLE among {', '.join(comp)}")
            for a in comp:
                print(f"    {a} -> {', '.join(sorted(b for b in edges[a] if b in comp))}")
    if not found:
        print(f"{name}: no cycle ({len(crate.modules)} modules, {len(parents)} levels)")
    return found


def main(argv):
    verbose = "-v" in argv
    srcs = [a for a in argv if a != "-v"]
    if not srcs:
        print(__doc__, file=sys.stderr)
        return 2
    bad = [check(s, verbose) for s in srcs]
    return 1 if any(bad) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
