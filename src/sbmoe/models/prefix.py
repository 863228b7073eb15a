"""Partial fine-tuning over a cached prefix.

With ``training.train_layers: N`` only the top ``N`` Transformer layers of the encoder are trained
(with the SB-MoE block, if any); the embeddings and the layers below, the *prefix*, keep their
pretrained weights. What the prefix computes for a text therefore never changes: it is computed
once, as the token-level hidden states entering layer ``depth = L - N`` (``L`` layers) at the
encoder's configured max lengths, and shared by every system of that encoder, the way a frozen
encoder's pooled embeddings are. Training, and encoding with a trained model, then run the top ``N``
layers on the cache, which gives the pooled embeddings of the full forward pass (the same
computation, up to rounding).

A cache of one set of texts (a dataset's queries, or a corpus shard) is a folder:

``tokens.npy``   float32 ``(tokens, h)``: every text's real tokens one after another (no padding)
``offsets.npy``  int64 ``(texts + 1,)``: text ``i`` is ``tokens[offsets[i]:offsets[i + 1]]``
``ids.npy``      the text ids, in the order of the dataset
``meta.json``    ``depth``, ``kind``, ``max_length``, ``hidden_size``, ``num_layers``, ``encoder``

It is written batch by batch into a memory map and read through one, a batch at a time, so memory
stays bounded whatever the corpus size.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.lib.format import open_memmap
from tqdm.auto import tqdm

from sbmoe.io.atomic import atomic_path, reserve_space
from sbmoe.models.encoder import Encoder

FILES = ("tokens.npy", "offsets.npy", "ids.npy", "meta.json")


def prefix_depth(train_layers: int | str, num_layers: int) -> int | None:
    """The first trained layer for ``training.train_layers``: ``None`` for ``"all"`` (the embeddings
    are trained too), ``num_layers`` for 0 (a frozen encoder), else ``num_layers - N``."""
    if train_layers == "all":
        return None
    if isinstance(train_layers, bool) or not isinstance(train_layers, int) or train_layers < 0:
        raise ValueError(f"training.train_layers must be 'all' or a number of layers >= 0, got {train_layers!r}")
    if train_layers > num_layers:
        raise ValueError(f"training.train_layers: {train_layers} layers asked, the encoder has {num_layers}")
    return num_layers - train_layers


@dataclass
class PrefixStates:
    """The hidden states of a set of texts entering layer ``depth`` of an encoder, unpadded."""

    ids: list[str]
    tokens: np.ndarray  # (tokens, h) float32, a read-only memory map when loaded from disk
    offsets: np.ndarray  # (texts + 1,) int64
    depth: int
    kind: str  # "query" or "doc"
    max_length: int
    meta: dict

    def __len__(self) -> int:
        return len(self.ids)

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def states(self, rows: Sequence[int]) -> list[torch.Tensor]:
        """The ``(tokens, h)`` states of the texts at ``rows`` (copied out of the memory map)."""
        return [torch.from_numpy(np.array(self.tokens[self.offsets[r] : self.offsets[r + 1]])) for r in rows]

    @classmethod
    def load(cls, folder: str | os.PathLike) -> PrefixStates:
        folder = Path(folder)
        missing = [name for name in FILES if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{folder}: not a prefix cache (missing {', '.join(missing)})")
        meta = json.loads((folder / "meta.json").read_text())
        offsets = np.load(folder / "offsets.npy")
        ids = [str(i) for i in np.load(folder / "ids.npy")]
        tokens = np.load(folder / "tokens.npy", mmap_mode="r")
        if len(offsets) != len(ids) + 1 or offsets[-1] != len(tokens):
            raise ValueError(f"{folder}: offsets.npy does not match ids.npy and tokens.npy")
        return cls(
            ids=ids,
            tokens=tokens,
            offsets=offsets,
            depth=int(meta["depth"]),
            kind=meta["kind"],
            max_length=int(meta["max_length"]),
            meta=meta,
        )


class PrefixCache:
    """Cached prefix states of one kind of text, looked up by id across parts (e.g. corpus shards)."""

    def __init__(self, parts: Sequence[PrefixStates]):
        if not parts:
            raise ValueError("a prefix cache needs at least one part")
        first = parts[0]
        for part in parts[1:]:
            if (part.depth, part.kind, part.max_length) != (first.depth, first.kind, first.max_length):
                raise ValueError(
                    f"prefix cache parts disagree: depth/kind/max length {part.depth}/{part.kind}/{part.max_length} "
                    f"against {first.depth}/{first.kind}/{first.max_length}"
                )
        self.parts = list(parts)
        self.depth, self.kind, self.max_length = first.depth, first.kind, first.max_length
        self.rows = {text_id: (p, row) for p, part in enumerate(self.parts) for row, text_id in enumerate(part.ids)}

    def states(self, ids: Sequence[str]) -> list[torch.Tensor]:
        try:
            found = [self.rows[i] for i in ids]
        except KeyError as missing:
            raise KeyError(f"{self.kind} {missing} is not in the cached prefix states") from None
        return [self.parts[p].states([row])[0] for p, row in found]


def pad(states: Sequence[torch.Tensor], device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad ``(tokens, h)`` states into ``(n, longest, h)`` hidden states and their attention mask."""
    longest = max(len(s) for s in states)
    hidden = torch.zeros(len(states), longest, states[0].shape[-1], dtype=states[0].dtype)
    mask = torch.zeros(len(states), longest, dtype=torch.long)
    for row, state in enumerate(states):
        hidden[row, : len(state)] = state
        mask[row, : len(state)] = 1
    return hidden.to(device), mask.to(device)


