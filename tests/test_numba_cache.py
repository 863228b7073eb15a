"""The lock on numba's cache: where it is, that it excludes other processes, that ranx runs under it,
and a file system without locks."""

from __future__ import annotations

import errno
import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sbmoe.evaluation import numba_cache
from sbmoe.evaluation.metrics import evaluate
from sbmoe.evaluation.numba_cache import LOCK_NAME, CacheLockError, cache_folder, cache_lock

HOLD = """
import logging, sys, time
from pathlib import Path
from sbmoe.evaluation.numba_cache import cache_lock
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
folder = Path(sys.argv[1])
with cache_lock() as path:
    (folder / f"{sys.argv[2]}-acquired").write_text(str(path))
    while sys.argv[2] == "first" and not (folder / "release").exists():
        time.sleep(0.05)
"""


def _python(code: str, *args: str, cache: Path, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, text=True, **kwargs)


def _wait_for(path: Path, process: subprocess.Popen) -> None:
    deadline = time.time() + 120
    while not path.exists():
        assert process.poll() is None, f"process exited with {process.returncode} before writing {path}"
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_cache_folder_is_numba_cache_dir(tmp_path):
    printed = subprocess.run(
        [sys.executable, "-c", "from sbmoe.evaluation.numba_cache import cache_folder; print(cache_folder())"],
        env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")},
        capture_output=True,
        text=True,
        check=True,
    )
    assert printed.stdout.strip() == str(tmp_path / "cache")


def test_the_lock_excludes_other_processes(tmp_path):
    cache = tmp_path / "cache"
    first = _python(HOLD, str(tmp_path), "first", cache=cache)
    _wait_for(tmp_path / "first-acquired", first)
    second = _python(HOLD, str(tmp_path), "second", cache=cache, stderr=subprocess.PIPE)
    waiting = second.stderr.readline()  # logged when its first, non-blocking attempt fails
    assert waiting.startswith(f"waiting for {cache / LOCK_NAME}"), waiting
    assert not (tmp_path / "second-acquired").exists()
    (tmp_path / "release").touch()
    assert first.wait(timeout=60) == 0 and second.wait(timeout=60) == 0
    assert (tmp_path / "second-acquired").read_text() == str(cache / LOCK_NAME)


def test_ranx_runs_under_the_lock(monkeypatch):
    import ranx

    real, seen = ranx.evaluate, []

    def probing(*args, **kwargs):
        with open(cache_folder() / LOCK_NAME, "a") as other:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        seen.append(True)
        return real(*args, **kwargs)

    monkeypatch.setattr(ranx, "evaluate", probing)
    evaluate({"q": {"d1": 2.0, "d2": 1.0}}, {"q": {"d1": 2, "d2": 1}}, ["ndcg@10", "recall@100"])
    assert seen == [True, True]  # graded and binary metrics
    with open(cache_folder() / LOCK_NAME, "a") as other:  # released afterwards
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_a_file_system_without_locks_is_a_clear_error(monkeypatch):
    def no_locks(handle, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(numba_cache.fcntl, "flock", no_locks)
    with pytest.raises(CacheLockError, match=r"cannot lock .*sbmoe-numba.lock \(No locks available\).*NUMBA_CACHE_DIR"):
        with cache_lock():
            pass
