"""The per-cell work of ``python -m derive`` shared out over forked worker processes.

An exporter that sets ``CELL_TASKS = True`` (the kernels and the gradient-flow experiment)
splits its work into ``cell_task(cell, options)``, one picklable result per cell that does
not depend on which process computes it or on what that process did before, and
``merge(cells, results, options, extras)``, which builds the files from ``{cell name:
result}`` in the order of ``cells``. The files are the same bytes as a serial run's.

With ``jobs = N > 1`` (``--jobs``) the parent derives the cells one by one (the exporters'
``prepare``: derivations cached per cell, which a process forked afterwards inherits) and,
after each cell, hands the cells derived so far and not yet handed out (the first of them,
up to about one expensive cell's work, :data:`BATCH_COST`) to a newly forked worker whenever
fewer than N - 1 are running: so the kernels and experiments of the first cells run while the
later cells are still being derived, no worker derives a cell again, and no worker is left
with a long batch of expensive cells while the others have run out of work.
Once every cell is derived, the rest go into a queue (a pipe of fixed-size records, each
taken by exactly one reader, the most expensive cells first) for N - 1 new workers, and the
parent drains it too once its own exporters (the article) are done, so the load balances
itself whatever each cell costs. Each worker sends its results back through its pipe as one
pickle, ``("ok", value)`` or ``("error", exception)``; the parent reads what has arrived at
each step (a worker never waits long on a full pipe) and re-raises a worker's exception (the
same exception: the CLI reports a user error as one line, exit 2).

The first worker does an exporter's *lead* cells first (``lead_cells(cells, options)``, then
``lead_done(results, options)`` in that worker; ``lead_finish(options)`` in the parent gives
``merge`` its ``extras``): the gradient-flow exporter's drawn cells, whose experiments go to
the figure process, which draws while the other cells are computed. That worker keeps the
request end of the figure process's pipes, the parent the reply end, every other worker none.

Workers die with the parent (:func:`derive.export.figure_process.die_with_parent`), ignore
SIGINT (the parent reports Ctrl-C and kills them) and are killed and reaped by
:meth:`Pool.kill` on any error or interrupt.
"""
from __future__ import annotations

import os
import pickle
import select
import signal

from derive.core.reduction import SumOf
from derive.export.figure_process import die_with_parent, send_result

_RECORD = 2                                    # bytes per queued cell index
MAX_JOBS = 4
#: The largest :func:`cost` of the cells handed to a worker forked while the cells are still
#: being derived (at least one cell): about one of the most expensive cells.
BATCH_COST = 130


def default_jobs() -> int:
    """The usable cores, at most :data:`MAX_JOBS`; 1 where there is no ``fork``."""
    if not hasattr(os, "fork"):
        return 1
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(MAX_JOBS, n))


def cost(cell) -> int:
    """A rough cost of a cell's tasks, for the queue order: its matrix parameters, equations
    and states (the LSTM variants and the sLSTM before the RNNs), and a reduction over the
    units (a layer norm, a dot product: the gradient-flow experiment runs such a cell copy by
    copy, the most expensive experiments, with the mLSTM and the gated DeltaNet among them)."""
    params = getattr(cell, "params", {})
    matrices = sum(1 for p in params.values() if getattr(p, "shape", (1, 1))[1] != 1)
    equations = getattr(cell, "equations", ())
    reduces = any(getattr(eq.rhs, "has", lambda _: False)(SumOf) for eq in equations)
    return (4 * matrices + len(equations) + 10 * len(getattr(cell, "states", ()))
            + 40 * reduces)


class _Worker:
    def __init__(self, pid, fd):
        self.pid, self.fd, self.data = pid, fd, []


