"""The plugin's import graph, imports inside functions included.

Prints the import cycles among the plugin's modules (``methods/``,
``store/``, ``operators/``), the private names (``_name``) one module uses
from another (imported, or read as ``module._name``), and the imports that
break the layering (``methods`` <- ``store`` <- ``operators``: each layer
imports only from the ones below it, and ``methods`` never imports
FiftyOne). ``tests/unit/test_architecture.py`` fails on any of them.

Usage: ``python scripts/import_graph.py [repo root]``
"""

import ast
import os
import sys

PACKAGES = ("methods", "store", "operators")
#: each layer, and the layers it may import from (itself included)
LAYERS = {"methods": ("methods",), "store": ("methods", "store"),
          "operators": ("methods", "store", "operators")}


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
        aliases = {}  # local name -> plugin module (``from . import runs as lnr``)
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
                    aliases[alias.asname or alias.name] = submodule
                elif target in modules:
                    edges[module].add(target)
                    if alias.name.startswith("_"):
                        private.add((module, target, alias.name))
        for node in ast.walk(tree):  # module._name
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and node.attr.startswith("_")
                    and not node.attr.startswith("__") and aliases[node.value.id] != module):
                private.add((module, aliases[node.value.id], node.attr))
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


def layer_violations(root, edges):
    """``(importer, imported)`` pairs that break the layering, and
    ``(module, "fiftyone")`` for a ``methods`` module importing FiftyOne."""
    found = []
    for module, targets in edges.items():
        layer = module.split(".")[0]
        for target in targets:
            if target.split(".")[0] not in LAYERS[layer]:
                found.append((module, target))
    for module, path in plugin_modules(root).items():
        if module.split(".")[0] != "methods":
            continue
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            if any(n == "fiftyone" or n.startswith("fiftyone.") for n in names):
                found.append((module, "fiftyone"))
    return sorted(set(found))


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    edges, private = import_edges(plugin_modules(root))
    for component in cycles(edges):
        print("cycle:", " <-> ".join(component))
    for importer, module, name in sorted(private):
        print("private name across files: %s uses %s of %s" % (importer, name, module))
    for importer, imported in layer_violations(root, edges):
        print("layering: %s imports %s" % (importer, imported))


if __name__ == "__main__":
    main()
