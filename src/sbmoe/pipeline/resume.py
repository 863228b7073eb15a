"""Resuming a workflow that was killed: Snakemake's stale lock and the scratch folders of its jobs.

Snakemake marks a working folder as in use with files in ``.snakemake/locks/`` and removes them
when it exits; after ``kill -9`` or a power loss they stay, and every later run stops with
"Directory cannot be locked" until ``snakemake --unlock``. Those files do not say which process
wrote them, so Snakemake cannot tell a stale lock from a live one. :func:`claim_workdir`, run by
the workflow as it starts, can: every Snakemake of this workflow holds a shared ``flock`` on
``.snakemake/sbmoe-running.lock`` for as long as it runs, and the kernel releases it when the
process dies, however it dies. A Snakemake that can take that lock exclusively is the only one
running in the folder: Snakemake's lock files are stale, and it removes them (with the copies of
their scripts that the killed run's jobs left in ``.snakemake/scripts/``), and the scratch folders
that killed jobs left in the output folders (:func:`sbmoe.io.atomic.remove_stale`).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

from sbmoe.io.atomic import remove_stale

RUNNING = "sbmoe-running.lock"

_held = []  # the lock files of this process, open for as long as it runs


def claim_workdir(folder: str | os.PathLike = ".", outputs: tuple[str, ...] = ("results", "resources")) -> list[str]:
    """Hold this process's shared lock on the working ``folder`` until it exits. When no other
    process holds it, remove Snakemake's stale lock and the stale scratch folders under ``outputs``.
    Return what was done, one line each (nothing when another run is alive, or the file system
    has no locks: Snakemake's own locking then applies as it is)."""
    state = Path(folder) / ".snakemake"
    state.mkdir(parents=True, exist_ok=True)
    handle = open(state / RUNNING, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        alone = True
    except BlockingIOError:
        alone = False
    except OSError:
        handle.close()
        return []
    done = []
    if alone:
        locks = state / "locks"
        if locks.is_dir() and any(locks.iterdir()):
            shutil.rmtree(locks)
            done.append(f"removed the stale lock {locks} of a Snakemake run that was killed")
            scripts = sorted((state / "scripts").glob("tmp*"))  # its jobs' copies of their scripts
            for script in scripts:
                script.unlink()
            if scripts:
                done.append(f"removed its jobs' scripts from {state / 'scripts'} ({len(scripts)})")
        for output in outputs:
            done.extend(f"removed {p}, left by a killed job" for p in remove_stale(Path(folder) / output, recursive=True))
    fcntl.flock(handle, fcntl.LOCK_SH)
    _held.append(handle)
    return done
