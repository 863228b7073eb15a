"""claim_workdir: a stale Snakemake lock and killed jobs' scratch folders are removed when no other
run is alive in the folder, and left alone while one is; a second run is then refused, naming the
first, and a dry run may look on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from sbmoe.pipeline.resume import is_dry_run

# Claim the folder sys.argv[1] (for a dry run when sys.argv[3] is "dry"), print what was done or
# the refusal, and hold the claim until sys.argv[2] appears.
CLAIM = """
import json, sys, time
from pathlib import Path
from sbmoe.pipeline.resume import WorkdirBusy, claim_workdir
try:
    print(json.dumps(claim_workdir(sys.argv[1], dry_run=sys.argv[3:] == ["dry"])), flush=True)
except WorkdirBusy as error:
    print(json.dumps(str(error)), flush=True)
    sys.exit(3)
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


def claim(folder: Path, release: Path, dry: bool = False) -> tuple[subprocess.Popen, list[str] | str]:
    """A process that claims ``folder`` until ``release`` appears; what it did, or its refusal."""
    argv = [sys.executable, "-c", CLAIM, str(folder), str(release), *(["dry"] if dry else [])]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    return process, json.loads(process.stdout.readline())


def killed_job_scratch(output: Path) -> Path:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(output)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
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


def test_while_another_run_is_alive_it_leaves_everything_and_a_second_run_is_refused(tmp_path):
    first, done = claim(tmp_path, tmp_path / "release")
    assert done == []  # nothing to clean
    locks = stale_snakemake_lock(tmp_path)  # as the live run's Snakemake writes them
    scratch = killed_job_scratch(tmp_path / "results" / "x.json")
    second, refusal = claim(tmp_path, tmp_path / "release")
    assert second.wait(timeout=60) == 3
    assert refusal.startswith(f"another run (pid {first.pid}, started at ") and "is working in this folder" in refusal
    assert "--unlock" not in refusal
    # a dry run changes nothing: it looks on without the claim, and a third run is refused as well
    dry, done = claim(tmp_path, tmp_path / "release", dry=True)
    assert done == [] and (locks / "0.output.lock").exists() and scratch.exists()
    assert (tmp_path / ".snakemake" / "scripts" / "tmpa1b2c3.train.py").exists()
    third, refusal = claim(tmp_path, tmp_path / "release")
    assert third.wait(timeout=60) == 3 and f"pid {first.pid}," in refusal
    (tmp_path / "release").touch()
    assert first.wait(timeout=60) == 0 and dry.wait(timeout=60) == 0
    (tmp_path / "release").unlink()
    fourth, done = claim(tmp_path, tmp_path / "release")
    assert len(done) == 3 and not locks.exists() and not scratch.exists()
    (tmp_path / "release").touch()
    assert fourth.wait(timeout=60) == 0


def test_a_dry_run_alone_cleans_up_and_leaves_the_folder_free(tmp_path):
    locks = stale_snakemake_lock(tmp_path)
    dry, done = claim(tmp_path, tmp_path / "release", dry=True)
    assert len(done) == 2 and not locks.exists()
    run, done = claim(tmp_path, tmp_path / "release")  # while the dry run is still alive
    assert done == []
    (tmp_path / "release").touch()
    assert dry.wait(timeout=60) == 0 and run.wait(timeout=60) == 0


def test_dry_run_command_lines():
    for argv in (
        ["snakemake", "-n"],
        ["snakemake", "--dry-run", "x"],
        ["snakemake", "-pn"],
        ["s", "--dryrun"],
        ["snakemake", "--dag"],
        ["snakemake", "--summary"],
        ["snakemake", "--lint=json"],
        ["snakemake", "-l"],
    ):
        assert is_dry_run(argv), argv
    for argv in (
        ["snakemake", "--cores", "all"],
        ["snakemake", "-c4"],
        ["snakemake", "--configfile", "n"],
        ["snakemake"],
        ["snakemake", "--unlock"],
        ["snakemake", "-p"],
        ["snakemake", "--report", "r.html"],
    ):
        assert not is_dry_run(argv), argv