class Pool:
    """Workers for the tasked exporters' cells: :meth:`derived` after each cell the parent
    derives (in :meth:`order`), then :meth:`all_derived`, then :meth:`finish`; :meth:`kill`
    at the end in any case."""

    def __init__(self, cells, modules, options, progress, child_progress, jobs, helpers,
                 test_hook=lambda phase: None):
        if jobs < 2:
            raise ValueError("a pool needs at least one worker besides this process")
        self.cells, self.modules, self.options = list(cells), modules, options
        self.progress, self.child_progress = progress, child_progress
        self.workers_max, self.helpers, self.test_hook = jobs - 1, helpers, test_hook
        self.running: list = []                # [_Worker]
        self.results: dict = {m.__name__: {} for m in modules}
        self.ready: list = []                  # derived, not handed out, in derivation order
        self.queue_fd = None
        self.lead = {}                         # module name -> lead cell names
        for m in modules:
            names = m.lead_cells(self.cells, options) if hasattr(m, "lead_cells") else []
            if names:
                self.lead[m.__name__] = list(names)
        self.lead_names = {n for names in self.lead.values() for n in names}
        self.lead_handed = not self.lead_names
        self.label = ", ".join(m.__name__.rpartition(".")[2] for m in modules)
        self.rank = {c.name: i for i, c in enumerate(self.order(), 1)}

    def order(self) -> list:
        """The order to derive the cells in: the lead cells (in cell order), then the most
        expensive first."""
        rest = sorted((c for c in self.cells if c.name not in self.lead_names),
                      key=lambda c: -cost(c))              # stable: ties keep cell order
        return [c for c in self.cells if c.name in self.lead_names] + rest

    # -- in the parent -------------------------------------------------------------------
    def derived(self, cell) -> None:
        """``cell`` is derived here: maybe hand it (with the others waiting) to a new worker."""
        self.ready.append(cell)
        self._pump(block=False)
        names = {c.name for c in self.ready}
        if len(self.running) < self.workers_max and (self.lead_handed or
                                                     self.lead_names <= names):
            if self.lead_handed:                 # at most about one expensive cell's work:
                n = 1                            # the rest waits for the next worker or
                while n < len(self.ready) and \
                        sum(cost(c) for c in self.ready[:n + 1]) <= BATCH_COST:
                    n += 1                       # the queue (no long static batch at the end)
            else:
                n = len(self.ready)
            batch, self.ready = self.ready[:n], self.ready[n:]
            self._fork(batch, None)

    def all_derived(self) -> None:
        """Every cell is derived: the rest go into the queue, for new workers and this process."""
        rest = sorted(self.ready, key=lambda c: -cost(c))
        self.ready = []
        index = {c.name: i for i, c in enumerate(self.cells)}
        r, w = os.pipe()
        data = b"".join(index[c.name].to_bytes(_RECORD, "big") for c in rest)
        try:
            while data:                        # 21 cells: 42 bytes, far below a pipe's buffer
                data = data[os.write(w, data):]
        finally:
            os.close(w)
        self.queue_fd = r
        for _ in range(min(self.workers_max, len(rest))):
            self._fork([], r)

    def finish(self) -> dict:
        """Drain the queue here too, then wait for every worker; a worker's exception
        re-raised. ``{module name: files}`` from each exporter's ``merge``."""
        if self.queue_fd is not None:
            self._drain(self.queue_fd, self.progress, self.results)
            os.close(self.queue_fd)
            self.queue_fd = None
        while self.running:
            self._pump(block=True)
        out = {}
        for m in self.modules:
            extras = [m.lead_finish(self.options)] if m.__name__ in self.lead else []
            out[m.__name__] = m.merge(self.cells, self.results[m.__name__], self.options, extras)
        return out

    def kill(self) -> None:
        """Kill and reap the workers still running; close the pipes."""
        while self.running:
            w = self.running.pop()
            try:
                os.kill(w.pid, signal.SIGKILL)
                os.waitpid(w.pid, 0)
            except OSError:
                pass
            os.close(w.fd)
        if self.queue_fd is not None:
            os.close(self.queue_fd)
            self.queue_fd = None

    def _pump(self, block) -> None:
        """Read what the workers have sent; take in the results of those that are done."""
        while self.running:
            fds = [w.fd for w in self.running]
            readable = select.select(fds, [], [], None if block else 0)[0]
            if not readable:
                return
            for w in [w for w in self.running if w.fd in readable]:
                chunk = os.read(w.fd, 1 << 20)
                if chunk:
                    w.data.append(chunk)
                    continue
                self.running.remove(w)             # EOF: the worker is done
                os.close(w.fd)
                _, status = os.waitpid(w.pid, 0)
                data = b"".join(w.data)
                if not data or os.waitstatus_to_exitcode(status) != 0:
                    raise RuntimeError("a worker process of the cell exports died")
                kind, value = pickle.loads(data)
                if kind == "error":
                    raise value
                for name, per_cell in value.items():
                    self.results[name].update(per_cell)
            if block:
                return

    def _fork(self, batch, queue_fd) -> None:
        lead = not self.lead_handed
        self.lead_handed = True
        parent = os.getpid()
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:                           # the worker
            status = 1
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                die_with_parent(parent)
                os.close(read_fd)
                for w in self.running:
                    os.close(w.fd)
                for h in self.helpers:
                    h.detach(request=not lead, reply=True)
                self.test_hook("child")
                send_result(write_fd, lambda: self._work(batch, queue_fd, lead))
                status = 0
            except BaseException:              # noqa: BLE001
                status = 1
            finally:
                os._exit(status)
        os.close(write_fd)
        if lead:
            for h in self.helpers:
                h.detach(request=True, reply=False)
        self.running.append(_Worker(pid, read_fd))

    # -- in a worker ---------------------------------------------------------------------
    def _run(self, cell, progress, results) -> None:
        progress(f"{self.label}: {cell.name} ({self.rank[cell.name]}/{len(self.cells)})")
        for m in self.modules:
            results[m.__name__][cell.name] = m.cell_task(cell, self.options)

    def _work(self, batch, queue_fd, lead) -> dict:
        """A worker's results: its batch (the lead cells first, when it has them), then
        the queue's cells."""
        results = {m.__name__: {} for m in self.modules}
        if lead:
            for c in batch:
                if c.name in self.lead_names:
                    self._run(c, self.child_progress, results)
            for m in self.modules:
                if m.__name__ in self.lead:
                    m.lead_done({n: results[m.__name__][n] for n in self.lead[m.__name__]},
                                self.options)
        for c in batch:
            if not (lead and c.name in self.lead_names):
                self._run(c, self.child_progress, results)
        if queue_fd is not None:
            self._drain(queue_fd, self.child_progress, results)
        return results

    def _drain(self, fd, progress, results) -> None:
        """Take cells from the queue until it is empty and do their tasks."""
        while True:
            rec = os.read(fd, _RECORD)
            if len(rec) < _RECORD:
                return
            self._run(self.cells[int.from_bytes(rec, "big")], progress, results)
