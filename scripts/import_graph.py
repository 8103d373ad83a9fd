"""The plugin's import graph, imports inside functions included.

Prints the import cycles among the plugin's modules (``methods/``,
``operators/``) and the private names (``_name``) one module imports from
another. Issue #27 (the house plan) turns this into a unit test that fails on
either; until then it reports what is left to untangle.

Usage: ``python scripts/import_graph.py [repo root]``
"""

import ast
import os
import sys

PACKAGES = ("methods", "store", "operators")


def plugin_modules(root):
    """Dotted module name -> file path, for every module of the packages."""
    modules = {}
    for package in PACKAGES:
        for folder, _, files in os.walk(os.path.join(root, package)):
            for name in files:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
                if dotted.endswith(".__init__"):
                    dotted = dotted[: -len(".__init__")]
                modules[dotted] = path
    return modules


def import_edges(modules):
    """(edges: module -> set of modules it imports, private: (importer, module, name))."""
    edges = {m: set() for m in modules}
    private = set()
    for module, path in modules.items():
        with open(path) as f:
            tree = ast.parse(f.read())
        parts = module.split(".")
        base = parts if path.endswith("__init__.py") else parts[:-1]
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                prefix = base[: len(base) - (node.level - 1)]
                target = ".".join(prefix + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] in PACKAGES:
                target = node.module
            else:
                continue
            for alias in node.names:
                submodule = target + "." + alias.name
                if submodule in modules:
                    edges[module].add(submodule)
                elif target in modules:
                    edges[module].add(target)
                    if alias.name.startswith("_"):
                        private.add((module, target, alias.name))
    return edges, private


def cycles(edges):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return found


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    edges, private = import_edges(plugin_modules(root))
    for component in cycles(edges):
        print("cycle:", " <-> ".join(component))
    for importer, module, name in sorted(private):
        print("private name across files: %s imports %s from %s" % (importer, name, module))


if __name__ == "__main__":
    main()
