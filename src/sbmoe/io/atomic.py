"""Write files so that a crash never leaves a half-written output behind, nor, for long, its scratch.

Work happens in a scratch folder ``.<name>.<random>.tmp`` beside the output. Its creator holds a
``flock`` on the ``.lock`` file inside for as long as it uses the folder; the kernel releases that
lock when the process dies, however it dies (``kill -9`` included), so a scratch folder whose lock
is free belongs to nobody: the next :func:`scratch_folder` beside the same output, and
:func:`remove_stale` (which the workflow runs on start), delete it. Outputs are flushed to disk
(``fsync``) before they are renamed into place, so a power loss never leaves part of an output:
the old one, the whole new one, or (while a folder is replaced) none.

A full disk is named: a write that fails for lack of space raises :class:`DiskFullError` with the
output's path, and :func:`reserve_space` allocates a file's blocks before it is filled through a
memory map (where a full disk is otherwise a ``Bus error`` that kills the process without a word).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

SUFFIX = ".tmp"
LOCK = ".lock"


class DiskFullError(OSError):
    """No space left on the device while writing ``path``: the message names it, with the bytes
    needed (where known) and those free."""

    def __init__(self, path: str | os.PathLike, needed: int | None = None):
        path = Path(path)
        free = _free_bytes(path)
        need = f"{needed:,} bytes needed, " if needed is not None else ""
        super().__init__(
            errno.ENOSPC,
            f"{path}: no space left on device ({need}{free} free there); "
            "free some space or point the output elsewhere, then run again",
        )
        self.path, self.needed = str(path), needed

    def __str__(self) -> str:
        return self.strerror


def _free_bytes(path: Path) -> str:
    for folder in (path, *path.parents):
        if folder.exists():
            return f"{shutil.disk_usage(folder).free:,} bytes"
    return "unknown bytes"


def reserve_space(path: str | os.PathLike, size: int) -> None:
    """Allocate the first ``size`` bytes of the existing file ``path`` on disk now: a memory map
    written on a full disk dies with ``Bus error``; this fails first, with :class:`DiskFullError`.
    Where the file system cannot allocate ahead, its free space is compared with ``size``."""
    path = Path(path)
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise DiskFullError(path, size) from None
        if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
        if shutil.disk_usage(path.parent).free < size - os.fstat(fd).st_blocks * 512:
            raise DiskFullError(path, size) from None
    finally:
        os.close(fd)


def _held_by_nobody(folder: Path) -> bool:
    try:
        fd = os.open(folder / LOCK, os.O_WRONLY)  # never created here: its creator may be removing it
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def remove_stale(folder: str | os.PathLike, prefix: str = ".", recursive: bool = False) -> list[Path]:
    """Delete the scratch folders named ``<prefix>*.tmp`` in ``folder`` (and below it when
    ``recursive``) whose creator is gone; return them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    candidates = folder.rglob(f"{prefix}*{SUFFIX}") if recursive else folder.glob(f"{prefix}*{SUFFIX}")
    removed = []
    for candidate in list(candidates):
        if candidate.is_dir() and not candidate.is_symlink() and _held_by_nobody(candidate):
            shutil.rmtree(candidate, ignore_errors=True)
            removed.append(candidate)
    return removed


@contextlib.contextmanager
def scratch_folder(path: str | os.PathLike) -> Iterator[Path]:
    """A new, empty folder beside ``path`` for the work of writing it; removed when the block ends
    and, if the process is killed in the block, by the next call for the same ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent, prefix=f".{path.name}.")
    # created under another suffix, and renamed once locked, so that no one sees it unlocked
    new = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent))
    handle = open(new / LOCK, "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        folder = new.with_suffix(SUFFIX)
        os.rename(new, folder)
    except BaseException:
        handle.close()
        shutil.rmtree(new, ignore_errors=True)
        raise
    try:
        yield folder
    finally:
        handle.close()  # before removing: a network file system cannot remove an open file
        shutil.rmtree(folder, ignore_errors=True)


def _fsync(path: Path) -> None:
    """Flush the file or folder ``path`` (its entries, not what is in them) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    """Flush ``path``, a file or a folder and everything in it, to disk."""
    for item in [*sorted(path.rglob("*"), reverse=True), path] if path.is_dir() else [path]:
        if not item.is_symlink():
            _fsync(item)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    Works for files and for directories (whatever the block creates at the temporary path). The
    folder holding the temporary path is the block's own (a :func:`scratch_folder`): intermediate
    files may go there too, and are removed with it.
    """
    path = Path(path)
    with scratch_folder(path) as folder:
        target = folder / path.name
        try:
            yield target
            if not target.exists():
                raise FileNotFoundError(f"nothing was written to {target} for {path}")
            _fsync_tree(target)
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            os.replace(target, path)
            _fsync(path.parent)
        except OSError as error:  # "[Errno 28] No space left on device" says not where
            if error.errno != errno.ENOSPC:
                raise
            if isinstance(error, DiskFullError) and Path(error.path).is_relative_to(target):
                # named by the output's path, not the scratch folder's, which is gone once this ends
                raise DiskFullError(path / Path(error.path).relative_to(target), error.needed) from error
            if isinstance(error, DiskFullError):
                raise
            raise DiskFullError(path) from error


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj, indent: int | None = 1) -> None:
    write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")
