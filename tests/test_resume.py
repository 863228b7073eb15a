"""claim_workdir: a stale Snakemake lock and killed jobs' scratch folders are removed when no other
run is alive in the folder, and left alone while one is."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

# Claim the folder sys.argv[1], print what was done, and hold the claim until sys.argv[2] appears.
CLAIM = """
import json, sys, time
from pathlib import Path
from sbmoe.pipeline.resume import claim_workdir
print(json.dumps(claim_workdir(sys.argv[1])), flush=True)
while not Path(sys.argv[2]).exists():
    time.sleep(0.05)
"""
WRITER = """
import sys
from sbmoe.io.atomic import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    print(tmp.parent, flush=True)
    sys.stdin.read()
"""


def claim(folder: Path, release: Path) -> tuple[subprocess.Popen, list[str]]:
    process = subprocess.Popen([sys.executable, "-c", CLAIM, str(folder), str(release)], stdout=subprocess.PIPE, text=True)
    return process, json.loads(process.stdout.readline())


def killed_job_scratch(output: Path) -> Path:
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(output)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    scratch = Path(writer.stdout.readline().strip())
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    return scratch


def stale_snakemake_lock(folder: Path) -> Path:
    """Snakemake's lock files, and the copy of a job's script that it removes when the job ends."""
    locks = folder / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.output.lock").write_text(f"{folder / 'results' / 'x'}\n")
    scripts = folder / ".snakemake" / "scripts"
    scripts.mkdir(exist_ok=True)
    (scripts / "tmpa1b2c3.train.py").write_text("print()\n")
    return locks


def test_alone_it_removes_the_stale_lock_and_scratch(tmp_path):
    locks = stale_snakemake_lock(tmp_path)
    scratch = killed_job_scratch(tmp_path / "results" / "models" / "m" / "train_log.jsonl")
    dataset = killed_job_scratch(tmp_path / "resources" / "datasets" / "cranfield")
    process, done = claim(tmp_path, tmp_path / "go")
    (tmp_path / "go").touch()
    assert process.wait(timeout=60) == 0
    assert done[0] == f"removed the stale lock {locks} of a Snakemake run that was killed"
    assert done[1] == f"removed its jobs' scripts from {tmp_path / '.snakemake' / 'scripts'} (1)"
    assert sorted(done[2:]) == sorted(f"removed {p}, left by a killed job" for p in (scratch, dataset))
    assert not locks.exists() and not scratch.exists() and not dataset.exists()
    assert not any((tmp_path / ".snakemake" / "scripts").iterdir())


def test_while_another_run_is_alive_it_leaves_everything(tmp_path):
    first, done = claim(tmp_path, tmp_path / "release")
    assert done == []  # nothing to clean
    locks = stale_snakemake_lock(tmp_path)  # as the live run's Snakemake writes them
    scratch = killed_job_scratch(tmp_path / "results" / "x.json")
    second, done = claim(tmp_path, tmp_path / "release")
    assert done == [] and (locks / "0.output.lock").exists() and scratch.exists()
    assert (tmp_path / ".snakemake" / "scripts" / "tmpa1b2c3.train.py").exists()
    # two runs hold the folder: a third finds it busy until both have ended
    third, done = claim(tmp_path, tmp_path / "release")
    assert done == [] and locks.exists()
    (tmp_path / "release").touch()
    assert first.wait(timeout=60) == 0 and second.wait(timeout=60) == 0 and third.wait(timeout=60) == 0
    fourth, done = claim(tmp_path, tmp_path / "release")
    assert fourth.wait(timeout=60) == 0 and len(done) == 3 and not locks.exists() and not scratch.exists()
