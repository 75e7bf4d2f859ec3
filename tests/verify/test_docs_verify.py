"""docs/verify.md stays true: every marked example runs, and every printed output is what the
example prints today.

Markers (HTML comments, invisible on GitHub):

* ``<!-- example: NAME -->`` on the line before a ```` ```python ```` block: the block is run
  (each in a fresh namespace, with the repository as the working directory);
* ``<!-- output: NAME -->`` on the line before a ```` ``` ```` block: exactly what example
  NAME printed;
* ``<!-- command-output: ARGS -->`` on the line before a ```` ``` ```` block: consecutive
  lines of what ``python ARGS`` prints.

``python tests/verify/test_docs_verify.py --update`` rewrites the ``output`` blocks from fresh runs.
"""
import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "verify.md"
MARKER = re.compile(r"<!-- ([\w-]+): (.+?) -->")


def _fences(text):
    """Every fenced block: (marker kind or None, marker name, language, body, body span)."""
    lines = text.splitlines(True)
    out, i = [], 0
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    while i < len(lines):
        if lines[i].startswith("```"):
            lang = lines[i][3:].strip()
            j = next(k for k in range(i + 1, len(lines)) if lines[k].rstrip("\n") == "```")
            m = MARKER.fullmatch(lines[i - 1].strip()) if i else None
            lo, hi = offsets[i + 1], offsets[j] - 1
            out.append((m and m.group(1), m and m.group(2), lang, text[lo:hi], (lo, hi)))
            i = j + 1
        else:
            i += 1
    return out


def _blocks(kind, text):
    return [(name, body, span) for k, name, _, body, span in _fences(text) if k == kind]


def _run(code):
    """What ``code`` prints, run as a script from the repository root."""
    out, cwd = io.StringIO(), os.getcwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, str(DOC), "exec"), {"__name__": "__docs__"})
    finally:
        os.chdir(cwd)
    return out.getvalue().rstrip("\n")


def _outputs(text):
    examples = dict((n, b) for n, b, _ in _blocks("example", text))
    return {name: _run(examples[name]) for name, _, _ in _blocks("output", text)}, examples


def test_every_marked_example_runs_and_prints_its_documented_output():
    text = DOC.read_text(encoding="utf-8")
    examples = _blocks("example", text)
    assert len(examples) >= 3
    printed = {name: _run(body) for name, body, _ in examples}
    outputs = _blocks("output", text)
    assert outputs, "docs/verify.md shows no checked output"
    for name, body, _ in outputs:
        assert name in printed, f"output block {name!r} has no example"
        assert body == printed[name], (f"docs/verify.md output {name!r} is stale; regenerate "
                                       f"with python tests/verify/test_docs_verify.py --update")


def test_every_printed_command_output_is_what_the_command_prints():
    text = DOC.read_text(encoding="utf-8")
    blocks = _blocks("command-output", text)
    assert blocks
    for args, body, _ in blocks:
        r = subprocess.run([sys.executable, *args.split()], capture_output=True, text=True,
                           cwd=ROOT, timeout=300)
        got, want = r.stdout.splitlines(), body.splitlines()
        assert any(got[i:i + len(want)] == want for i in range(len(got))), (args, r.stdout)


def test_every_output_block_in_the_doc_is_marked():
    """No unchecked printed output: every plain ``` block follows an output marker, unless
    it shows commands to type (lines starting with ``python``)."""
    for kind, _, lang, body, _ in _fences(DOC.read_text(encoding="utf-8")):
        if lang == "" and not body.startswith("python "):
            assert kind in ("output", "command-output"), f"unchecked output block: {body[:60]!r}"
        if lang == "python":
            assert kind == "example", f"python block without an example marker: {body[:60]!r}"


def test_the_mirror_gru_walkthrough_plant_is_what_the_doc_says():
    """The doc's planted mirror-form GRU (run up to its layout line) against central
    differences (verify.oracles): the forward is the mirror form ``(1 - z) h + z n`` of the
    gates it computes, and the planted backward is wrong exactly in z's gradient blocks
    (dWx[:, :H], dWh[:, :H], db[:H], with the opposite sign) and in dx, dh_prev."""
    import numpy
    from verify.oracles import central_difference
    code = dict((n, b) for n, b, _ in _blocks("example", DOC.read_text(encoding="utf-8")))["mirror-gru"]
    ns = {"__name__": "__docs__"}
    exec(code.split("\nlayout = ")[0], ns)
    rng = numpy.random.default_rng(0)
    D, H, B = 2, 3, 2
    p = {"Wx": rng.uniform(-1, 1, (D, 3 * H)), "Wh": rng.uniform(-1, 1, (H, 3 * H)), "b": rng.uniform(-1, 1, 3 * H)}
    x, h, dh = rng.uniform(-1, 1, (B, D)), rng.uniform(-1, 1, (B, H)), rng.uniform(-1, 1, (B, H))
    z, r, n = ns["gates"](p, x, h)
    numpy.testing.assert_allclose(ns["gru_forward"](p, x, (h,))[0], (1 - z) * h + z * n, rtol=1e-13)

    def loss(q, x2, h2):
        return numpy.array(float((ns["gru_forward"](q, x2, (h2,))[0] * dh).sum()))
    grads, dx, (dhp,) = ns["gru_backward"](p, x, (h,), (dh,))
    for k in p:
        fd = central_difference(lambda a, k=k: loss({**p, k: a}, x, h), p[k])
        g = grads["d" + k]
        zb = (slice(None), slice(0, H)) if k != "b" else slice(0, H)
        rest = (slice(None), slice(H, None)) if k != "b" else slice(H, None)
        numpy.testing.assert_allclose(g[rest], fd[rest], atol=1e-8)
        numpy.testing.assert_allclose(g[zb], -fd[zb], atol=1e-8)        # sign flipped
        assert not numpy.allclose(g[zb], fd[zb], atol=1e-6)
    assert not numpy.allclose(dx, central_difference(lambda a: loss(p, a, h), x), atol=1e-6)
    assert not numpy.allclose(dhp, central_difference(lambda a: loss(p, x, a), h), atol=1e-6)


def update():
    text = DOC.read_text(encoding="utf-8")
    printed, _ = _outputs(text)
    for name, _, (lo, hi) in reversed(_blocks("output", text)):
        text = text[:lo] + printed[name] + text[hi:]
    DOC.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] == ["--update"]:
        sys.path.insert(0, str(ROOT))
        update()
    else:
        sys.exit("usage: python tests/verify/test_docs_verify.py --update")
