"""The study's variants, one entry each: everything the library asks of a variant is declared here.

A :class:`Variant` says how its systems are named (:attr:`Variant.parts`), which keys a ``systems``
entry of the configuration may set for it (:attr:`Variant.keys`, with their defaults) and which
training settings it may override, how its models are read at inference (:attr:`Variant.poolings`),
its label and place in tables, and which block of :mod:`sbmoe.models` builds it
(:attr:`Variant.block`, a ``"<module>:<builder>"`` name in that package, so that this layer stays free
of PyTorch). Names, the Snakemake wildcard pattern, labels, row order, the study's systems, model
building and the configuration checks all read :data:`VARIANTS`; a new variant is one entry
(:func:`register`) and, if it needs a new block, one module in :mod:`sbmoe.models`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

COMBINATIONS = ("paper", "learned")  # how a block's output joins the encoder's (sbmoe.models.moe)
POOLINGS = ("none", "top1", "all")  # inference poolings, in the order tables show them
# What a name may state after the variant's own name, as (setting, its prefix in names; a number follows it):
PARTS = {
    "combination": ("combination", None),  # written as is: sbmoe-learned-e6
    "experts": ("num_experts", "e"),  # the number of experts: ...-e6
    "top_k": ("top_k", "k"),  # experts per token: ...-k2
}
OVERRIDES = {"encoder_lr": "elr", "moe_lr": "mlr"}  # training settings a systems entry may override: their tag in names
_NAME = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")


@dataclass(frozen=True)
class Variant:
    """One variant of the study (METHOD.md), as the rest of the library asks about it."""

    name: str  # the name in configurations and the start of its systems' names
    label: str  # the label tables and figures show (SB-MoE's adds its pooling, see sbmoe.systems.labels)
    order: int  # rank in tables (for the same combination): Zero-shot, FT, Adapter, RANDOM-GATE, ...
    parts: tuple[str, ...] = ()  # what its systems' names state, in order (keys of PARTS)
    keys: Mapping[str, object] = field(default_factory=dict)  # systems-entry keys it takes -> default (None: required)
    overrides: tuple[str, ...] = tuple(OVERRIDES)  # training settings a systems entry may override
    poolings: tuple[str, ...] = ("none",)  # how its models are read at inference (``none``: no gate)
    block: str | None = None  # "<module>:<builder>" in sbmoe.models; None: the encoder alone
    fixed: Mapping[str, object] = field(default_factory=dict)  # settings its names imply without stating them
    inside_encoder: bool = False  # its block changes the encoder's layers (needs a trained encoder)
    trained: bool = True  # False for the untrained encoder (zeroshot): no systems entry, no training

    def __post_init__(self):
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"variant name {self.name!r}: lowercase words joined by '-' expected")
        unknown = [part for part in self.parts if part not in PARTS]
        if unknown:
            raise ValueError(f"variant {self.name!r}: unknown name part(s) {unknown} (known: {list(PARTS)})")
        missing = [part for part in self.parts if part not in self.keys]
        if missing:
            raise ValueError(f"variant {self.name!r}: its names state {missing}, so its entries must take them (keys)")
        bad = [pooling for pooling in self.poolings if pooling not in POOLINGS]
        if not self.poolings or bad:
            raise ValueError(f"variant {self.name!r}: poolings must be among {POOLINGS}, got {self.poolings}")
        object.__setattr__(self, "keys", MappingProxyType(dict(self.keys)))
        object.__setattr__(self, "fixed", MappingProxyType(dict(self.fixed)))

    @property
    def gated(self) -> bool:
        """Whether a gate routes each text to an expert (its encodings record the routing)."""
        return "none" not in self.poolings

    def accepted(self) -> list[str]:
        """The keys a ``systems`` entry of this variant may set, ``variant`` included."""
        return ["variant", *self.keys, *self.overrides]


_BLOCK_PAPER = {"combination": "paper"}
VARIANTS: dict[str, Variant] = {}


def register(variant: Variant) -> Variant:
    """Add ``variant`` to :data:`VARIANTS`; its name must be new."""
    if variant.name in VARIANTS:
        raise ValueError(f"variant {variant.name!r} is already registered")
    VARIANTS[variant.name] = variant
    return variant


def unregister(name: str) -> None:
    """Remove a variant added by :func:`register`."""
    del VARIANTS[name]


def variant(name: str) -> Variant:
    """The registered variant ``name``; an unknown name is an error listing the known ones."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown variant {name!r} (known: {list(VARIANTS)})") from None


def part_pattern(part: str) -> str:
    """How a name part (:data:`PARTS`) is written, as a regular expression."""
    prefix = PARTS[part][1]
    return "(?:" + "|".join(COMBINATIONS) + ")" if prefix is None else f"{prefix}[0-9]+"


def part_text(part: str, value) -> str:
    """A name part as names write it: ``learned``, ``e6``, ``k2``."""
    prefix = PARTS[part][1]
    return str(value) if prefix is None else f"{prefix}{int(value)}"


def trained_variants() -> tuple[str, ...]:
    """The names of the variants a study trains (every one but the untrained encoder)."""
    return tuple(name for name, spec in VARIANTS.items() if spec.trained)


register(Variant("zeroshot", "Zero-shot", 0, overrides=(), trained=False))
register(Variant("finetune", "FT", 1, overrides=("encoder_lr",)))
register(
    Variant(
        "adapter",
        "Adapter",
        2,
        parts=("combination",),
        keys=_BLOCK_PAPER,
        block="moe:adapter_block",
        fixed={"num_experts": 1},
    )
)
register(
    Variant(
        "random-gate",
        "RANDOM-GATE",
        3,
        parts=("experts",),
        keys={"experts": None},
        poolings=("top1",),
        block="moe:random_gate_block",
        fixed=_BLOCK_PAPER,
    )
)
register(
    Variant(
        "sbmoe",
        "SB-MoE",
        4,
        parts=("combination", "experts"),
        keys={**_BLOCK_PAPER, "experts": None},
        poolings=("top1", "all"),
        block="moe:learned_gate_block",
    )
)
register(
    Variant(
        "regular-moe",
        "Regular MoE",
        5,
        parts=("experts", "top_k"),
        keys={"experts": None, "top_k": 2, "moe_layers": [-1]},
        block="regular_moe:upcycled_block",
        inside_encoder=True,
    )
)
