"""Writing generated files: ``out/`` is replaced as a whole, in one atomic step.

A run builds the complete ``{relative path: bytes}`` map in memory before touching the disk,
so an error while deriving leaves ``out/`` untouched. :func:`write_tree` then

1. takes an exclusive ``flock`` on the parent directory of ``out/`` (two runs do not mix);
2. finishes or removes what an interrupted run left: its sibling entries named
   ``.<out>.rnn-derive-*`` (staging trees, old trees, the fallback's journal) and the
   ``.<name>.XXXXXXXX.tmp`` files of earlier versions next to generated files;
3. returns ``[]`` without writing anything when every file is already up to date;
4. stages the complete new tree in ``.<out>.rnn-derive-stage-<hex>`` beside ``out/`` (same
   filesystem): changed files are written, unchanged ones and every file the generator does
   not own (a user's file, ``derivations.pdf``) are hard-linked (copied where links fail);
   directories keep their permission bits;
5. swaps the two directories with one ``renameat2(RENAME_EXCHANGE)`` (Linux >= 3.15, glibc
   >= 2.28, through ctypes): at every moment ``out/`` is the previous complete tree or the new
   complete tree, whatever kills the process; then removes the old tree (now at the staging
   path; a kill there leaves only a leftover of step 2).

Where the exchange is not available (another OS, a filesystem answering EINVAL, or
``RNN_CALCULUS_NO_EXCHANGE=1``) the swap is journaled, a weaker guarantee: the journal
``.<out>.rnn-derive-journal`` names the complete staged tree, then ``out/`` is renamed away
and the staged tree renamed into place; a kill between those two renames leaves no ``out/``
until the next run rolls the swap forward (no file is lost, the new tree is complete).

Files are never deleted unless the generator owns them: :func:`stray_files` reports files in
the generated folders (the top-level folders the file map writes into) that the map does not
hold, and leftovers; ``--check`` lists them, a run keeps the former and removes the latter.
A shell whose working directory is ``out/`` itself keeps the old, removed directory.

Test-only fault injection: ``RNN_CALCULUS_FAULT_AFTER=k`` makes the writer ``os._exit(70)``
right after its k-th filesystem operation (every mkdir, chmod, link, write, rename, unlink,
rmdir counts); ``enospc:k`` makes the k-th operation fail with ENOSPC instead; ``sigint:k``
sends SIGINT to the process after it.
"""
from __future__ import annotations

import ctypes
import errno
import os
import re
import secrets
import shutil
import signal
import stat
import sys
from pathlib import Path

FAULT_ENV = "RNN_CALCULUS_FAULT_AFTER"
FAULT_EXIT = 70
NO_EXCHANGE_ENV = "RNN_CALCULUS_NO_EXCHANGE"
_OLD_TMP = re.compile(r"\.(.+)\.[a-z0-9_]{8}\.tmp")      # tempfile.mkstemp names of old versions
#: derive.document.pdf stages each edition's PDF here before renaming it into place.
_PDF_TMP = frozenset({".derivations.pdf.tmp", ".derivations.zh.pdf.tmp"})


class OutputError(OSError):
    """The output directory cannot be written; the message names the path."""

    def __str__(self):
        return self.strerror or super().__str__()


def _as_bytes(content) -> bytes:
    return content.encode("utf-8") if isinstance(content, str) else bytes(content)


def _prefix(out: Path) -> str:
    """Name prefix of every entry a run keeps beside ``out`` (recognised as a leftover)."""
    return f".{out.name}.rnn-derive-"


class _Fs:
    """Every filesystem operation of a write goes through :meth:`op`: counted, for the fault hook."""

    def __init__(self):
        kind, _, k = os.environ.get(FAULT_ENV, "").rpartition(":")
        self.kind, self.k, self.n = kind or "exit", int(k) if k.isdigit() else 0, 0

    def op(self, shown, fn, *args, **kw):
        self.n += 1
        try:
            if self.n == self.k and self.kind == "enospc":
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(shown))
            result = fn(*args, **kw)
        except OutputError:
            raise
        except OSError as exc:
            raise OutputError(exc.errno, f"cannot write {shown}: {exc.strerror}") from None
        if self.n == self.k:
            if self.kind == "sigint":
                os.kill(os.getpid(), signal.SIGINT)
            else:
                os._exit(FAULT_EXIT)
        return result

    def quiet(self):
        """No more faults (cleaning up after one)."""
        self.k = 0


def _resolve(out_dir) -> Path:
    if str(out_dir) == "":
        raise OutputError(errno.EINVAL, "the output directory must not be empty")
    p = Path(out_dir)
    while not p.exists() and p.parent != p:
        p = p.parent
    if not p.is_dir():
        raise OutputError(errno.ENOTDIR, f"{p} is not a directory")
    out = Path(os.path.abspath(out_dir))
    if out.is_symlink():
        out = Path(os.path.realpath(out))       # swap the directory it points to, keep the link
    if out.parent == out:
        raise OutputError(errno.EINVAL, f"cannot use {out} as the output directory")
    return out


