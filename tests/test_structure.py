"""The shape of the package: imports among nndl's modules point one way, with no cycles.

A cycle (a imports b, b imports a, perhaps through others) makes the order
of imports matter, lets a half-initialised module be seen, and means no
module of the cycle can be read or tested without the others. The checker
reads the source with ``ast`` and never imports it, so it sees the lazy
imports inside functions too: they are how nndl keeps ``import nndl`` light,
and a lazy import that closes a cycle is still a cycle.

What counts as an import of a module of the package:

* ``import a.b.c`` imports ``a.b.c``; ``from a.b import c`` imports ``a.b.c``
  when ``c`` is a module, else ``a.b``; relative imports are resolved;
* importing a module also runs the ``__init__`` of every package above it,
  so those count too -- except the importer's own enclosing packages, which
  Python has initialised before the importer runs whatever it imports (else
  every package whose ``__init__`` imports a submodule that imports a
  sibling would be a "cycle"). Importing one's own package by name
  (``from nndl.cli import main`` inside ``nndl.cli.train``) does count.

Imports computed at run time (``importlib.import_module(f"...")``) are not seen.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The cycles among nndl's modules today, each the set of modules of one strongly connected component.
#: None may involve the command line (nndl.cli and its modules). Remove an entry when its cycle is
#: broken (test_each_known_cycle_still_exists says when).
KNOWN_CYCLES: list[set[str]] = []


def module_files(package_dir):
    """{dotted name: path} of every module under ``package_dir`` (``nndl/cli/__init__.py`` is ``nndl.cli``)."""
    modules = {}
    for path in sorted(Path(package_dir).rglob("*.py")):
        parts = list(path.relative_to(Path(package_dir).parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _enclosing(name):
    """The packages around a dotted name, innermost first: 'a.b.c' -> ['a.b', 'a']."""
    parts = name.split(".")
    return [".".join(parts[:k]) for k in range(len(parts) - 1, 0, -1)]


def _named_by(node, importer, is_package, modules):
    """The modules an import statement names explicitly (not the packages around them)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:                                         # from . import x, from ..y import z
        package = importer if is_package else importer.rpartition(".")[0]
        base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module
    submodules = [f"{source}.{alias.name}" for alias in node.names if f"{source}.{alias.name}" in modules]
    names_something_else = len(submodules) < len(node.names)
    return submodules + ([source] if names_something_else else [])


def import_graph(package_dir):
    """{module: set of the package's modules it imports}, module-level and lazy imports alike."""
    modules = module_files(package_dir)
    graph = {}
    for importer, path in modules.items():
        is_package = path.name == "__init__.py"
        own = set(_enclosing(importer))
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for named in _named_by(node, importer, is_package, modules):
                imported.add(named)
                imported.update(p for p in _enclosing(named) if p not in own)
        graph[importer] = {m for m in imported if m in modules and m != importer}
    return graph


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan's algorithm), each a sorted list."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def _describe(component, graph):
    """The modules of a cycle and, for each, what it imports inside the cycle."""
    return "\n".join(f"  {m} imports {', '.join(sorted(graph[m] & set(component)))}" for m in component)


def test_no_import_cycles_among_nndls_modules():
    graph = import_graph(ROOT / "nndl")
    known = [set(c) for c in KNOWN_CYCLES]
    new = [c for c in cycles(graph) if set(c) not in known]
    assert not new, "import cycles:\n" + "\n\n".join(
        f"cycle of {', '.join(c)}:\n{_describe(c, graph)}" for c in new)


def test_each_known_cycle_still_exists():
    """The allowance shrinks as cycles are broken: an entry that no longer matches a cycle must go."""
    found = [set(c) for c in cycles(import_graph(ROOT / "nndl"))]
    stale = [sorted(c) for c in KNOWN_CYCLES if set(c) not in found]
    assert not stale, f"no longer cycles, remove them from KNOWN_CYCLES: {stale}"


def test_the_command_line_is_in_no_known_cycle():
    assert not [sorted(c) for c in KNOWN_CYCLES if any(m == "nndl.cli" or m.startswith("nndl.cli.") for m in c)]


def test_the_command_modules_import_only_the_shared_helpers_of_the_command_line():
    """nndl.cli imports its command modules; they import nndl.cli._common, never nndl.cli or each other."""
    graph = import_graph(ROOT / "nndl")
    # (nndl.cli.__main__ is ``python -m nndl.cli``: it runs nndl.cli, above the command modules)
    commands = {m for m in graph if m.startswith("nndl.cli.") and m not in ("nndl.cli._common", "nndl.cli.__main__")}
    assert commands >= {"nndl.cli.train", "nndl.cli.conv"}
    assert graph["nndl.cli"] >= commands
    sideways = {m: sorted(graph[m] & (commands | {"nndl.cli"})) for m in sorted(commands)}
    assert not any(sideways.values()), sideways
    assert not {m for m in graph["nndl.cli._common"] if m.startswith("nndl.cli")}


def _package(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / name.split("/")[0]


def test_the_checker_finds_a_cycle_through_a_lazy_import(tmp_path):
    package = _package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg import b\n",                               # b is a submodule: imports pkg.b
        "pkg/b.py": "def f():\n    from pkg.a import x\n    return x\n",  # lazy, inside a function
        "pkg/c.py": "import pkg.a\n",                                    # outside the cycle
    })
    graph = import_graph(package)
    assert graph["pkg.c"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.b"]]


def test_the_checker_finds_a_submodule_importing_its_own_package(tmp_path):
    package = _package(tmp_path, {
        "pkg/__init__.py": "def main():\n    from pkg import cmd\n",
        "pkg/cmd.py": "from pkg import helper\n",          # a name defined in pkg/__init__.py
        "pkg/sub/__init__.py": "",
        "pkg/sub/deep.py": "from .. import cmd\nfrom ..cmd import helper\n",
    })
    graph = import_graph(package)
    assert graph["pkg.sub.deep"] == {"pkg.cmd"}
    assert cycles(graph) == [["pkg", "pkg.cmd"]]


def test_the_checker_accepts_a_package_whose_modules_import_downwards(tmp_path):
    """nndl.cli's shape: __init__ imports the command modules, they import a private sibling, never __init__."""
    package = _package(tmp_path, {
        "pkg/__init__.py": "def main():\n    from pkg import cmd\n",
        "pkg/_common.py": "import os\n",
        "pkg/cmd.py": "from pkg._common import os\nfrom pkg import _common\n",
        "pkg/other.py": "def f():\n    import pkg.cmd\n",       # pkg itself: other's own package, not an edge
    })
    graph = import_graph(package)
    assert graph["pkg.cmd"] == {"pkg._common"}
    assert graph["pkg.other"] == {"pkg.cmd"}
    assert cycles(graph) == []
