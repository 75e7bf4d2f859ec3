"""Where keys and string values are in a TOML text, for error messages with line and column.

``tomllib`` returns plain Python values without positions. :class:`TomlPositions` scans the
same text once more (after ``tomllib`` has accepted it) and records where every key and
every value starts, so that an error inside an equation string can be reported at the
exact line and column (1-based, in characters) of the offending character, through escape
sequences and multi-line strings.
"""
from __future__ import annotations

import bisect
import re
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_BARE_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")


class TomlPositions:
    """Line and column (1-based, in characters) of every key and string value of a TOML text.

    A small scanner over text that ``tomllib`` has already accepted: it follows table
    headers, dotted and quoted keys, strings (with their escapes), arrays and inline tables,
    and records for each key path the offset of the key and of its value. ``value_locator``
    maps an offset in a *decoded* string value back to the file, through escapes and
    multi-line strings. Keys inside inline tables are located at the enclosing key.
    """

    def __init__(self, text):
        self.text = text
        self.line_starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
        self.keys: dict = {}        # key path tuple -> (key offset, value offset)
        self.items: dict = {}       # key path tuple -> [offset of each array element]
        try:
            self._scan()
        except (IndexError, ValueError):   # pragma: no cover - positions are best effort
            pass

    # -- lookups -------------------------------------------------------------------------
    def linecol(self, offset):
        k = bisect.bisect_right(self.line_starts, offset) - 1
        return k + 1, offset - self.line_starts[k] + 1

    def _entry(self, path):
        path = tuple(path)
        while path:
            if path in self.keys:
                return path, self.keys[path]
            path = path[:-1]
        return None, None

    def key(self, *path):
        """(line, col) of the key ``path`` (or of its nearest located ancestor), else (0, 0)."""
        _, entry = self._entry(path)
        return self.linecol(entry[0]) if entry else (0, 0)

    def value(self, *path):
        found, entry = self._entry(path)
        if not entry:
            return (0, 0)
        return self.linecol(entry[1] if found == tuple(path) else entry[0])

    def item(self, index, *path):
        """(line, col) of element ``index`` of the array at ``path``."""
        offs = self.items.get(tuple(path))
        if offs and 0 <= index < len(offs):
            return self.linecol(offs[index])
        return self.value(*path)

    def value_locator(self, path, decoded):
        """offset in the decoded string ``decoded`` stored at ``path`` -> (line, col)."""
        found, entry = self._entry(path)
        chars = None
        closing = 0
        if entry and found == tuple(path) and self.text[entry[1]] in "\"'":
            chars, end = self._string(entry[1])
            q = self.text[entry[1]]
            closing = end - (3 if self.text.startswith(q * 3, entry[1]) else 1)
            if len(chars) != len(decoded):     # pragma: no cover - scanner disagrees
                chars = None
        fallback = self.key(*path)

        def locate(offset):
            if chars is None:
                return fallback
            if offset < len(chars):
                return self.linecol(chars[offset])
            return self.linecol(closing)       # end of expression: the closing quote
        return locate

    # -- scanning ------------------------------------------------------------------------
    def _skip_ws(self, i, newlines=False):
        t = self.text
        while i < len(t):
            if t[i] in " \t" or (newlines and t[i] in "\r\n"):
                i += 1
            elif newlines and t[i] == "#":
                while i < len(t) and t[i] != "\n":
                    i += 1
            else:
                break
        return i

    def _eol(self, i):
        j = self.text.find("\n", i)
        return len(self.text) if j < 0 else j + 1

    def _scan(self):
        t, i, table = self.text, 0, ()
        while i < len(t):
            i = self._skip_ws(i, newlines=True)
            if i >= len(t):
                break
            if t[i] == "[":
                j = i + (2 if t.startswith("[[", i) else 1)
                parts, j = self._dotted_key(self._skip_ws(j))
                table = tuple(parts)
                self.keys.setdefault(table, (i, i))    # a table is located at its header
                i = self._eol(j)
                continue
            parts, j = self._dotted_key(i)
            j = self._skip_ws(j)
            if not parts or j >= len(t) or t[j] != "=":
                i = self._eol(i)
                continue
            v = self._skip_ws(j + 1)
            path = table + tuple(parts)
            self.keys[path] = (i, v)
            i = self._eol(self._skip_value(v, path))

    def _dotted_key(self, i):
        t, parts = self.text, []
        while i < len(t):
            if t[i] in "\"'":
                chars, end = self._string(i)
                parts.append("".join(self._decode_key(i, end)))
                i = end
            else:
                m = _BARE_KEY_RE.match(t, i)
                if not m:
                    break
                parts.append(m.group())
                i = m.end()
            i = self._skip_ws(i)
            if i < len(t) and t[i] == ".":
                i = self._skip_ws(i + 1)
                continue
            break
        return parts, i

    def _decode_key(self, start, end):
        # keys are re-parsed with tomllib so escapes decode exactly as in the document
        try:
            return list(tomllib.loads("k = " + self.text[start:end])["k"])
        except tomllib.TOMLDecodeError:    # pragma: no cover
            return list(self.text[start + 1:end - 1])

    def _skip_value(self, i, path):
        t = self.text
        if t[i] in "\"'":
            return self._string(i)[1]
        if t[i] in "[{":
            close = {"[": "]", "{": "}"}
            stack = [close[t[i]]]
            items = [] if t[i] == "[" else None
            i += 1
            expect_item = True
            while stack:
                i = self._skip_ws(i, newlines=True)
                ch = t[i]
                if expect_item and len(stack) == 1 and items is not None and ch not in "]":
                    items.append(i)
                expect_item = False
                if ch in "\"'":
                    i = self._string(i)[1]
                    continue
                if ch in "[{":
                    stack.append(close[ch])
                elif ch == stack[-1]:
                    stack.pop()
                elif ch == ",":
                    expect_item = len(stack) == 1
                i += 1
            if items is not None:
                self.items[path] = items
            return i
        return self._eol(i)

    def _string(self, i):
        """([file offset of each decoded character], offset after the closing quote)."""
        t = self.text
        quote = t[i]
        multi = t.startswith(quote * 3, i)
        i += 3 if multi else 1
        if multi and t.startswith("\r\n", i):
            i += 2
        elif multi and i < len(t) and t[i] == "\n":
            i += 1
        out = []
        while True:
            ch = t[i]
            if ch == quote and (not multi or t.startswith(quote * 3, i)):
                if not multi:
                    return out, i + 1
                run = 3
                while run < 5 and i + run < len(t) and t[i + run] == quote:
                    run += 1
                out.extend(range(i, i + run - 3))      # up to two quotes belong to the value
                return out, i + run
            if ch == "\\" and quote == '"':
                nxt = t[i + 1]
                if multi and nxt in " \t\r\n":
                    j = i + 1                          # line-ending backslash
                    while t[j] in " \t":
                        j += 1
                    if t[j] in "\r\n":
                        i = j
                        while t[i] in " \t\r\n":
                            i += 1
                        continue
                out.append(i)
                i += {"u": 6, "U": 10}.get(nxt, 2)
                continue
            if ch == "\r" and t.startswith("\r\n", i):
                out.append(i)
                i += 2
                continue
            out.append(i)
            i += 1
