"""What the nndl documentation adds to Sphinx.

- ``{nndl-help} COMMAND``: the ``--help`` of ``nndl COMMAND`` (or of ``nndl`` alone), taken from
  the parser the command line builds, so the page cannot drift from the program; in HTML a
  subcommand's help is folded under its summary line.
- Each executed chapter notebook is copied into the HTML output beside the page's sources, and
  the theme's download button offers it as ``.ipynb``.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

#: The width the help text is wrapped at, whatever the terminal that builds the docs.
HELP_COLUMNS = "80"


def command_help(command: str | None) -> str:
    """The help text of ``nndl COMMAND``, or of ``nndl`` when ``command`` is None."""
    from nndl.cli import build_parser

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_COLUMNS
    try:
        parser = build_parser()
        if command is None:
            return parser.format_help()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction) and command in action.choices:
                return action.choices[command].format_help()
        raise ValueError(f"nndl has no command {command!r}")
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved


class NndlHelp(SphinxDirective):
    """``{nndl-help} train``: the help of ``nndl train`` as a literal block."""

    optional_arguments = 1

    def run(self) -> list[nodes.Node]:
        command = self.arguments[0] if self.arguments else None
        try:
            text = command_help(command)
        except ValueError as error:
            raise self.error(str(error)) from None
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        if command is None:
            return [block]
        # A subcommand's help is long: folded (in HTML) under its one-line summary, open on a click.
        opening = f'<details class="nndl-help"><summary><code>nndl {command} --help</code></summary>'
        return [nodes.raw("", opening, format="html"), block, nodes.raw("", "</details>", format="html")]


def executed_notebooks(app: Sphinx) -> Path:
    """Where MyST-NB writes the executed notebooks of this build."""
    return Path(app.outdir).parent / "jupyter_execute"


def offer_notebook(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Let the theme's download button offer the executed notebook of a notebook page."""
    if doctree is None or app.builder.format != "html":
        return
    if (executed_notebooks(app) / f"{pagename}.ipynb").is_file() or _is_notebook(app, pagename):
        context["ipynb_source"] = f"{pagename}.ipynb"


def _is_notebook(app: Sphinx, pagename: str) -> bool:
    metadata = app.env.metadata.get(pagename, {})
    return "kernelspec" in metadata or "jupytext" in metadata


def copy_notebooks(app: Sphinx, exception: Exception | None) -> None:
    """Copy every executed notebook into ``_sources/`` of the HTML output, where the button points."""
    if exception is not None or app.builder.format != "html":
        return
    source = executed_notebooks(app)
    for notebook in sorted(source.rglob("*.ipynb")):
        target = Path(app.outdir) / "_sources" / notebook.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(notebook, target)


def setup(app: Sphinx) -> dict:
    app.add_directive("nndl-help", NndlHelp)
    app.connect("html-page-context", offer_notebook)
    app.connect("build-finished", copy_notebooks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
