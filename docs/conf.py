"""Sphinx configuration of mmucore's documentation.

Build (needs the ``docs`` extra, ``pip install ".[docs]"``, and an importable mmucore,
installed or built in place)::

    sphinx-build -W --keep-going -b html docs docs/_build/html

``tests/test_docs.py`` runs that build and fails on any warning.
"""
import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
try:                                # the installed package, or PYTHONPATH
    import mmucore.tlb  # noqa: F401
except ImportError:                 # an in-place build: import pyapi/mmucore from the checkout
    sys.path.insert(0, ROOT)

project = "mmucore"
author = "mmucore developers"
copyright = "mmucore developers"
try:
    import pyapi
    release = version = pyapi.__version__
except Exception:                   # pragma: no cover - the API pages then fail loudly
    release = version = "0.1.0"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "examples", "Thumbs.db", ".DS_Store"]

myst_heading_anchors = 3            # [text](#a-heading) and [text](page.md#a-heading)
myst_enable_extensions = []

nitpicky = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"          # the numpydoc sections say the types
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

html_theme = "alabaster"
html_static_path = []
html_title = f"mmucore {release}"


# --- Links that leave docs/ -------------------------------------------------------------
# The pages are written to read well on a code host, so they link files outside docs/
# (../README.md, ../bench/README.md, ...). Sphinx sees only docs/, so at build time those
# links are pointed at the pages that include the files (readme.md, bench_readme.md,
# traces_readme.md); links to other files or folders outside docs/ become code text.
# The Markdown sources are not changed.
INCLUDED = {
    "README.md": "readme.md",
    "bench/README.md": "bench_readme.md",
    "pyapi/data/traces/README.md": "traces_readme.md",
}
DOCS = os.path.dirname(os.path.abspath(__file__))
_LINK = re.compile(r"(?<!!)\[([^\]\n]*)\]\(([^)\s]+)\)")


def _rewrite_links(text, base):
    """Rewrite Markdown links of a file in folder ``base`` for a page in docs/."""
    def fix(m):
        label, target = m.group(1), m.group(2)
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            return m.group(0)                          # a URL or an anchor on the page
        path, _, anchor = target.partition("#")
        full = os.path.normpath(os.path.join(base, path))
        rel_root = os.path.relpath(full, ROOT).replace(os.sep, "/")
        if rel_root in INCLUDED:
            return f"[{label}]({INCLUDED[rel_root]}{'#' + anchor if anchor else ''})"
        inside = full == DOCS or full.startswith(DOCS + os.sep)
        if inside and os.path.isfile(full):
            rel = os.path.relpath(full, DOCS).replace(os.sep, "/")
            return f"[{label}]({rel}{'#' + anchor if anchor else ''})"
        shown = rel_root + ("/" if os.path.isdir(full) else "")
        return label if label.strip("`") == shown.strip("/") or label == shown else f"{label} (`{shown}`)"
    return _LINK.sub(fix, text)


def _source_read(app, docname, source):
    base = os.path.dirname(os.path.join(DOCS, docname))
    source[0] = _rewrite_links(source[0], base)


def _include_read(app, relative_path, parent_docname, content):
    full = os.path.normpath(os.path.join(DOCS, str(relative_path)))
    content[0] = _rewrite_links(content[0], os.path.dirname(full))


# The CLI's module docstring is usage text (aligned columns, option lists), written for
# `help()` and a terminal: show it verbatim rather than parse it as reStructuredText.
VERBATIM_DOCSTRINGS = {"pyapi.cli"}


def _verbatim_docstring(app, what, name, obj, options, lines):
    if what == "module" and name in VERBATIM_DOCSTRINGS and lines:
        lines[:] = ["::", ""] + ["   " + line for line in lines] + [""]


def setup(app):
    app.connect("autodoc-process-docstring", _verbatim_docstring)
    app.connect("source-read", _source_read)
    app.connect("include-read", _include_read)
    return {"parallel_read_safe": True}
