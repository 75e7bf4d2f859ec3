"""What both command-line tools (``python -m derive``, ``python -m verify``) share: the program
name, the one error style ``<prog>: error: <message>`` (argparse's own), and the handling of
Ctrl-C (``interrupted``, exit 130), a closed stdout pipe (silent, exit 141 as after SIGPIPE) and
an unwritable stdout such as ``/dev/full`` (one line, exit 2). Never a traceback."""
from __future__ import annotations

import argparse
import errno
import os
import sys

INTERRUPTED = 130
BROKEN_PIPE = 141
USAGE = 2


class UsageError(Exception):
    """A user error: reported as ``<prog>: error: <message>``, exit 2."""


class Parser(argparse.ArgumentParser):
    """argparse with its errors raised as :class:`UsageError` (one line, no usage block)."""

    def error(self, message):
        raise UsageError(message)


def prog_name(module: str, argv=None) -> str:
    """How the tool was started: the console script's name (``rnn-derive``) or
    ``python -m <module>``; ``python -m <module>`` when ``main`` is called with an argv."""
    base = os.path.basename(sys.argv[0]) if argv is None and sys.argv else ""
    if not base or base.endswith(".py") or base in ("-c", "-m"):
        return f"python -m {module}"
    return base


class _StdoutError(Exception):
    def __init__(self, exc):
        super().__init__(exc)
        self.exc = exc


class _Guarded:
    """sys.stdout while a command runs: a failed write raises :class:`_StdoutError`."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, s):
        try:
            return self._stream.write(s)
        except OSError as exc:
            raise _StdoutError(exc) from None

    def flush(self):
        try:
            self._stream.flush()
        except OSError as exc:
            raise _StdoutError(exc) from None

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _silence_stdout():
    """Point fd 1 at /dev/null so that the interpreter's last flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def say_error(prog: str, message) -> None:
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)


def run_main(body, prog: str, user_errors=()) -> int:
    """``body()`` with the shared handling: its return value, or the exit status of a user
    error (``user_errors`` and :class:`UsageError`: one line, 2), of Ctrl-C (130) or of a
    stdout that cannot be written (141 for a closed pipe, else one line and 2)."""
    real = sys.stdout
    sys.stdout = _Guarded(real)
    try:
        try:
            status = body()
            sys.stdout.flush()
            return status
        finally:
            sys.stdout = real
    except (UsageError, *user_errors) as exc:
        say_error(prog, exc)
        return USAGE
    except KeyboardInterrupt:
        _flush_quietly(real)
        print("interrupted", file=sys.stderr, flush=True)
        return INTERRUPTED
    except _StdoutError as exc:
        _silence_stdout()
        if exc.exc.errno == errno.EPIPE:
            return BROKEN_PIPE
        say_error(prog, f"cannot write to standard output: {exc.exc.strerror}")
        return USAGE


def _flush_quietly(stream):
    try:
        stream.flush()
    except (OSError, ValueError):
        _silence_stdout()
