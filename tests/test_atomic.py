"""Atomic writes: all or nothing, and no scratch folder outlives its process (killed ones included)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sbmoe.io.atomic import atomic_path, remove_stale, scratch_folder, write_json, write_text

# A process that starts writing ``sys.argv[1]``, says so, and waits for ``sys.argv[2]`` to appear.
WRITER = """
import sys, time
from pathlib import Path
from sbmoe.io.atomic import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_text("partial")
    print(tmp.parent, flush=True)
    while not Path(sys.argv[2]).exists():
        time.sleep(0.05)
"""


def _start_writer(output: Path, release: Path) -> tuple[subprocess.Popen, Path]:
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(output), str(release)], stdout=subprocess.PIPE, text=True
    )
    scratch = Path(process.stdout.readline().strip())
    assert scratch.is_dir() and scratch.parent == output.parent
    return process, scratch


def scratch_left(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.name.endswith((".tmp", ".new")))


def test_writes_all_or_nothing(tmp_path):
    out = tmp_path / "a" / "out.json"
    write_json(out, {"x": 1})
    assert out.read_text() == '{\n "x": 1\n}\n'
    with pytest.raises(RuntimeError):
        with atomic_path(out) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert out.read_text() == '{\n "x": 1\n}\n'
    with pytest.raises(FileNotFoundError, match="nothing was written"):
        with atomic_path(out):
            pass
    assert not scratch_left(tmp_path)


def test_a_folder_replaces_a_folder_and_its_scratch_holds_intermediate_files(tmp_path):
    out = tmp_path / "model"
    for version in ("1", "2"):
        with atomic_path(out) as tmp:
            (tmp.parent / "intermediate.bin").write_bytes(b"x")
            tmp.mkdir()
            (tmp / "weights").write_text(version)
    assert [p.name for p in out.iterdir()] == ["weights"] and (out / "weights").read_text() == "2"
    assert not scratch_left(tmp_path)


def test_the_scratch_of_a_killed_writer_goes_with_the_next_write(tmp_path):
    out = tmp_path / "run.trec"
    process, scratch = _start_writer(out, tmp_path / "never")
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert scratch.is_dir() and not out.exists()
    write_text(out, "whole\n")
    assert out.read_text() == "whole\n"
    assert not scratch_left(tmp_path)


def test_a_live_writer_keeps_its_scratch(tmp_path):
    out = tmp_path / "deep" / "er" / "run.trec"
    process, scratch = _start_writer(out, tmp_path / "release")
    assert remove_stale(tmp_path, recursive=True) == []
    with scratch_folder(out.parent / "other"):  # a scratch folder beside another output
        pass
    assert scratch.is_dir()
    (tmp_path / "release").touch()
    assert process.wait(timeout=60) == 0
    assert out.read_text() == "partial" and not scratch_left(tmp_path)


def test_remove_stale_finds_killed_writers_below_a_folder(tmp_path):
    scratches = []
    for name in ("a/x.npz", "b/c/y.npz"):
        process, scratch = _start_writer(tmp_path / name, tmp_path / "never")
        process.kill()
        process.wait()
        scratches.append(scratch)
    alive, live_scratch = _start_writer(tmp_path / "a" / "z.npz", tmp_path / "release")
    assert sorted(remove_stale(tmp_path, recursive=True)) == sorted(scratches)
    assert remove_stale(tmp_path / "a") == [] and live_scratch.is_dir()
    (tmp_path / "release").touch()
    alive.wait(timeout=60)
    assert not scratch_left(tmp_path)
    assert remove_stale(tmp_path / "missing") == []
