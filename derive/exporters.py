"""The exporters ``python -m derive`` runs. Each module has ``export(cells, options) -> {path: content}``;
paths are relative to the output directory.

An exporter that sets ``PARALLEL = True`` (the numerical gradient-flow experiment) runs in a
forked child process while the symbolic exporters run in this one; its files come back through
a pipe. The result is the same map, in the same order, as a sequential run.
"""
from __future__ import annotations

import importlib
import os
import pickle

EXPORTERS = [
    "derive.export_summary",
    "derive.export_latex",
    "derive.export_kernels",
    "derive.export_flow",
]


def render_all(cells, options) -> dict:
    """Every file of every exporter, built in memory; a path written twice is an error."""
    modules = [importlib.import_module(m) for m in EXPORTERS]
    forked = {m.__name__: _fork(m, cells, options) for m in modules
              if getattr(m, "PARALLEL", False) and hasattr(os, "fork") and len(modules) > 1}
    files: dict = {}
    for mod in modules:
        out = forked[mod.__name__]() if mod.__name__ in forked else mod.export(cells, options)
        for path, content in out.items():
            if path in files:
                raise RuntimeError(f"two exporters write {path}")
            files[path] = content
    return dict(sorted(files.items()))


def _fork(mod, cells, options):
    """Start ``mod.export`` in a child process; return a function that waits for its files
    (re-raising the child's exception, if any)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:                                   # child
        os.close(read_fd)
        status = 0
        try:
            try:
                payload = ("ok", mod.export(cells, options))
            except BaseException as exc:         # noqa: BLE001 - handed to the parent
                payload = ("error", exc)
            with os.fdopen(write_fd, "wb") as fh:
                pickle.dump(payload, fh)
        except BaseException:                    # noqa: BLE001
            status = 1
        finally:
            os._exit(status)
    os.close(write_fd)

    def result():
        with os.fdopen(read_fd, "rb") as fh:
            data = fh.read()
        _, status = os.waitpid(pid, 0)
        if not data or os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"exporter {mod.__name__} died in its child process")
        kind, value = pickle.loads(data)
        if kind == "error":
            raise value
        return value
    return result
