"""Every public function of the NumPy engine and the training package has complete type hints.

A function (or method, or a function nested in one) whose name does not
start with ``_`` counts; it is typed when each of its parameters -- ``*args``
and ``**kwargs`` included, the ``self`` or ``cls`` of a method excepted --
and its return value are annotated. mypy's strict settings for these
packages (``pyproject.toml``) ask for the same of private functions too;
this test needs no mypy and names what is missing.

    python tests/test_typed.py         # the counts, package by package
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: The packages whose public functions must all be typed.
STRICT_PACKAGES = ("nndl/engine", "nndl/training")


def _functions(tree):
    """(function node, is a method) for every def in a module, nested ones included."""
    found = []

    def visit(node, in_class):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((child, in_class))
                visit(child, False)
            elif isinstance(child, ast.ClassDef):
                visit(child, True)
            else:
                visit(child, in_class)

    visit(tree, False)
    return found


def _is_static(function):
    return any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in function.decorator_list)


def missing_hints(function, is_method):
    """The names of what is not annotated: parameters, and "return"."""
    args = function.args
    positional = args.posonlyargs + args.args
    if is_method and not _is_static(function) and positional:
        positional = positional[1:]                       # self or cls
    parameters = positional + args.kwonlyargs + [a for a in (args.vararg, args.kwarg) if a is not None]
    missing = [a.arg for a in parameters if a.annotation is None]
    if function.returns is None:
        missing.append("return")
    return missing


def public_functions(package):
    """{"path:line name": list of what is not annotated} for every public function under ``package``."""
    result = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for function, is_method in _functions(tree):
            if not function.name.startswith("_"):
                where = f"{path.relative_to(ROOT)}:{function.lineno} {function.name}"
                result[where] = missing_hints(function, is_method)
    return result


def typed_share(package):
    """(typed, total) public functions under ``package``."""
    functions = public_functions(package)
    return sum(1 for missing in functions.values() if not missing), len(functions)


@pytest.mark.parametrize("package", STRICT_PACKAGES)
def test_every_public_function_is_typed(package):
    functions = public_functions(package)
    assert len(functions) > 20                            # the walk found the package's functions
    untyped = {where: missing for where, missing in functions.items() if missing}
    assert not untyped, "functions without complete type hints (name: what is missing):\n" + "\n".join(
        f"  {where}: {', '.join(missing)}" for where, missing in untyped.items())


def test_the_count_sees_what_is_missing():
    source = ("def f(a, b: int) -> int: ...\n"
              "def g(*args: int, **kwargs) -> None: ...\n"
              "class C:\n"
              "    def m(self, x: int): ...\n"
              "    @staticmethod\n"
              "    def s(x: int) -> int: ...\n"
              "    def _private(self, x): ...\n"
              "def outer() -> None:\n"
              "    def inner(y): ...\n")
    found = {f.name: missing_hints(f, in_class) for f, in_class in _functions(ast.parse(source))}
    assert found == {"f": ["a"], "g": ["kwargs"], "m": ["return"], "s": [], "_private": ["x", "return"],
                     "outer": [], "inner": ["y", "return"]}


if __name__ == "__main__":
    for package in STRICT_PACKAGES:
        typed, total = typed_share(package)
        print(f"{package}: {typed} of {total} public functions fully typed ({typed / total:.0%})")
