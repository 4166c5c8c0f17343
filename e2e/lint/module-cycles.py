#!/usr/bin/env python3
"""Fails when modules of operator/src import each other in a circle (non-test code).

The graph: an edge from module A to module B when A names a path into B (`crate::b::…`,
`super::b::…`, a `use` group). Paths into a module's own ancestors are left out: a child
using its parent's items is how Rust modules nest. Prints each cycle with its edges.
Run by `make lint`; usage: e2e/lint/module-cycles.py [operator/src]
"""
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else "operator/src"


def modules(root):
    found = {}
    for directory, _, files in os.walk(root):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(directory, name)
            parts = os.path.relpath(path, root)[:-3].split("/")
            if parts[-1] == "mod":
                parts = parts[:-1]
            if parts in (["lib"], ["main"]):
                continue
            found["::".join(parts)] = path
    return found


MODS = modules(ROOT)


def resolve(segments):
    """The longest prefix of `segments` that is a module."""
    for end in range(len(segments), 0, -1):
        name = "::".join(segments[:end])
        if name in MODS:
            return name
    return None


def group_items(text, start):
    """The paths inside the `{…}` group that opens at or after `start`."""
    open_at = text.find("{", start)
    depth, index = 0, open_at
    while index < len(text):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                break
        index += 1
    return re.findall(r"(\w+(?:::\w+)*)", text[open_at + 1 : index])


def edges_of(module, path):
    text = open(path).read()
    test_code = text.find("#[cfg(test)]")
    if test_code >= 0:
        text = text[:test_code]
    text = re.sub(r"//.*", "", text)
    text = re.sub(r"pub\(in [^)]*\)", "pub", text)
    here = module.split("::") if module else []
    targets = set()
    for match in re.finditer(r"\b(crate|super|self)((?:::(?:super|\w+))+)", text):
        head = match.group(1)
        rest = [s for s in match.group(2).split("::") if s]
        base = [] if head == "crate" else here if head == "self" else here[:-1]
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
        candidates = [base + rest]
        if text[match.end() : match.end() + 3] == "::{":
            candidates += [base + rest + item.split("::") for item in group_items(text, match.end())]
        for segments in candidates:
            target = resolve(segments)
            if target and target != module and not module.startswith(target + "::"):
                targets.add(target)
    return targets


GRAPH = {module: edges_of(module, path) for module, path in MODS.items()}


def cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    sys.setrecursionlimit(10000)

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


FOUND = cycles(GRAPH)
for component in FOUND:
    print("module cycle: " + ", ".join(component))
    for module in component:
        print(f"    {module} -> {', '.join(sorted(t for t in GRAPH[module] if t in component))}")
if FOUND:
    sys.exit(1)
print(f"no module cycle among {len(MODS)} modules of {ROOT}")
