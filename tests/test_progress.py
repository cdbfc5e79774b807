"""Progress bars (pyapi.progress): drawn on stderr when it is a terminal, silent otherwise.

The bars are checked in child processes whose stderr is a real pseudo-terminal (or a
pipe) and whatever reaches the terminal is captured. A pty from ``pty.openpty()`` has no
window size (0 x 0), like ``script -qc ... /dev/null`` run outside a terminal; tqdm took
that size as -1 x -1 and never drew a bar, so both a sizeless and a sized pty are tried.
"""
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

pty = pytest.importorskip("pty")
pytest.importorskip("tqdm")
import fcntl  # noqa: E402
import struct  # noqa: E402
import termios  # noqa: E402

import pyapi  # noqa: E402
from pyapi.progress import _shape, progress_bar  # noqa: E402

TIMEOUT = 60

# a replay of 6 chunks of 2000 records, each chunk delayed 0.15 s by its source, so the
# bar must be redrawn during the replay (not only when it is created and closed)
_REPLAY = """
import sys, time
import numpy as np
from pyapi.chunk import TraceChunk
from pyapi.mmu import MMU
from pyapi.trace import Trace

N, CS = 12000, 2000
addr = (np.arange(N, dtype=np.uint64) * np.uint64(4096))

def chunks(n):
    for i in range(0, N, n):
        time.sleep(0.15)
        yield TraceChunk(addr[i:i + n])

stats = MMU.from_preset("p6").replay(Trace.from_chunks(chunks, length=N), chunk_size=CS,
                                     progress=sys.argv[1] == "on")
print("accesses", stats["total.accesses"])
"""

_MRC = """
import sys
from pyapi import workloads
from pyapi.mrc import miss_ratio_curve
miss_ratio_curve(workloads.uniform(300_000, footprint="64M", seed=0), chunk_size=50_000,
                 progress=True)
print("done")
"""


# The directory holding the pyapi the tests import (installed, or a source tree built in
# place). Children run there and have it first on PYTHONPATH: `python -c` and `-m` put
# their working directory first on sys.path, and a checkout's uncompiled sources in the
# working directory would shadow an installed package.
HERE = str(Path(pyapi.__file__).resolve().parents[1])


def _env():
    here = HERE
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([here] + [p for p in sys.path if p]))
    for k in list(env):
        if k.startswith("TQDM_") or k in ("COLUMNS", "LINES"):
            del env[k]
    return env


def _in_pty(args, winsize=None):
    """Run ``python args...`` with stderr on a new pty (``winsize``: (rows, cols), or None
    for the 0 x 0 of a fresh pty) and stdout on a pipe; returns (status, stdout, what
    the terminal received)."""
    master, slave = pty.openpty()
    if winsize is not None:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", winsize[0], winsize[1], 0, 0))
    try:
        proc = subprocess.Popen([sys.executable] + list(args), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=slave, env=_env(),
                                close_fds=True, cwd=HERE)
    finally:
        os.close(slave)
    seen = b""
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:         # EIO: every slave end is closed
                    break
                if not data:
                    break
                seen += data
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
            pytest.fail(f"timed out; the terminal got {seen!r}")
        out = proc.communicate(timeout=TIMEOUT)[0]
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out.decode(), seen.decode("utf-8", "replace")


def _draws(text):
    """The bar lines drawn (tqdm redraws with a carriage return), empty ones left out."""
    return [s for s in text.replace("\n", "\r").split("\r") if s.strip()]


@pytest.mark.parametrize("winsize", [None, (24, 100)], ids=["sizeless-pty", "sized-pty"])
def test_replay_draws_a_bar_on_a_terminal(winsize):
    status, out, tty = _in_pty(["-c", _REPLAY, "on"], winsize)
    assert status == 0, tty
    assert "accesses 12000" in out
    draws = _draws(tty)
    assert any(d.startswith("replay:") and "%|" in d and "acc/s" in d for d in draws), tty
    # redrawn during the replay: the start, several chunks in between, the end
    percents = {d.split("%|")[0].split()[-1] for d in draws if "%|" in d}
    assert {"0", "100"} <= percents and len(percents) >= 4, tty
    assert "12.0k/12.0k" in tty
    if winsize is not None:
        assert max(len(d) for d in draws) <= winsize[1]


def test_replay_without_progress_is_silent_on_a_terminal():
    status, out, tty = _in_pty(["-c", _REPLAY, "off"])
    assert status == 0 and "accesses 12000" in out
    assert tty == ""


def test_replay_is_silent_when_stderr_is_a_pipe():
    proc = subprocess.run([sys.executable, "-c", _REPLAY, "on"], env=_env(), cwd=HERE,
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=TIMEOUT)
    assert proc.returncode == 0 and b"accesses 12000" in proc.stdout
    assert proc.stderr == b""


SPEC = "uniform:n=400000,footprint=64M,seed=1"


def test_cli_replay_draws_a_bar_on_a_terminal():
    status, out, tty = _in_pty(["-m", "pyapi", "replay", SPEC, "--preset", "p6",
                                "--chunk-size", "20000"])
    assert status == 0, tty
    assert "400,000 accesses" in out
    draws = _draws(tty)
    assert any(d.startswith("replay:") and "%|" in d and "/400k" in d and "acc/s" in d
               for d in draws), tty
    # cleared when done (leave=False): the last thing written blanks the line
    assert tty.endswith("\r")


@pytest.mark.parametrize("how", ["no-progress", "pipe"])
def test_cli_replay_is_silent_without_a_bar(how):
    if how == "pipe":
        proc = subprocess.run([sys.executable, "-m", "pyapi", "replay", SPEC, "--preset", "p6",
                               "--chunk-size", "20000"], env=_env(), cwd=HERE,
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=TIMEOUT)
        status, out, tty = proc.returncode, proc.stdout.decode(), proc.stderr.decode()
    else:
        status, out, tty = _in_pty(["-m", "pyapi", "replay", SPEC, "--preset", "p6",
                                    "--chunk-size", "20000", "--no-progress"])
    assert status == 0 and "400,000 accesses" in out
    assert tty == ""


def test_mrc_draws_a_bar_on_a_terminal():
    status, out, tty = _in_pty(["-c", _MRC])
    assert status == 0 and "done" in out, tty
    assert any(d.startswith("mrc:") and "acc" in d for d in _draws(tty)), tty


# ------------------------------------------------------------------ the helper itself
def test_progress_bar_is_none_unless_stderr_is_a_terminal(monkeypatch):
    import io
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert progress_bar(10, unit="acc", desc="x") is None
    monkeypatch.setattr(sys, "stderr", None)
    assert progress_bar(10, unit="acc", desc="x") is None


def test_shape_of_a_sizeless_and_a_sized_terminal(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)
    master, slave = pty.openpty()
    try:
        with os.fdopen(os.dup(slave), "w") as stream:
            assert _shape(stream) == (79, 23)                  # 0 x 0: the defaults
            monkeypatch.setenv("COLUMNS", "120")
            assert _shape(stream) == (119, 23)
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
            assert _shape(stream) == (None, None)              # tqdm measures it
    finally:
        os.close(slave)
        os.close(master)
