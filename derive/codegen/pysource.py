"""User text and names in generated Python source: one escaping function, one name check.

Every piece of text a user supplies (a spec's title, reference, description, file name,
names) reaches a generated module only through :func:`escape` (inside :func:`docstring` and
:func:`string`), and every name used as an identifier passes :func:`check_identifier`.
The literal :func:`escape` makes evaluates to exactly the given text and cannot be closed
early: every ``"`` and backslash is escaped, and so is every character that is not
printable (controls, format characters such as U+202E, line and paragraph separators).
"""
from __future__ import annotations

import keyword
import re

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z", re.ASCII)


def escape(text: str, *, newlines: bool = False) -> str:
    """The body of a ``"``-delimited string literal whose value is exactly ``text``
    (with ``newlines``, a newline stays a real line break, for a triple-quoted literal)."""
    if not isinstance(text, str):
        raise TypeError(f"expected text, got {type(text).__name__}")
    out = []
    for ch in text:
        if ch == "\\" or ch == '"':
            out.append("\\" + ch)
        elif ch == "\n" and newlines:
            out.append(ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape", "backslashreplace").decode("ascii"))
    return "".join(out)


def docstring(text: str) -> str:
    """A triple-quoted literal of ``text`` (a module docstring that reads as written)."""
    return '"""' + escape(text, newlines=True) + '"""'


def string(text: str) -> str:
    """A one-line ``"..."`` literal of ``text``."""
    return '"' + escape(text) + '"'


def check_identifier(name, what: str) -> str:
    """``name`` if generated code may use it as (part of) an identifier: ASCII letters,
    digits and ``_``, starting with a letter, and not a keyword; a ValueError otherwise."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name) or keyword.iskeyword(name) \
            or keyword.issoftkeyword(name):
        raise ValueError(f"{what} name {name!r} cannot be used in generated code: it must be "
                         f"ASCII letters, digits and _, starting with a letter, and not a "
                         f"Python keyword")
    return name


def check_cell_names(cell) -> None:
    """Every name of ``cell`` that generated code spells as an identifier (its own name, the
    states, parameters and equations) passes :func:`check_identifier`."""
    check_identifier(cell.name, "cell")
    for s in cell.states:
        check_identifier(s, f"cell {cell.name!r}: state")
    for p in list(cell.params) + list(getattr(cell, "readout_params", {})):
        check_identifier(p, f"cell {cell.name!r}: parameter")
    for eq in tuple(cell.equations) + tuple(getattr(cell, "readout", ())):
        check_identifier(eq.lhs.name, f"cell {cell.name!r}: equation")
