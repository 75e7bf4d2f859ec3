"""derive.export.output.write_tree: out/ is the old or the new complete tree after a kill at any
filesystem operation (fault hook RNN_CALCULUS_FAULT_AFTER), with the atomic exchange and with
the journaled fallback; ENOSPC at any operation leaves the old tree; leftovers are removed by
the next run and reported by stray_files; files the generator does not own are kept."""
import os
import shutil

import pytest

from derive.export.output import (FAULT_ENV, FAULT_EXIT, NO_EXCHANGE_ENV, OutputError, stray_files,
                           write_tree)

OLD = {"derivations.md": "old md\n", "kernels/__init__.py": "CELLS = ('a', 'b')\n",
       "kernels/a.py": "A = 1\n", "kernels/b.py": "B = 1\n", "summary/a.txt": "a\n",
       "summary/b.txt": "b\n"}
NEW = {"derivations.md": "new md\n", "kernels/__init__.py": "CELLS = ('a', 'b', 'c')\n",
       "kernels/a.py": "A = 1\n", "kernels/b.py": "B = 2\n", "kernels/c.py": "C = 3\n",
       "summary/a.txt": "a\n", "summary/b.txt": "b, changed\n"}
USER = {"my notes.txt": "the user's own file\n"}


def tree(root):
    """{relative path: bytes} of every file under root (None if root does not exist)."""
    if not os.path.isdir(root):
        return None
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            out[os.path.relpath(p, root).replace(os.sep, "/")] = open(p, "rb").read()
    return out


def as_bytes(files):
    return {k: v.encode() for k, v in files.items()}


def setup_old(tmp_path, exists=True):
    """A fresh parent dir holding out/ = OLD + the user's file (plain writes, no write_tree)."""
    parent = tmp_path / "run"
    if parent.exists():
        shutil.rmtree(parent)
    out = parent / "a" / "out"
    (parent / "a").mkdir(parents=True)
    if exists:
        for rel, text in {**OLD, **USER}.items():
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_text(text)
    return parent, out


def killed_at(k, out, extra_env=()):
    """Run write_tree(NEW) in a forked child that the fault hook kills after operation k;
    its exit status (FAULT_EXIT when killed, 0 when the run finished first)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.environ[FAULT_ENV] = str(k)
            os.environ.update(dict(extra_env))
            write_tree(NEW, out)
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def siblings(out):
    return sorted(os.listdir(out.parent))


@pytest.mark.parametrize("mode", ["exchange", "journal", "first run"])
def test_a_kill_at_every_operation_leaves_the_old_or_the_new_tree(tmp_path, mode):
    """After a kill after any k-th filesystem operation, out/ is exactly the old tree or exactly
    the new one (journal mode: or absent with its journal beside it, rolled forward by the next
    run); the next run gives the new tree, keeps the user's file and leaves nothing else."""
    env = {NO_EXCHANGE_ENV: "1"} if mode == "journal" else {}
    old = None if mode == "first run" else as_bytes({**OLD, **USER})
    new = as_bytes(NEW) if mode == "first run" else as_bytes({**OLD, **USER, **NEW})
    seen = set()
    for k in range(1, 500):
        _, out = setup_old(tmp_path, exists=mode != "first run")
        status = killed_at(k, out, env)
        assert status in (0, FAULT_EXIT), (k, status)
        state = tree(out)
        if state is None and mode == "journal":
            assert ".out.rnn-derive-journal" in siblings(out), k
            seen.add("between renames")
        else:
            assert state in (old, new), (k, state)
            seen.add("old" if state == old else "new")
        with pytest.MonkeyPatch.context() as mp:
            for name, value in env.items():
                mp.setenv(name, value)
            write_tree(NEW, out)
        assert tree(out) == new, k
        assert siblings(out) == ["out"], k
        if status == 0:
            break
    else:
        pytest.fail("the run never finished")
    assert k > 10 and "new" in seen and ("old" in seen or mode == "first run")


