"""Cell specs (layer 1): TOML files in a small expression language, parsed into a ``Cell``.

``load_spec(path)`` / ``parse_spec(text, path)`` (:mod:`derive.spec.tables`); the expression
language in :mod:`derive.spec.lang`; limits and reserved names in :mod:`derive.spec.limits`;
the built-in cells in :mod:`derive.spec.registry`.
"""
from derive.spec.lang import SpecError
from derive.spec.tables import load_spec, parse_spec

__all__ = ["SpecError", "load_spec", "parse_spec"]
