"""One process at a time in numba's on-disk cache.

ranx compiles its kernels with numba's ``cache=True``, one specialisation per document-id string
width, and writes each to numba's cache the first time a process meets that width. numba does not
coordinate processes that compile into the same cache at once (numba issue #10128), and the
pipeline runs several evaluations at once, on a cluster over a shared file system. So every use
of ranx holds :func:`cache_lock`, an exclusive ``flock`` on a file in the folder numba caches
ranx in: a process that compiles does so alone, and one that loads never reads a half-updated
index. ``flock`` is released by the kernel when its holder dies, even by ``kill -9``, and works
across machines on NFS (Linux maps it to NFS byte-range locks). A file system without locks is
an error that says to use a local ``NUMBA_CACHE_DIR``.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
import os
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = "sbmoe-numba.lock"

log = logging.getLogger(__name__)


class CacheLockError(RuntimeError):
    """numba's cache folder cannot be locked."""


def cache_folder(package: str = "ranx") -> Path:
    """The folder numba caches ``package``'s compiled functions in, found in numba's own order:
    ``NUMBA_CACHE_DIR`` when set, else the package's ``__pycache__`` when the package folder is
    writable, else numba's user-wide cache."""
    from numba.core import config

    if config.CACHE_DIR:
        return Path(config.CACHE_DIR)
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"no module named {package!r}")
    source = Path(spec.origin).parent
    if os.access(source, os.W_OK):
        return source / "__pycache__"
    from numba.misc.appdirs import AppDirs

    return Path(AppDirs(appname="numba", appauthor=False).user_cache_dir)


@contextlib.contextmanager
def cache_lock(package: str = "ranx") -> Iterator[Path]:
    """Hold the exclusive lock on ``package``'s numba cache within the block; yield the lock file."""
    folder = cache_folder(package)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    with open(path, "a", encoding="utf-8") as handle:
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("waiting for %s: another process is using numba's cache", path)
                fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError as error:
            raise CacheLockError(
                f"cannot lock {path} ({error.strerror or error}): the file system of numba's cache does not "
                "support file locks; set NUMBA_CACHE_DIR to a folder on a local disk"
            ) from error
        try:
            yield path
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