def check_out_dir(out_dir) -> None:
    """Raise :class:`OutputError` if ``out_dir`` cannot be a directory (empty, or a file is in
    the way); done before deriving."""
    _resolve(out_dir)


def write_tree(files: dict, out_dir) -> list[str]:
    """Replace ``out_dir`` by the tree of ``files`` (kept: files the generator does not own);
    return the relative paths whose content changed."""
    shown = Path(out_dir)
    out = _resolve(out_dir)
    data = {rel: _as_bytes(c) for rel, c in files.items()}
    fs = _Fs()
    if not out.parent.is_dir():
        fs.op(out.parent, os.makedirs, out.parent, exist_ok=True)
    if out.exists() and not os.access(out, os.W_OK):
        raise OutputError(errno.EACCES, f"output directory {shown} is not writable")
    lock = _lock(out.parent)
    try:
        _recover(out, fs)
        _remove_leftovers(out, data, fs)
        changed = [rel for rel in sorted(data) if not _same(out / rel, data[rel])]
        if not changed:
            return []
        _check_conflicts(out, shown, data)
        stage = out.parent / f"{_prefix(out)}stage-{secrets.token_hex(4)}"
        try:
            _stage(out, shown, stage, data, set(changed), fs)
            _swap(out, stage, fs)
        except BaseException:
            fs.quiet()
            _remove_tree(stage, fs, ignore=True)
            raise
        _remove_tree(stage, fs, ignore=True)      # the old tree; a leftover if this fails
        return changed
    finally:
        if lock is not None:
            os.close(lock)