def test_enospc_at_every_operation_leaves_the_old_tree_and_names_the_path(tmp_path, monkeypatch):
    """An injected ENOSPC at operation k: a one-line error naming a path in out/, the old tree
    and no leftovers; once the swap is done, a failure removing the old tree is not an error
    (the next run removes that leftover)."""
    for k in range(1, 500):
        _, out = setup_old(tmp_path)
        monkeypatch.setenv(FAULT_ENV, f"enospc:{k}")
        try:
            write_tree(NEW, out)
        except OutputError as exc:
            msg = str(exc)
            assert "\n" not in msg and "No space left on device" in msg, msg
            assert msg.startswith(f"cannot write {out}"), msg
            assert tree(out) == as_bytes({**OLD, **USER}), k
            assert siblings(out) == ["out"], k
            continue
        finally:
            monkeypatch.delenv(FAULT_ENV)
        assert tree(out) == as_bytes({**OLD, **USER, **NEW}), k
        write_tree(NEW, out)
        assert siblings(out) == ["out"], k
        if k > 60:
            break
    assert k > 10


def test_an_unchanged_tree_is_not_rewritten(tmp_path):
    _, out = setup_old(tmp_path)
    assert sorted(write_tree(NEW, out)) == sorted(k for k in NEW if OLD.get(k) != NEW[k])
    inode = os.stat(out).st_ino
    stamps = {p: os.stat(out / p).st_mtime_ns for p in NEW}
    assert write_tree(NEW, out) == []
    assert os.stat(out).st_ino == inode
    assert {p: os.stat(out / p).st_mtime_ns for p in NEW} == stamps


def test_leftovers_are_reported_as_stray_and_removed_by_the_next_run(tmp_path):
    """Stray: a staging tree beside out/, an old-style temp file next to a generated file and an
    unknown file in a generated folder; not the user's file at the top level. A run removes the
    leftovers, keeps the unknown file (the generator does not own it) and the user's file."""
    _, out = setup_old(tmp_path)
    write_tree(NEW, out)
    assert stray_files(NEW, out) == []
    (out.parent / ".out.rnn-derive-stage-0badf00d" / "kernels").mkdir(parents=True)
    (out / "kernels" / ".a.py.k2j3h4g5.tmp").write_text("half")
    (out / "summary" / "mine.txt").write_text("not generated")
    stray = sorted(str(p) for p in stray_files(NEW, out))
    assert stray == sorted([str(out.parent / ".out.rnn-derive-stage-0badf00d"),
                            str(out / "kernels" / ".a.py.k2j3h4g5.tmp"),
                            str(out / "summary" / "mine.txt")])
    assert write_tree(NEW, out) == []
    assert siblings(out) == ["out"]
    assert tree(out) == as_bytes({**OLD, **USER, **NEW, "summary/mine.txt": "not generated"})
    assert [str(p) for p in stray_files(NEW, out)] == [str(out / "summary" / "mine.txt")]


def test_out_in_the_way_of_a_file_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for target in (blocker, blocker / "sub" / "out"):
        with pytest.raises(OutputError, match=f"^{blocker} is not a directory$"):
            write_tree(NEW, target)
    assert blocker.read_text() == "x"
    out = tmp_path / "out"
    (out / "kernels").parent.mkdir()
    (out / "kernels").write_text("a file where a folder is generated")
    with pytest.raises(OutputError, match="kernels is not a directory"):
        write_tree(NEW, out)
    assert tree(out) == {"kernels": b"a file where a folder is generated"}


def test_permissions_of_out_are_kept(tmp_path):
    _, out = setup_old(tmp_path)
    os.chmod(out, 0o750)
    os.chmod(out / "kernels", 0o705)
    write_tree(NEW, out)
    assert os.stat(out).st_mode & 0o777 == 0o750
    assert os.stat(out / "kernels").st_mode & 0o777 == 0o705
    assert os.stat(out / "kernels" / "c.py").st_mode & 0o777 == 0o644
