"""The forked exporter's ``prepare`` hook (derive.export.registry): it runs in the parent,
before the fork, and what it computes is inherited by the child; the files are the same map
as a sequential run's."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FAKE_PARALLEL = """
import os
PARALLEL = True
WARM = {}
def prepare(cells, options):
    WARM["pid"] = os.getpid()
def export(cells, options):
    return {"parallel.txt": f"prepared in {WARM.get('pid')} exported in {os.getpid()}"}
"""
FAKE_SEQUENTIAL = "def export(cells, options):\n    return {'sequential.txt': 'x'}\n"
HARNESS = """
import json, os, sys
sys.path.insert(0, {tmp!r})
import derive.export.registry as ex
ex.EXPORTERS = ["fake_sequential", "fake_parallel"]
print(os.getpid(), json.dumps(ex.render_all([], None)))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_prepare_runs_in_the_parent_before_the_fork(tmp_path):
    (tmp_path / "fake_parallel.py").write_text(FAKE_PARALLEL)
    (tmp_path / "fake_sequential.py").write_text(FAKE_SEQUENTIAL)
    out = subprocess.run([sys.executable, "-c", HARNESS.format(tmp=str(tmp_path))], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    parent, files = out.split(" ", 1)
    files = json.loads(files)
    assert list(files) == ["parallel.txt", "sequential.txt"]
    prepared, exported = files["parallel.txt"].split()[2::3]
    assert prepared == parent          # run here, and its result reached the child
    assert exported != parent          # the export itself ran in the forked child
