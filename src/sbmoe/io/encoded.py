"""Encoded texts: the ``.npz`` of embeddings that encoding writes and search reads, with the expert each
text was routed to and the gate's weights (``experts`` is -1 and ``gate`` has no columns without a gate)."""

from __future__ import annotations

import os
import re
import struct
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sbmoe.io.atomic import atomic_path
from sbmoe.io.errors import DataFormatError, first_line

ENCODED_ARRAYS = ("ids", "embeddings", "experts", "gate")
_NOT_AN_ID = re.compile(r"^$|\s")  # ids are written to whitespace-separated TREC run files


@dataclass
class Encoded:
    """Embeddings of a list of texts and how each was routed (``experts`` is -1 without a gate)."""

    embeddings: np.ndarray
    experts: np.ndarray
    gate: np.ndarray
    ids: list[str] = field(default_factory=list)

    def save(self, path: str | os.PathLike) -> None:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(
                    handle,
                    ids=np.asarray(self.ids, dtype=str),
                    embeddings=self.embeddings.astype(np.float32),
                    experts=self.experts.astype(np.int64),
                    gate=self.gate.astype(np.float32),
                )

    @classmethod
    def load(cls, path: str | os.PathLike) -> Encoded:
        """Read an ``.npz`` written by :meth:`save`. A file that is missing, unreadable or truncated,
        lacks an array, or whose arrays disagree (a number of ids other than of embeddings, ids twice,
        values that are not finite) is a :class:`DataFormatError` naming it."""
        path = Path(path)
        if not path.is_file():
            raise DataFormatError(
                path, None, f"missing encoded-texts file (expected an .npz with {', '.join(ENCODED_ARRAYS)})"
            )
        with open(path, "rb") as handle:
            magic = handle.read(6)
        if magic == b"\x93NUMPY":
            raise DataFormatError(path, None, f"a single array (.npy), not an .npz with {', '.join(ENCODED_ARRAYS)}")
        if not zipfile.is_zipfile(path):
            raise DataFormatError(
                path,
                None,
                f"not an .npz archive (truncated, or another format?); expected {', '.join(ENCODED_ARRAYS)} arrays",
            )
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [name for name in ENCODED_ARRAYS if name not in data.files]
                if missing:
                    raise DataFormatError(
                        path, None, f"has no {', '.join(missing)} array (expected {', '.join(ENCODED_ARRAYS)})"
                    )
                arrays = {name: data[name] for name in ENCODED_ARRAYS}
        except DataFormatError:
            raise
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
            raise DataFormatError(
                path, None, f"not a readable .npz of encoded texts (truncated or corrupt?): {first_line(error)}"
            ) from None
        return cls._checked(path, **arrays)

    @classmethod
    def _checked(
        cls, path: Path, ids: np.ndarray, embeddings: np.ndarray, experts: np.ndarray, gate: np.ndarray
    ) -> Encoded:
        def fail(message: str):
            raise DataFormatError(path, None, message)

        if ids.ndim != 1 or ids.dtype.kind != "U":
            fail(f"'ids' must be a 1-D array of strings, got {ids.dtype} of shape {ids.shape}")
        if embeddings.ndim != 2 or embeddings.dtype.kind != "f":
            fail(
                f"'embeddings' must be a 2-D float array (texts x dimensions), "
                f"got {embeddings.dtype} of shape {embeddings.shape}"
            )
        if experts.ndim != 1 or experts.dtype.kind not in "iu":
            fail(f"'experts' must be a 1-D integer array, got {experts.dtype} of shape {experts.shape}")
        if gate.ndim != 2 or gate.dtype.kind != "f":
            fail(f"'gate' must be a 2-D float array (texts x experts), got {gate.dtype} of shape {gate.shape}")
        rows = {"ids": len(ids), "embeddings": len(embeddings), "experts": len(experts), "gate": len(gate)}
        if len(set(rows.values())) != 1:
            fail(
                "its arrays describe different numbers of texts ("
                + ", ".join(f"{k}: {v}" for k, v in rows.items())
                + ")"
            )
        ids = ids.tolist()
        if any(map(_NOT_AN_ID.search, ids)):
            fail(f"ids must be non-empty and without whitespace, got {next(i for i in ids if _NOT_AN_ID.search(i))!r}")
        if len(set(ids)) != len(ids):
            fail(f"id {next(i for i, n in Counter(ids).items() if n > 1)!r} appears twice")
        if not np.isfinite(embeddings).all():
            fail(
                f"embeddings of {int((~np.isfinite(embeddings)).any(axis=1).sum())} texts "
                "are not finite (NaN or infinite)"
            )
        low, high = (0, gate.shape[1] - 1) if gate.shape[1] else (-1, -1)  # -1: no gate
        if len(experts) and (experts.min() < low or experts.max() > high):
            fail(f"'experts' holds indices outside [{low}, {high}] (the gate has {gate.shape[1]} columns)")
        return cls(embeddings=embeddings, experts=experts, gate=gate, ids=ids)

    @classmethod
    def concatenate(cls, parts: list[Encoded]) -> Encoded:
        return cls(
            embeddings=np.concatenate([p.embeddings for p in parts]),
            experts=np.concatenate([p.experts for p in parts]),
            gate=np.concatenate([p.gate for p in parts]),
            ids=[i for p in parts for i in p.ids],
        )


def mapped_array(path: str | os.PathLike, name: str) -> np.ndarray | None:
    """The ``name`` array of an ``.npz`` memory-mapped, so that reading a few rows of a large corpus's
    embeddings does not read them all; None when the archive compresses that array (no mapping possible).

    An ``.npz`` is a zip archive of ``.npy`` files: for a stored (uncompressed) member the array's bytes
    sit in the file at the member's offset, after the zip local header and the ``.npy`` header."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{name}.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            return None
        with archive.open(info) as member:
            version = np.lib.format.read_magic(member)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran_order, dtype = reader(member)
            array_offset = member.tell()
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        local_header = handle.read(30)  # the zip local file header: fixed 30 bytes, then name and extra field
    name_length, extra_length = struct.unpack("<HH", local_header[26:30])
    offset = info.header_offset + 30 + name_length + extra_length + array_offset
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran_order else "C")
