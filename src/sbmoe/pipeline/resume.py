"""Resuming a workflow that was killed: Snakemake's stale lock and the scratch folders of its jobs.

Snakemake marks a working folder as in use with files in ``.snakemake/locks/`` and removes them
when it exits; after ``kill -9`` or a power loss they stay, and every later run stops with
"Directory cannot be locked" until ``snakemake --unlock``. Those files do not say which process
wrote them, so Snakemake cannot tell a stale lock from a live one. :func:`claim_workdir`, run by
the workflow as it starts, can: a Snakemake run of this workflow holds an exclusive ``flock`` on
``.snakemake/sbmoe-running.lock`` for as long as it runs, and the kernel releases it when the
process dies, however it dies. A Snakemake that can take that lock is the only one running in the
folder: Snakemake's lock files are stale, and it removes them (with the copies of their scripts
that the killed run's jobs left in ``.snakemake/scripts/``), and the scratch folders that killed
jobs left in the output folders (:func:`sbmoe.io.atomic.remove_stale`).

A run keeps that lock exclusive for as long as it lives, with its process id and start time in the
file: a second run started in the folder is refused, naming the first, before Snakemake's own lock
check (which runs after the Snakefile is read, and would advise ``--unlock``: following that advice
while the first run lives starts a second run that re-runs the first one's jobs beside it). A dry run
changes nothing, so it may look at a folder where a run is working.
"""

from __future__ import annotations

import datetime
import fcntl
import os
import shutil
from pathlib import Path

from sbmoe.io.atomic import remove_stale

RUNNING = "sbmoe-running.lock"

_held: dict[Path, object] = {}  # this process's lock files by folder, open for as long as it runs


class WorkdirBusy(RuntimeError):
    """Another run of the workflow is alive in the working folder."""


def _holder(path: Path) -> str:
    """ "pid N, started at T" of the run that holds the lock file ``path`` (as it wrote it)."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    return text or "pid unknown"


# Snakemake options that only look at the workflow and its files (a dry run, graphs, summaries, lists)
LOOKING = {
    "-n",
    "--dry-run",
    "--dryrun",
    "--dag",
    "--rulegraph",
    "--filegraph",
    "--d3dag",
    "--summary",
    "-S",
    "--detailed-summary",
    "-D",
    "--list-rules",
    "--list",
    "-l",
    "--list-target-rules",
    "--lt",
    "--lint",
    "--list-changes",
    "--lc",
    "--list-input-changes",
    "--li",
    "--list-params-changes",
    "--lp",
    "--list-code-changes",
    "--list-untracked",
    "--lu",
}
LOOKING_SHORT = {"n", "S", "D", "l"}


def is_dry_run(argv: list[str]) -> bool:
    """Whether a Snakemake command line only looks (a dry run ``-n``, also among combined short flags
    such as ``-pn``; a graph, summary or list) and changes nothing; Snakemake says so only after the
    Snakefile is read."""
    for arg in argv[1:]:
        if arg.split("=", 1)[0] in LOOKING:
            return True
        if arg.startswith("-") and not arg.startswith("--") and arg[1:].isalpha() and LOOKING_SHORT & set(arg[1:]):
            return True
    return False


def claim_workdir(
    folder: str | os.PathLike = ".", outputs: tuple[str, ...] = ("results", "resources"), dry_run: bool = False
) -> list[str]:
    """Hold this process's lock on the working ``folder`` until it exits, and remove Snakemake's stale
    lock and the stale scratch folders under ``outputs``. Return what was done, one line each.

    When another run holds the folder, a run is refused with :class:`WorkdirBusy` naming it (its
    pid and start time); a ``dry_run`` (or another command that only looks, :func:`is_dry_run`)
    goes on without the lock and changes nothing. A file system
    without locks gives nothing: Snakemake's own locking then applies as it is."""
    state = Path(folder) / ".snakemake"
    if state.resolve() in _held:  # the Snakefile read again by the process that holds the folder
        return []
    state.mkdir(parents=True, exist_ok=True)
    handle = open(state / RUNNING, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        if dry_run:
            return []
        raise WorkdirBusy(
            f"another run ({_holder(state / RUNNING)}) is working in this folder ({Path(folder).resolve()}); "
            "wait for it to end, or stop it (Ctrl-C) and start again: it resumes where it stopped"
        ) from None
    except OSError:
        handle.close()
        return []
    if dry_run:  # nothing of the folder is the dry run's: a run may start beside it
        done = _remove_leftovers(state, Path(folder), outputs)
        handle.close()
        return done
    handle.truncate(0)
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    handle.write(f"pid {os.getpid()}, started at {started}\n")
    handle.flush()
    _held[state.resolve()] = handle
    return _remove_leftovers(state, Path(folder), outputs)


def _remove_leftovers(state: Path, folder: Path, outputs: tuple[str, ...]) -> list[str]:
    """Snakemake's lock files, its killed jobs' scripts and their scratch folders: stale, since no
    other run holds the folder."""
    done = []
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
        done.extend(f"removed {p}, left by a killed job" for p in remove_stale(folder / output, recursive=True))
    return done
