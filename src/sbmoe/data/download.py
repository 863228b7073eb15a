"""Fetch and unpack the archives that ir_datasets does not provide, verifiably.

:func:`download` streams a URL to ``<dest>.part``, resumes an interrupted ``.part`` with an HTTP
Range request, checks the SHA-256 digest and only then renames the file into place.
:func:`extract_zip` unpacks an archive into a folder that appears only once every member has been
checked and written.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

from tqdm import tqdm

from sbmoe.io.atomic import DiskFullError, atomic_path

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20


class DownloadError(RuntimeError):
    """A download that failed: HTTP error status, network error, truncated transfer."""


class ChecksumError(DownloadError):
    """A downloaded file whose SHA-256 digest is not the pinned one."""


class ArchiveError(RuntimeError):
    """An archive that cannot be read: truncated, corrupt or not an archive at all."""


def sha256_file(path: str | os.PathLike) -> str:
    """The hex SHA-256 digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(path: Path, dest: Path, sha256: str | None) -> str:
    """Digest of ``path``; when it differs from ``sha256``, delete ``path`` and raise."""
    actual = sha256_file(path)
    if sha256 is not None and actual != sha256.lower():
        path.unlink()
        raise ChecksumError(
            f"{dest}: sha256 mismatch (expected {sha256.lower()}, got {actual}); the download was deleted"
        )
    return actual


def _open(url: str, offset: int, timeout: float):
    """Open ``url``, asking for the bytes from ``offset`` on when ``offset`` > 0."""
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as error:
        error.close()
        raise DownloadError(f"{url}: HTTP status {error.code} ({error.reason})") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(f"{url}: cannot connect ({reason})") from error


def download(url: str, dest: str | os.PathLike, sha256: str | None = None, timeout: float = 60.0) -> str:
    """Download ``url`` to ``dest`` and return the file's SHA-256 digest.

    Bytes go to ``dest + ".part"``. A ``.part`` left by an interrupted run is resumed with a Range
    request when the server answers 206 (Partial Content); a 200 answer starts over. The file is
    renamed onto ``dest`` only when it is complete and, if ``sha256`` is given, matches it.
    An existing ``dest`` that matches (or when no digest is pinned) is kept and not fetched again.

    Raises :class:`DownloadError` for an HTTP error status or a network error (naming the URL), or
    for a transfer shorter than its Content-Length (naming the file; the ``.part`` is kept so that
    the next call resumes it), and :class:`ChecksumError` for a digest mismatch (naming the file;
    the partial download is deleted).
    """
    dest = Path(dest)
    if dest.is_file():
        try:
            return _verify(dest, dest, sha256)
        except ChecksumError:
            log.warning("%s does not match its pinned sha256; downloading it again", dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    with _open(url, offset, timeout) as response:
        if response.status != 206:
            offset = 0
        length = response.headers.get("Content-Length")
        expected = offset + int(length) if length is not None else None
        interrupted = False
        with (
            part.open("ab" if offset else "wb") as out,
            tqdm(
                total=expected, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name
            ) as progress,
        ):
            try:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    progress.update(len(chunk))
            except http.client.IncompleteRead as error:
                out.write(error.partial)
                interrupted = True
            except OSError as error:
                if error.errno == errno.ENOSPC:  # the disk, not the connection: resuming would not help
                    raise DiskFullError(part, expected) from None
                interrupted = True
    received = part.stat().st_size
    if interrupted or (expected is not None and received < expected):
        raise DownloadError(
            f"{dest}: download truncated, {received} of {expected or 'unknown'} bytes received from {url}; "
            f"{part.name} is kept and the next run resumes it"
        )
    digest = _verify(part, dest, sha256)
    os.replace(part, dest)
    return digest


def extract_zip(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Unpack the zip ``archive`` into the folder ``dest``, all or nothing.

    Members are written to a temporary folder, which is renamed onto ``dest`` only when every member
    has been read back whole with a matching CRC; a truncated or corrupt archive raises
    :class:`ArchiveError` naming it, and leaves no ``dest`` (nor temporary folder) behind.
    """
    archive, dest = Path(archive), Path(dest)
    try:
        with zipfile.ZipFile(archive) as bundle, atomic_path(dest) as tmp:
            tmp.mkdir()
            bundle.extractall(tmp)
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise ArchiveError(f"{archive}: not a readable zip archive, truncated or corrupt ({error})") from None
    return dest
