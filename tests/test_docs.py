"""The documentation's structure, checked without building it (Sphinx itself runs in CI).

Every page under docs/ is listed in a toctree, so none is built as an orphan that no reader
reaches, and every relative link of the README names a file that exists, so the README's
pointers work on a repository host as they do here.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

TOCTREE = re.compile(r"^```\{toctree\}\n(?P<body>.*?)^```", re.M | re.S)
LINK = re.compile(r"\]\((?P<target>[^)#\s]+)(?:#[^)]*)?\)")


def pages():
    """Every source page of the documentation, as a docname ("cli", "api/engine")."""
    return {p.relative_to(DOCS).with_suffix("").as_posix() for p in DOCS.rglob("*.md")
            if not any(part.startswith("_") for part in p.relative_to(DOCS).parts)}


def toctree_entries(page):
    """The docnames a page's toctrees list, relative to the docs root."""
    text = (DOCS / f"{page}.md").read_text(encoding="utf-8")
    folder = Path(page).parent
    entries = set()
    for match in TOCTREE.finditer(text):
        for line in match["body"].splitlines():
            line = line.strip()
            if line and not line.startswith(":"):
                entries.add((folder / line).as_posix().removeprefix("./"))
    return entries


def test_every_page_is_in_a_toctree():
    listed = set().union(*(toctree_entries(page) for page in pages()))
    assert pages() - listed - {"index"} == set()


def test_the_toctree_reader_finds_the_entries():
    assert {"getting-started", "cli", "chapters/index", "api/index"} <= toctree_entries("index")
    assert {"chapters/ch1", "chapters/ch6", "chapters/hyper"} <= toctree_entries("chapters/index")


def test_the_readme_links_to_files_that_exist():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = [m["target"] for m in LINK.finditer(text) if "://" not in m["target"]]
    assert "docs/getting-started.md" in targets and "docs/api/index.md" in targets
    assert [t for t in targets if not (ROOT / t).exists()] == []


def test_every_public_module_has_its_page_in_the_api_reference():
    documented = set()
    for page in (DOCS / "api").glob("*.md"):
        documented |= set(re.findall(r"automodule:: ([\w.]+)", page.read_text(encoding="utf-8")))
    modules = set()
    for path in (ROOT / "nndl").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        if not any(part.startswith("_") for part in parts):
            modules.add(".".join(parts))
    assert "nndl.experiments.status" in modules
    assert sorted(modules - documented) == [], "add them to a page of docs/api/"