def check_fits(encoder: Encoder, depth: int, kind: str, max_length: int, source: str) -> None:
    """Refuse a cache made at another max length than ``encoder`` uses, or deeper than it has layers."""
    if max_length != encoder.max_length(kind):
        raise ValueError(
            f"{source}: cached at max length {max_length}, the encoder uses {encoder.max_length(kind)} for {kind}s"
        )
    if not 0 <= depth <= encoder.num_layers:
        raise ValueError(f"{source}: cached at layer {depth}, the encoder has {encoder.num_layers} layers")


@torch.no_grad()
def compute_prefix(
    encoder: Encoder,
    ids: list[str],
    texts: list[str],
    kind: str,
    depth: int,
    output: str | os.PathLike | None = None,
    batch_size: int = 64,
    progress: bool = True,
) -> PrefixStates:
    """Run the prefix (embeddings and layers below ``depth``) over ``texts`` once, in eval mode and
    in batches of similar length; written to the folder ``output`` (atomically) or kept in memory."""
    if len(ids) != len(texts):
        raise ValueError(f"{len(ids)} ids but {len(texts)} texts")
    if not 0 <= depth < encoder.num_layers:
        raise ValueError(
            f"a prefix ends below a trained layer: depth must be in [0, {encoder.num_layers}), got {depth}"
        )
    counts = np.asarray(encoder.token_counts(texts, kind), dtype=np.int64)
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(counts)
    meta = {
        "depth": depth,
        "kind": kind,
        "max_length": encoder.max_length(kind),
        "hidden_size": encoder.hidden_size,
        "num_layers": encoder.num_layers,
        "encoder": encoder.config.name_or_path,
    }

    def fill(tokens: np.ndarray) -> None:
        was_training = encoder.training
        encoder.eval()
        order = np.argsort(-counts, kind="stable")
        for start in tqdm(range(0, len(texts), batch_size), desc=f"prefix {kind}s", disable=not progress, unit="batch"):
            index = order[start : start + batch_size]
            batch = encoder.tokenize([texts[i] for i in index], kind)
            hidden = encoder.prefix(batch["input_ids"], batch["attention_mask"], depth, batch.get("token_type_ids"))
            real = batch["attention_mask"].bool().cpu()
            hidden = hidden.float().cpu()
            for row, i in enumerate(index):
                state = hidden[row][real[row]]
                if len(state) != counts[i]:
                    raise RuntimeError(f"text {ids[i]!r}: {len(state)} tokens in its batch, {counts[i]} counted")
                tokens[offsets[i] : offsets[i + 1]] = state.numpy()
        encoder.train(was_training)

    if output is None:
        tokens = np.empty((int(offsets[-1]), encoder.hidden_size), dtype=np.float32)
        fill(tokens)
        return PrefixStates(
            ids=list(ids),
            tokens=tokens,
            offsets=offsets,
            depth=depth,
            kind=kind,
            max_length=meta["max_length"],
            meta=meta,
        )
    with atomic_path(output) as tmp:
        tmp.mkdir()
        tokens = open_memmap(
            tmp / "tokens.npy", mode="w+", dtype=np.float32, shape=(int(offsets[-1]), encoder.hidden_size)
        )
        reserve_space(tmp / "tokens.npy", (tmp / "tokens.npy").stat().st_size)  # not a Bus error when the disk fills
        fill(tokens)
        tokens.flush()
        del tokens
        np.save(tmp / "offsets.npy", offsets)
        np.save(tmp / "ids.npy", np.asarray(ids, dtype=str))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return PrefixStates.load(output)


@torch.no_grad()
def pool_prefix(encoder: Encoder, prefix: PrefixStates, batch_size: int = 64, progress: bool = True) -> torch.Tensor:
    """Pooled embeddings (in the cache's order, on the CPU) of the cached texts: the encoder's layers
    from ``prefix.depth`` up run over the cache in eval mode, in batches of similar length."""
    check_fits(encoder, prefix.depth, prefix.kind, prefix.max_length, f"prefix cache ({len(prefix)} {prefix.kind}s)")
    was_training = encoder.training
    encoder.eval()
    order = np.argsort(-prefix.lengths(), kind="stable")
    pooled = torch.empty(len(prefix), encoder.hidden_size)
    for start in tqdm(
        range(0, len(prefix), batch_size), desc=f"encode cached {prefix.kind}s", disable=not progress, unit="batch"
    ):
        index = order[start : start + batch_size]
        hidden, mask = pad(prefix.states(index), encoder.device)
        pooled[torch.from_numpy(index)] = encoder.top(hidden, mask, prefix.depth).float().cpu()
    encoder.train(was_training)
    return pooled
