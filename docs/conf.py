"""Sphinx configuration: the documentation of nndl, built from the source.

Build it from the repository root with warnings as errors::

    python3 -m sphinx -T -W --keep-going -b html docs docs/_build/html

The chapter guides in ``chapters/`` are MyST-NB text notebooks: every build runs them, with the
notebook's folder as the working directory. A cell that raises fails the build (``-T`` prints the
cell and its traceback). Each executed notebook can be downloaded as ``.ipynb`` from its page.
"""

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))            # the nndl of this checkout, whatever is installed
sys.path.insert(0, str(DOCS / "_ext"))   # nndl_docs, the extension below
# The notebooks' kernels are other processes: they import this checkout's nndl too.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

from nndl import __version__  # noqa: E402

project = "nndl"
author = "the nndl authors"
copyright = "the nndl authors"
version = release = __version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",     # MathJax from the build's own _static/, so pages render maths offline too
    "sphinx_copybutton",
    "nndl_docs",
]

exclude_patterns = ["_build", "_ext", "**.ipynb_checkpoints"]
root_doc = "index"

# MyST: $...$ maths, ::: fences, and headings up to ### as link targets (README-style anchors).
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# MyST-NB: run every notebook on every build; a failing cell fails the build and shows the cell.
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_timeout = 600
nb_execution_in_temp = False             # the notebook's folder is its working directory
nb_merge_streams = True

# autodoc and napoleon: the docstrings are numpy style.
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# Each object is documented where it is defined: a name a module re-exports (an error class in
# ``__all__``, say) would otherwise be documented twice, and every reference to it be ambiguous.
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
# Parameter and attribute types are prose here ("ndarray, shape (n, sizes[0])"), not class names:
# rendered as text, not cross-referenced word by word.
napoleon_use_param = False
napoleon_use_ivar = True

html_theme = "sphinx_book_theme"
html_title = f"nndl {release}"
html_static_path = ["_static"]
html_theme_options = {
    "use_download_button": True,
    "use_fullscreen_button": False,
    "show_toc_level": 2,
    "home_page_in_toc": True,
}
html_last_updated_fmt = None
