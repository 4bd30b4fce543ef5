"""Sphinx configuration of the rrnn_convex documentation.

Build it (the ``docs`` extra installs Sphinx, numpydoc and myst-parser)::

    pip install -e ".[docs]"
    sphinx-build -W -b html docs docs/_build/html

The pages are Markdown (myst-parser) except the API reference, which is reStructuredText so that
autodoc can read the docstrings (numpydoc style).
"""
from __future__ import annotations

import argparse
import os
import sys

from docutils import nodes
from docutils.parsers.rst import Directive, directives

# the package is normally installed (pip install -e ".[docs]"); the checkout is a fallback
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import rrnn_convex  # noqa: E402

project = "rrnn_convex"
author = "rrnn_convex developers"
copyright = "rrnn_convex developers"  # noqa: A001 (Sphinx's name)
release = rrnn_convex.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "numpydoc",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# Markdown: GitHub-style anchors for headings up to level 3, so that links such as
# design.md#3-the-lmis work both on GitHub and here
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# autodoc: members in source order; type hints in the signatures only
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}
# (the optional dependencies, torch, matplotlib, dask and nonlinear_benchmarks, are imported inside
# functions only, so the reference builds without them)

# numpydoc: no autosummary tables of class members (autodoc already lists them)
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# cross-references to objects outside these pages are not checked
nitpicky = False

html_theme = "alabaster"
html_title = f"rrnn_convex {release}"
html_static_path: list[str] = []


class RrnnHelp(Directive):
    """``.. rrnn-help:: [subcommand]``: the ``--help`` text of the ``rrnn`` command (or of one
    subcommand) as a literal block, taken from :func:`rrnn_convex.cli.build_parser` when the
    documentation is built, so that the CLI reference cannot drift from the code."""

    optional_arguments = 1
    final_argument_whitespace = True  # "experiment msd": a nested subcommand
    has_content = False
    option_spec = {"width": directives.positive_int}

    def run(self):
        from rrnn_convex.cli import build_parser

        os.environ["COLUMNS"] = str(self.options.get("width", 100))  # argparse reads it for its layout
        parser = build_parser()
        for name in (self.arguments[0].split() if self.arguments else []):
            subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
            choices = subs[0].choices if subs else {}
            if name not in choices:
                raise self.error(f"rrnn-help: no subcommand {name!r} (known: {sorted(choices)})")
            parser = choices[name]
        text = parser.format_help().rstrip()
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return [block]


class RrnnModules(Directive):
    """``.. rrnn-modules::`` with one module name per content line: a section and an
    ``automodule`` for each module that exists in the installed package.

    The package's modules are being split and renamed while these pages are written; a name
    listed here that is not (or no longer) a module is skipped with a note in the build log
    instead of failing the build, so a page can list a module before and after a move."""

    has_content = True

    def run(self):
        import importlib.util

        from sphinx.util import logging

        log = logging.getLogger(__name__)
        lines = []
        for name in (line.strip() for line in self.content):
            if not name:
                continue
            try:
                found = importlib.util.find_spec(name) is not None
            except ModuleNotFoundError:
                found = False
            if not found:
                log.info(f"rrnn-modules: {name} is not a module of the installed package: skipped")
                continue
            title = f"``{name}``"
            lines += [title, "-" * len(title), "", f".. automodule:: {name}", ""]
        self.state_machine.insert_input(lines, self.state_machine.input_lines.source(
            self.lineno - self.state_machine.input_offset - 1))
        return []


def setup(app):
    app.add_directive("rrnn-help", RrnnHelp)
    app.add_directive("rrnn-modules", RrnnModules)
    return {"parallel_read_safe": True}
