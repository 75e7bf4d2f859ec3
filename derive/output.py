"""Writing generated files: all in memory first, then each file atomically.

A run builds the complete ``{relative path: bytes}`` map before touching the disk, so an
error while deriving or printing leaves the previous ``out/`` untouched. Each file is then
written to a temporary file in its own directory and moved into place with ``os.replace``.
``check`` compares the map with a directory and writes nothing.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


class OutputError(OSError):
    """The output directory cannot be written; the message names the path."""


def _as_bytes(content) -> bytes:
    return content.encode("utf-8") if isinstance(content, str) else bytes(content)


def write_tree(files: dict, out_dir) -> list[str]:
    """Write every file under ``out_dir``; return the relative paths that changed."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output directory {out}: {exc.strerror}") from None
    if not os.access(out, os.W_OK):
        raise OutputError(f"output directory {out} is not writable")
    changed = []
    pending = []
    try:
        # stage every changed file first, so a failure midway leaves no file half-updated
        for rel in sorted(files):
            data = _as_bytes(files[rel])
            target = out / rel
            if target.is_file() and target.read_bytes() == data:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, 0o644)
            pending.append((tmp, target, rel))
    except OSError as exc:
        for tmp, _, _ in pending:
            Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"cannot write {exc.filename or out}: {exc.strerror}") from None
    for tmp, target, rel in pending:
        os.replace(tmp, target)
        changed.append(rel)
    return changed


def check_tree(files: dict, out_dir) -> tuple[list[str], list[str]]:
    """(missing, stale): relative paths absent from ``out_dir`` or different from ``files``."""
    out = Path(out_dir)
    missing, stale = [], []
    for rel in sorted(files):
        target = out / rel
        if not target.is_file():
            missing.append(rel)
        elif target.read_bytes() != _as_bytes(files[rel]):
            stale.append(rel)
    return missing, stale