def _lock(parent: Path):
    try:
        import fcntl
        fd = os.open(parent, os.O_RDONLY)
    except (ImportError, OSError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:
        pass
    return fd


def _same(path: Path, data: bytes) -> bool:
    try:
        return path.is_file() and not path.is_symlink() and path.stat().st_size == len(data) \
            and path.read_bytes() == data
    except OSError:
        return False


def _check_conflicts(out: Path, shown: Path, data: dict):
    """A generated path whose place holds a directory, or whose folder is a file: one line."""
    for rel in data:
        parts = rel.split("/")
        for i in range(1, len(parts)):
            p = out.joinpath(*parts[:i])
            if p.is_symlink() or (p.exists() and not p.is_dir()):
                raise OutputError(errno.ENOTDIR, f"{shown.joinpath(*parts[:i])} is not a directory")
        if (out / rel).is_dir() and not (out / rel).is_symlink():
            raise OutputError(errno.EISDIR, f"{shown / rel} is a directory")


def _is_temp_leftover(rel_dir: str, name: str, data: dict) -> bool:
    if rel_dir == "" and name in _PDF_TMP:
        return True
    m = _OLD_TMP.fullmatch(name)
    return bool(m) and (f"{rel_dir}/{m[1]}" if rel_dir else m[1]) in data


def _walk(out: Path):
    """(relative dir, [dir names], [entry names that are not real directories]) top-down."""
    for dirpath, dirnames, filenames in os.walk(out):
        rel = os.path.relpath(dirpath, out)
        rel = "" if rel == "." else rel.replace(os.sep, "/")
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        dirnames[:] = sorted(d for d in dirnames if d not in links)
        yield rel, dirnames, sorted(filenames + links)


def _stage(out, shown, stage, data, changed, fs):
    """The complete new tree at ``stage``: generated files, plus every other file of ``out``."""
    fs.op(shown, os.mkdir, stage)
    made = {""}
    if out.is_dir():
        fs.op(shown, os.chmod, stage, stat.S_IMODE(out.stat().st_mode))
        for rel_dir, dirnames, names in _walk(out):
            for d in dirnames:
                rel = f"{rel_dir}/{d}" if rel_dir else d
                fs.op(shown / rel, os.mkdir, stage / rel)
                fs.op(shown / rel, os.chmod, stage / rel, stat.S_IMODE((out / rel).stat().st_mode))
                made.add(rel)
            for name in names:
                rel = f"{rel_dir}/{name}" if rel_dir else name
                if rel not in data and not _is_temp_leftover(rel_dir, name, data):
                    _link(out / rel, stage / rel, shown / rel, fs)
    for rel in sorted(data):
        parts = rel.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if d not in made:
                fs.op(shown / d, os.mkdir, stage / d)
                made.add(d)
        if rel in changed:
            fs.op(shown / rel, _write, stage / rel, data[rel])
        else:
            _link(out / rel, stage / rel, shown / rel, fs)


def _write(path: Path, data: bytes):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.fchmod(fd, 0o644)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _link(src: Path, dst: Path, shown, fs):
    def link_or_copy():
        try:
            os.link(src, dst, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP,
                                 errno.EOPNOTSUPP, errno.EACCES):
                raise
            shutil.copy2(src, dst, follow_symlinks=False)
    fs.op(shown, link_or_copy)


# ---------------------------------------------------------------------------------------
# the swap, and what an interrupted swap leaves
# ---------------------------------------------------------------------------------------

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two directories; False where the system cannot."""
    if not sys.platform.startswith("linux") or os.environ.get(NO_EXCHANGE_ENV):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _swap(out: Path, stage: Path, fs):
    """Put the staged tree at ``out``; afterwards ``stage`` holds the old tree (or nothing)."""
    if not out.exists():
        fs.op(out, os.rename, stage, out)
        return
    if fs.op(out, _exchange, stage, out):
        return
    p = _prefix(out)
    journal, old = out.parent / f"{p}journal", out.parent / f"{p}old-{secrets.token_hex(4)}"
    draft = out.parent / f"{p}journal-{secrets.token_hex(4)}"
    fs.op(out, _write, draft, f"{stage.name}\n{old.name}\n".encode())
    fs.op(out, os.rename, draft, journal)          # from here on the next run rolls forward
    fs.op(out, os.rename, out, old)
    try:
        fs.op(out, os.rename, stage, out)
    except BaseException:
        os.rename(old, out)
        os.unlink(journal)
        raise
    fs.op(out, os.unlink, journal)
    fs.op(out, os.rename, old, stage)              # so the caller removes it


def _recover(out: Path, fs):
    """Roll an interrupted journaled swap forward."""
    journal = out.parent / f"{_prefix(out)}journal"
    if not journal.is_file():
        return
    names = journal.read_text(errors="replace").split("\n")
    stage = out.parent / names[0] if names and names[0] else None
    old = out.parent / names[1] if len(names) > 1 and names[1] else None
    if stage is not None and stage.is_dir() and old is not None:
        if out.exists() and not old.exists():
            fs.op(out, os.rename, out, old)
        if not out.exists():
            fs.op(out, os.rename, stage, out)
    fs.op(out, os.unlink, journal)


def _leftovers(out: Path, data: dict) -> list[Path]:
    """Entries an interrupted run left: beside ``out`` and inside it."""
    found = []
    p = _prefix(out)
    try:
        found += [out.parent / n for n in sorted(os.listdir(out.parent)) if n.startswith(p)]
    except OSError:
        pass
    if out.is_dir():
        for rel_dir, _, names in _walk(out):
            found += [out / rel_dir / n for n in names if _is_temp_leftover(rel_dir, n, data)]
    return found


def _remove_leftovers(out: Path, data: dict, fs):
    for path in _leftovers(out, data):
        _remove_tree(path, fs)


def _remove_tree(path: Path, fs, ignore=False):
    """Remove a file or a directory tree, one counted operation per entry."""
    try:
        if path.is_dir() and not path.is_symlink():
            for entry in sorted(os.scandir(path), key=lambda e: e.name):
                _remove_tree(Path(entry.path), fs, ignore)
            fs.op(path, os.rmdir, path)
        elif path.is_symlink() or path.exists():
            fs.op(path, os.unlink, path)
    except OSError:
        if not ignore:
            raise


# ---------------------------------------------------------------------------------------
# --check
# ---------------------------------------------------------------------------------------

def check_tree(files: dict, out_dir) -> tuple[list[str], list[str]]:
    """(missing, stale): relative paths absent from ``out_dir`` or different from ``files``."""
    out = Path(out_dir)
    missing, stale = [], []
    for rel in sorted(files):
        target = out / rel
        if not target.is_file():
            missing.append(rel)
        elif not _same(target, _as_bytes(files[rel])):
            stale.append(rel)
    return missing, stale


def stray_files(files: dict, out_dir) -> list[Path]:
    """Files a complete run would not leave as they are: leftovers of an interrupted run
    (removed by the next run) and files in a generated folder (a top-level folder the map
    writes into, e.g. ``kernels/``) that the map does not hold. Files at the top level of
    ``out_dir`` that the map does not hold belong to the user and are not stray."""
    shown = Path(out_dir)
    out = _resolve(out_dir)
    found = [Path(os.path.normpath(shown / os.path.relpath(p, out))) for p in _leftovers(out, files)]
    folders = {rel.split("/")[0] for rel in files if "/" in rel}
    for folder in sorted(folders):
        if not (out / folder).is_dir() or (out / folder).is_symlink():
            continue
        for rel_dir, _, names in _walk(out / folder):
            for n in names:
                rel = "/".join(x for x in (folder, rel_dir, n) if x)
                if rel not in files and not _is_temp_leftover(os.path.dirname(rel), n, files):
                    found.append(shown / rel)
    return found
