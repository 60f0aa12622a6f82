"""Sphinx configuration: ``nox -s docs`` (or ``python -m sphinx -W -b html docs OUT``)."""

from uphance_async import __version__

project = "uphance-async"
author = "uphance-async contributors"
release = version = __version__
extensions = ["sphinx.ext.autodoc"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_title = "uphance-async"
