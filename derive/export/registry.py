"""The exporters ``python -m derive`` runs. Each module has ``export(cells, options) -> {path: content}``;
paths are relative to the output directory.

With ``options.jobs`` > 1 (``--jobs``; default :func:`derive.export.cellpool.default_jobs`)
and ``fork``, the exporters that set ``CELL_TASKS = True`` (kernels, gradient flow) do their
per-cell work in :mod:`derive.export.cellpool`: each such exporter's ``start_helper(options)``
(the figure process, which imports matplotlib meanwhile) and ``check(options)`` run first,
then every exporter's ``prepare(cells, options)`` here (the derivations every process needs,
cached per cell and inherited by the workers; it must not raise), then ``jobs - 1`` workers
are forked and start on the cells while this process runs the other exporters (the article)
and then takes cells from the same queue. With ``jobs`` 1 or without ``fork`` every exporter's
``export`` runs here, in order. The result is the same map, byte for byte, either way.

An exporter that sets ``PARALLEL = True`` runs as a whole in a forked child process while the
others run in this one; its files come back through a pipe (``start_helper`` and ``prepare``
as above). Every child dies with this process: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` on Linux
(then ``getppid`` re-checked, for a parent that died before the call), elsewhere a thread
polling ``getppid``; it ignores SIGINT (Ctrl-C reaches the whole process group: this process
reports it once and kills the children), and this process kills it on any error or interrupt
before its files arrive.

Progress (``options.progress``, a :class:`derive.progress.Progress`) is reported per exporter
and per cell; the children report through the same stderr. Test-only hook:
``RNN_CALCULUS_TEST_SIGINT=derive`` sends SIGINT to the process group when the second
exporter starts, ``=child`` when a forked exporter or worker starts.
"""
from __future__ import annotations

import importlib
import os
import pickle
import signal

from derive.export.cellpool import Pool, default_jobs
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


def jobs_of(options) -> int:
    """``options.jobs`` (default: the usable cores, at most 4); 1 without ``fork``."""
    jobs = getattr(options, "jobs", None)
    jobs = default_jobs() if jobs is None else jobs
    return jobs if hasattr(os, "fork") else 1


def render_all(cells, options) -> dict:
    """Every file of every exporter, built in memory; a path written twice is an error."""
    progress = getattr(options, "progress", None) or silent
    modules = [importlib.import_module(m) for m in EXPORTERS]
    jobs = jobs_of(options)
    tasked = [m for m in modules if getattr(m, "CELL_TASKS", False)] if jobs > 1 else []
    forked, helpers, pool = {}, [], None
    child = progress.for_child() if hasattr(progress, "for_child") else silent
    try:
        parallel = [m for m in modules if getattr(m, "PARALLEL", False)] \
            if hasattr(os, "fork") and len(modules) > 1 else []
        for m in tasked + parallel:
            helper = m.start_helper(options) if hasattr(m, "start_helper") else None
            if helper is not None:
                helpers.append(helper)
            if hasattr(m, "check"):
                m.check(options)
        if tasked:
            pool = Pool(cells, tasked, options, progress, child, jobs, helpers, _test_sigint)
            preparing = [m for m in modules if hasattr(m, "prepare")]
            order = pool.order()
            for i, c in enumerate(order, 1):
                progress(f"deriving: {c.name} ({i}/{len(order)})")
                for m in preparing:
                    m.prepare([c], options)
                pool.derived(c)
            pool.all_derived()
        for m in parallel:
            if hasattr(m, "prepare"):
                m.prepare(cells_reporting(cells, f"preparing {_label(m)}", progress), options)
        for m in parallel:
            forked[m.__name__] = _fork(m, cells, options, child)
        if not tasked:
            for helper in helpers:
                helper.detach()
        files: dict = {}

        def add(out):
            for path, content in out.items():
                if path in files:
                    raise RuntimeError(f"two exporters write {path}")
                files[path] = content
        for i, mod in enumerate(modules):
            if i == 1:
                _test_sigint("derive")
            if mod in tasked:
                continue
            if mod.__name__ in forked:
                progress(f"{_label(mod)}: waiting for its process")
                add(forked.pop(mod.__name__)())
            else:
                add(mod.export(cells_reporting(cells, _label(mod), progress), options))
        if pool is not None:
            progress("kernels, flow: waiting for the workers")
            for out in pool.finish().values():
                add(out)
        return dict(sorted(files.items()))
    finally:
        for waiter in forked.values():
            waiter.kill()
        if pool is not None:
            pool.kill()
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
