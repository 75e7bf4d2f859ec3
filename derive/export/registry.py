"""The exporters ``python -m derive`` runs. Each module has ``export(cells, options) -> {path: content}``;
paths are relative to the output directory.

An exporter that sets ``PARALLEL = True`` (the numerical gradient-flow experiment) runs in a
forked child process while the symbolic exporters run in this one; its files come back through
a pipe. The result is the same map, in the same order, as a sequential run. The child dies
with this process: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` on Linux (then ``getppid`` re-checked,
for a parent that died before the call), elsewhere a thread polling ``getppid``; it ignores
SIGINT (Ctrl-C reaches the whole process group: this process reports it once and kills the
child), and this process kills it on any error or interrupt before its files arrive.

Such an exporter may also define ``start_helper(options)``, run first: it may start a helper
process (the gradient-flow exporter's figure process, which imports matplotlib meanwhile) and
return its handle, whose ``detach()`` is called right after the fork and ``reap()`` at the end.
And ``prepare(cells, options)``, run here before the fork: it
computes what both processes need (derived results, generated kernels: cached per cell, so the
exporters after the fork reuse them and the child inherits them) once instead of twice, and
takes nothing from the child's files (it must not raise; ``export`` still checks everything).

Progress (``options.progress``, a :class:`derive.progress.Progress`) is reported per exporter
and per cell; the child reports through the same stderr. Test-only hook:
``RNN_CALCULUS_TEST_SIGINT=derive`` sends SIGINT to the process group when the second
exporter starts, ``=child`` when the forked exporter starts.
"""
from __future__ import annotations

import importlib
import os
import pickle
import signal

from derive.export.figure_process import die_with_parent, send_result
from derive.export.progress import cells_reporting, silent

EXPORTERS = [
    "derive.export.summary",
    "derive.export.latex",
    "derive.export.seed_note",
    "derive.export.kernels",
    "derive.export.flow",
]
SIGINT_HOOK = "RNN_CALCULUS_TEST_SIGINT"


def _label(mod) -> str:
    return mod.__name__.rpartition(".")[2].removeprefix("export_")


def _test_sigint(phase):
    if os.environ.get(SIGINT_HOOK) == phase:
        os.killpg(os.getpgrp(), signal.SIGINT)


def render_all(cells, options) -> dict:
    """Every file of every exporter, built in memory; a path written twice is an error."""
    progress = getattr(options, "progress", None) or silent
    modules = [importlib.import_module(m) for m in EXPORTERS]
    forked, helpers = {}, []
    try:
        for m in modules:
            if getattr(m, "PARALLEL", False) and hasattr(os, "fork") and len(modules) > 1:
                child = progress.for_child() if hasattr(progress, "for_child") else silent
                helper = m.start_helper(options) if hasattr(m, "start_helper") else None
                if helper is not None:
                    helpers.append(helper)
                if hasattr(m, "prepare"):
                    m.prepare(cells_reporting(cells, f"preparing {_label(m)}", progress), options)
                forked[m.__name__] = _fork(m, cells, options, child)
                if helper is not None:
                    helper.detach()
        files: dict = {}
        for i, mod in enumerate(modules):
            if i == 1:
                _test_sigint("derive")
            if mod.__name__ in forked:
                progress(f"{_label(mod)}: waiting for its process")
                out = forked.pop(mod.__name__)()
            else:
                out = mod.export(cells_reporting(cells, _label(mod), progress), options)
            for path, content in out.items():
                if path in files:
                    raise RuntimeError(f"two exporters write {path}")
                files[path] = content
        return dict(sorted(files.items()))
    finally:
        for waiter in forked.values():
            waiter.kill()
        for helper in helpers:
            helper.reap()


_die_with_parent = die_with_parent


class _Child:
    """A forked ``mod.export``: call it for its files (re-raising the child's exception), or
    :meth:`kill` it."""

    def __init__(self, mod, pid, read_fd):
        self.mod, self.pid, self.read_fd = mod, pid, read_fd

    def __call__(self):
        with os.fdopen(self.read_fd, "rb") as fh:
            self.read_fd = None
            data = fh.read()
        _, status = os.waitpid(self.pid, 0)
        self.pid = None
        if not data or os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"exporter {self.mod.__name__} died in its child process")
        kind, value = pickle.loads(data)
        if kind == "error":
            raise value
        return value

    def kill(self):
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except OSError:
                pass
            self.pid = None
        if self.read_fd is not None:
            os.close(self.read_fd)
            self.read_fd = None


def _fork(mod, cells, options, progress):
    """Start ``mod.export`` in a child process; return the :class:`_Child`."""
    parent = os.getpid()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:                                   # child
        status = 1
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            _die_with_parent(parent)
            os.close(read_fd)
            _test_sigint("child")
            send_result(write_fd, lambda: mod.export(cells_reporting(cells, _label(mod), progress),
                                                     options))
            status = 0
        except BaseException:                    # noqa: BLE001
            status = 1
        finally:
            os._exit(status)
    os.close(write_fd)
    return _Child(mod, pid, read_fd)
