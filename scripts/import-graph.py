#!/usr/bin/env python3
"""The crate's import graph, files as rooms and imports as arrows, checked.

An arrow goes from a file to the file of every module it names: in `use`
declarations (nested groups, `self`, renames, globs), in paths written
inline from `crate::` or `super::`, and, in a module's own file (`mod.rs`,
`lib.rs`), in paths through its child modules (`routes::ROUTES`). A path is
resolved to the longest module prefix that is a file, so `crate::api::Route`
points at `src/api/mod.rs` (the facade) and `crate::api::http::Route` at
`src/api/http.rs`. Test code (`#[cfg(test)]` items) and comments are left
out; `mod x;` declarations are not arrows (ownership, not use).

Fails (exit 1) when:
  - a circle of more than one file exists (a strongly connected component);
  - a file under src/plugins/ names anything of `crate::workers`: plugins
    see the plugin API (`crate::api`), `crate::pg`, the lower layers and
    their own folder only.

--report also prints, per plugin, the files outside its folder it imports,
and the largest files. Test-only tool: run by scripts/test.sh, installed
nowhere.
"""
import os
import re
import sys

ROOT = os.environ.get("IMPORT_GRAPH_SRC") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def module_path(rel):
    parts = rel[:-3].split("/")
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    if parts and parts[0] == "bin":
        return None
    return tuple(parts)


def strip_comments(src):
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if c == '"' or (c == "r" and src[i + 1 : i + 2] in ('"', "#") and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_"))):
            # string or raw string: copied through, its content blanked so a
            # `//` or a path inside it is not read as code
            if c == "r":
                j = i + 1
                hashes = 0
                while j < n and src[j] == "#":
                    hashes += 1
                    j += 1
                if j >= n or src[j] != '"':
                    out.append(c)
                    i += 1
                    continue
                end = '"' + "#" * hashes
                k = src.find(end, j + 1)
                k = n if k < 0 else k + len(end)
                out.append('""')
                i = k
                continue
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append('""')
            i = j + 1
        elif c == "'" and i + 2 < n and (src[i + 2] == "'" or (src[i + 1] == "\\" and "'" in src[i + 2 : i + 8])):
            j = src.find("'", i + 2 if src[i + 1] != "\\" else i + 3)
            out.append("' '")
            i = j + 1
        elif src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            i = n if j < 0 else j + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def strip_test_items(src):
    """Removes each item under `#[cfg(test)]` (a module, a function...)."""
    while True:
        m = re.search(r"#\[cfg\(test\)\]", src)
        if not m:
            return src
        i = m.end()
        # the item ends at its block's closing brace or at a `;`
        depth, j = 0, i
        while j < len(src):
            ch = src[j]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    j += 1
                    break
            elif ch == ";" and depth == 0:
                j += 1
                break
            j += 1
        src = src[: m.start()] + src[j:]


def use_paths(tree):
    """Paths of a use tree: `a::{b, c::{d as e}, self}` -> [a::b, a::c::d, a]."""
    tree = tree.strip()
    m = re.match(r"^(.*?)::\{(.*)\}$", tree, re.S)
    if not m:
        if tree.startswith("{") and tree.endswith("}"):
            m = re.match(r"^()\{(.*)\}$", tree, re.S)
        else:
            return [tree.split(" as ")[0].strip().split("::")]
    prefix = [p for p in m.group(1).split("::") if p]
    items, depth, cur = [], 0, ""
    for ch in m.group(2):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    out = []
    for it in items:
        it = it.strip()
        if not it:
            continue
        for sub in use_paths(it):
            out.append(prefix if sub == ["self"] else prefix + sub)
    return out


def build():
    files, mods = {}, {}
    for d, _, names in os.walk(ROOT):
        for f in names:
            if f.endswith(".rs"):
                p = os.path.join(d, f)
                rel = os.path.relpath(p, ROOT)
                files[rel] = strip_test_items(strip_comments(open(p, encoding="utf-8").read()))
                m = module_path(rel)
                if m is not None:
                    mods[m] = rel

    def resolve(path):
        for i in range(len(path), 0, -1):
            if tuple(path[:i]) in mods:
                return mods[tuple(path[:i])]
        return None

    edges = {rel: set() for rel in files}
    for rel, src in files.items():
        me = module_path(rel)
        if me is None:
            continue
        owner = rel.endswith(("mod.rs", "lib.rs"))
        children = {k[-1] for k in mods if len(k) == len(me) + 1 and k[:-1] == me}

        def absolute(path):
            path = [x.strip() for x in path if x.strip()]
            if not path or path[-1] == "*" and len(path) == 1:
                return None
            if path[-1] == "*":
                path = path[:-1]
            if path[0] == "crate":
                return path[1:]
            if path[0] in ("super", "self"):
                base = list(me)
                while path and path[0] in ("super", "self"):
                    if path[0] == "super":
                        base = base[:-1]
                    path = path[1:]
                return base + path
            if path[0] in children:
                return list(me) + path
            return None  # another crate, std, a prelude name

        for um in re.finditer(r"\buse\s+([^;]+);", src):
            for path in use_paths(um.group(1)):
                full = absolute(path)
                target = resolve(full) if full else None
                if target and target != rel:
                    edges[rel].add(target)
        for m in re.finditer(r"(?<![A-Za-z0-9_:])((?:crate|super)(?:::[A-Za-z_][A-Za-z0-9_]*)+)", src):
            full = absolute(m.group(1).split("::"))
            target = resolve(full) if full else None
            if target and target != rel:
                edges[rel].add(target)
        if owner:
            for child in children:
                if re.search(r"(?<![A-Za-z0-9_:])" + child + r"::", src):
                    target = mods[me + (child,)]
                    if target != rel:
                        edges[rel].add(target)
    return files, edges


def circles(edges):
    sys.setrecursionlimit(100000)
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

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
            out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]


def main():
    files, edges = build()
    failed = False
    for c in sorted(circles(edges), key=len, reverse=True):
        failed = True
        print(f"import-graph: a circle of {len(c)} files: {', '.join(c)}")
    for rel, src in sorted(files.items()):
        if rel.startswith("plugins/") and re.search(r"(?<![A-Za-z0-9_])crate::workers\b", src):
            failed = True
            print(f"import-graph: src/{rel} uses crate::workers: plugins use crate::api")
    if "--report" in sys.argv:
        plugins = sorted({r.split("/")[1] for r in files if r.startswith("plugins/") and r.count("/") == 2})
        print("files each plugin imports outside its folder:")
        for p in plugins:
            outside = sorted({t for r, ts in edges.items() if r.startswith(f"plugins/{p}/") for t in ts if not t.startswith(f"plugins/{p}/")})
            print(f"  {p:15} {len(outside):2}  {' '.join(outside)}")
        print("largest files (lines):")
        sizes = sorted(((sum(1 for _ in open(os.path.join(ROOT, r), encoding="utf-8")), r) for r in files), reverse=True)
        for n, r in sizes[:6]:
            print(f"  {n:5}  src/{r}")
    edges_n = sum(len(t) for t in edges.values())
    print(f"import-graph: {len(files)} files, {edges_n} arrows: " + ("FAILED" if failed else "no circle, plugins use the API only"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
