"""docs/equations.md stays true: every reference resolves, and no equation goes missing.

The document maps the book's equations to the code with references of one form,
`` `FILE` · `NAME` ``. These tests read the files with ``ast`` (nothing is imported, so the
PyTorch side is checked without torch), and include a test that the checker does report a
made-up reference, so that a passing run means something.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "equations.md"

#: A reference: `nndl/engine/backprop.py` · `Backprop.backward`.
REFERENCE = re.compile(r"`(?P<path>[\w./-]+\.py)` · `(?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)`")

#: The equations and named rules the document must cover: the book's numbers (web edition) and names.
REQUIRED = {
    # chapter 1: perceptron, sigmoid, quadratic cost, gradient descent and SGD, feedforward
    "(1)", "(2)", "(3)", "(4)", "(6)", "(16)", "(17)", "(18)", "(19)", "(20)", "(21)", "(22)",
    # chapter 2: the feedforward in matrix form, the four equations, per example and per mini-batch
    "(23)", "(25)", "(29)", "BP1", "BP1a", "(30)", "BP2", "BP3", "(31)", "BP4", "(32)",
    "BP1-BP4 (mini-batch)", "BP1-BP4 (one example)", "σ'", "finite differences",
    # chapter 3: cross-entropy, softmax and log-likelihood, L2 and L1, dropout, initial weights,
    # momentum, other neurons
    "(57)", "(63)", "(66)", "(67)", "(78)", "(80)", "(81)", "(82)", "(84)",
    "(85)", "(86)", "(87)", "(88)", "(93)", "(94)", "(95)", "(96)", "(97)",
    "dropout", "weight init", "large init", "(107)", "(108)", "tanh", "ReLU",
    # chapter 6: convolution, max-pooling, and network3's own L2 term, update and initial weights
    "(125)", "(126)", "max-pooling", "network3 L2", "network3 update", "network3 init",
}



def references(text):
    """Every reference in ``text``: a list of (path, dotted name, line number)."""
    found = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        found += [(m["path"], m["name"], lineno) for m in REFERENCE.finditer(line)]
    return found


def table_rows(text):
    """The body rows of the equation tables: a list of (labels, the whole row, line number).

    A row's first cell holds its labels, separated by commas ("(57), (63)", "BP4, (32)", "dropout").
    """
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if cells[0] in ("Eq.", "") or set(cells[0]) <= set("-: "):
            continue                                               # header or separator row
        labels = [label.strip() for label in cells[0].split(",") if label.strip()]
        rows.append((labels, line, lineno))
    return rows


def _scope_names(body):
    """Names defined directly in a module's or a class's body: {name: class node or None}."""
    names = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names[node.name] = None
        elif isinstance(node, ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names[target.id] = None
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = None
    return names


def is_defined(source, dotted):
    """True when ``dotted`` ("f", "Class", "Class.method") is defined in the Python ``source``."""
    scope = ast.parse(source).body
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        names = _scope_names(scope)
        if part not in names:
            return False
        if i < len(parts) - 1:
            if names[part] is None:                                # only a class has members
                return False
            scope = names[part].body
    return True


def check_references(refs, root=ROOT):
    """One line per reference that does not resolve under ``root``; empty when all do."""
    problems, sources = [], {}
    for path, name, lineno in refs:
        file = root / path
        if not file.is_file():
            problems.append(f"line {lineno}: {path} does not exist (for {name})")
            continue
        if path not in sources:
            sources[path] = file.read_text(encoding="utf-8")
        if not is_defined(sources[path], name):
            problems.append(f"line {lineno}: {path} defines no {name}")
    return problems


@pytest.fixture(scope="module")
def doc():
    return DOC.read_text(encoding="utf-8")


def test_every_reference_resolves(doc):
    refs = references(doc)
    assert len(refs) > 50, "the document lost its references (or their form changed)"
    assert check_references(refs) == []


def test_references_stay_inside_the_package(doc):
    assert all(path.startswith("nndl/") for path, _, _ in references(doc))


def test_every_equation_row_points_at_code(doc):
    rows = table_rows(doc)
    assert rows
    assert [line for labels, line, _ in rows if not REFERENCE.search(line)] == []


def test_the_required_equations_are_covered(doc):
    labels = [label for row_labels, _, _ in table_rows(doc) for label in row_labels]
    assert sorted(REQUIRED - set(labels)) == []
    assert sorted({label for label in labels if labels.count(label) > 1}) == [], "a label listed twice"


def test_the_checker_reports_made_up_references():
    made_up = (
        "| (1) | x | y | `nndl/engine/backprop.py` · `Backprop.no_such_method` |\n"
        "| (2) | x | y | `nndl/engine/no_such_module.py` · `f` |\n"
        "| (3) | x | y | `nndl/engine/costs.py` · `NoSuchCost` |\n"
        "| (4) | x | y | `nndl/engine/costs.py` · `get_cost.inner` |\n"       # a function has no members
        "| (5) | x | y | `nndl/deep/optimizer.py` · `BookSGD.no_such` |\n"
        "| (6) | x | y | `nndl/engine/costs.py` · `CrossEntropyCost.delta` |\n"  # real: not reported
    )
    problems = check_references(references(made_up))
    assert [p.split(":")[0] for p in problems] == ["line 1", "line 2", "line 3", "line 4", "line 5"]


def test_module_level_constants_and_nested_classes_resolve():
    source = "X = 1\nY: int = 2\nclass A:\n    Z = 3\n    class B:\n        def f(self): ...\n"
    assert all(is_defined(source, name) for name in ("X", "Y", "A", "A.Z", "A.B", "A.B.f"))
    assert not any(is_defined(source, name) for name in ("A.f", "B", "X.real", "A.B.g"))


#: What each engine module's docstring names, at the least: the equations it computes.
ENGINE_DOCSTRINGS = {
    "__init__.py": ["BP1-BP4"],
    "activations.py": ["(3)", "(78)", "tanh", "ReLU"],
    "backprop.py": ["BP1", "BP2", "BP3", "BP4", "(25)"],
    "costs.py": ["(6)", "(63)", "(66)", "(80)"],
    "feedforward.py": ["(22)", "(25)"],
    "gradcheck.py": ["BP1-BP4"],
    "initializers.py": ["1/n_in", "N(0, 1)"],
    "modelio.py": ["none of the book's equations"],
    "optimizers.py": ["(20)", "(107)"],
    "regularizers.py": ["(87)", "(93)", "(95)", "(97)"],
}


@pytest.mark.parametrize("module", sorted(ENGINE_DOCSTRINGS))
def test_engine_modules_name_their_equations(module):
    docstring = ast.get_docstring(ast.parse((ROOT / "nndl" / "engine" / module).read_text(encoding="utf-8")))
    assert docstring, f"nndl/engine/{module} has no module docstring"
    first_paragraph = docstring.split("\n\n")[0]
    assert re.search(r"chapters? \d", first_paragraph), f"nndl/engine/{module}: which chapter?"
    missing = [label for label in ENGINE_DOCSTRINGS[module] if label not in docstring]
    assert missing == [], f"nndl/engine/{module}'s docstring does not name {missing}"


def test_every_engine_module_is_listed():
    assert sorted(p.name for p in (ROOT / "nndl" / "engine").glob("*.py")) == sorted(ENGINE_DOCSTRINGS)
