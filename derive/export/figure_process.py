"""A process that draws the gradient-flow figure, started before the cells are derived.

Importing matplotlib costs about 0.5 s, and the forked gradient-flow exporter used to pay it
after the experiment, on the critical path of ``python -m derive``. :func:`start` forks this
process first thing (from :mod:`derive.export.registry`, before ``prepare``): it imports
matplotlib while the parent derives, then waits. The gradient-flow child (forked later, so it
inherits the pipes) sends it the experiments and reads back the files, which are the bytes
``draw(experiments)`` gives in any process. Protocol on both pipes: one pickle each way,
``("ok", value)`` or ``("error", exception)``.

The process dies with its parent (:func:`die_with_parent`) and ignores SIGINT; it exits when
its request pipe is closed without a request. The parent closes its own ends right after
forking the gradient-flow child (:meth:`FigureProcess.detach`) and kills and reaps it at the
end of the run (:meth:`FigureProcess.reap`).
"""
from __future__ import annotations

import ctypes
import io
import os
import pickle
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """In a forked child: be killed when ``parent`` exits (``prctl(PR_SET_PDEATHSIG)`` on
    Linux, then ``getppid`` re-checked for a parent that died before the call; elsewhere a
    thread polling ``getppid``)."""
    armed = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent:          # the parent died before prctl took effect
        os._exit(1)
    if not armed:
        def watch():
            while os.getppid() == parent:
                time.sleep(0.2)
            os._exit(1)
        threading.Thread(target=watch, daemon=True).start()


def _read_all(fd) -> bytes:
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


class FigureProcess:
    """The handle of a started drawing process: :meth:`send` and :meth:`receive` (from any
    process that holds the pipes), :meth:`detach` and :meth:`reap` (in the one that started it)."""

    def __init__(self, pid, request_fd, reply_fd):
        self.pid, self.request_fd, self.reply_fd = pid, request_fd, reply_fd

    def send(self, experiments) -> None:
        """Hand the process the experiments to draw (once)."""
        if self.request_fd is None:
            raise RuntimeError("the figure process was detached or already asked here")
        with os.fdopen(self.request_fd, "wb") as fh:
            self.request_fd = None
            pickle.dump(experiments, fh)

    def receive(self) -> dict:
        """The files drawn from what :meth:`send` handed over; the process's exception
        re-raised; RuntimeError when it died."""
        if self.reply_fd is None:
            raise RuntimeError("the figure process was detached or already answered here")
        fd, self.reply_fd = self.reply_fd, None
        data = _read_all(fd)
        if not data:
            raise RuntimeError("the figure process died")
        kind, value = pickle.loads(data)
        if kind == "error":
            raise value
        return value

    def draw(self, experiments) -> dict:
        """:meth:`send` then :meth:`receive`."""
        self.send(experiments)
        return self.receive()

    def detach(self, request=True, reply=True) -> None:
        """Close this process's ends of the pipes (by default both; the process that sends
        or receives holds its own)."""
        for name, close in (("request_fd", request), ("reply_fd", reply)):
            fd = getattr(self, name)
            if close and fd is not None:
                os.close(fd)
                setattr(self, name, None)

    def reap(self) -> None:
        """Kill the process (done or not) and wait for it."""
        self.detach()
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except OSError:
                pass
            self.pid = None


def _rebuild(cls, args, state):
    """An exception as it was sent: its class, ``args`` and attributes, without calling its
    ``__init__`` again (which may format its message a second time)."""
    exc = cls.__new__(cls, *args)
    exc.args = args
    for name, value in state.items():
        setattr(exc, name, value)
    return exc


class _Pickler(pickle.Pickler):
    """Pickles exceptions by :func:`_rebuild`, so that the reader raises the same message."""

    def reducer_override(self, obj):
        if not isinstance(obj, BaseException):
            return NotImplemented
        state = dict(getattr(obj, "__dict__", {}))
        if isinstance(obj, OSError):
            for name in ("errno", "strerror", "filename", "filename2"):
                state[name] = getattr(obj, name)
        return _rebuild, (type(obj), obj.args, state)


def send_result(fd, compute) -> None:
    """Pickle ``("ok", compute())``, or ``("error", exception)``, to the pipe ``fd`` (the
    one reply of a forked worker) and close it. An exception arrives with its class, message
    and attributes (:func:`_rebuild`); one that cannot be pickled as a RuntimeError with its
    one-line message."""
    try:
        payload = ("ok", compute())
    except BaseException as exc:                 # noqa: BLE001 - handed to the reader
        payload = ("error", exc)
    try:
        data = _dumps(payload)
    except Exception as exc:                     # noqa: BLE001 - e.g. an unpicklable exception
        shown = payload[1] if payload[0] == "error" else exc
        data = _dumps(("error", RuntimeError(f"{type(shown).__name__}: {shown}")))
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _dumps(obj) -> bytes:
    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buf.getvalue()


def start(warm, draw) -> FigureProcess | None:
    """Fork the drawing process: it calls ``warm()`` (imports), then answers one request with
    ``draw(experiments)``. None where there is no ``fork``."""
    if not hasattr(os, "fork"):
        return None
    parent = os.getpid()
    req_r, req_w = os.pipe()
    rep_r, rep_w = os.pipe()
    pid = os.fork()
    if pid == 0:                                     # the drawing process
        status = 1
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            die_with_parent(parent)
            os.close(req_w)
            os.close(rep_r)
            try:
                warm()
            except BaseException:                # noqa: BLE001 - draw() reports it
                pass
            data = _read_all(req_r)
            if data:
                send_result(rep_w, lambda: draw(pickle.loads(data)))
            status = 0
        except BaseException:                    # noqa: BLE001
            status = 1
        finally:
            os._exit(status)
    os.close(req_r)
    os.close(rep_w)
    return FigureProcess(pid, req_w, rep_r)
