"""The registry's blocks by name: :attr:`sbmoe.systems.registry.Variant.block` to the builder it names.

A block is named ``"<module>:<builder>"``, a function of a module of this package that takes the
:class:`~sbmoe.models.retriever.Retriever` being built and returns the block that follows its encoder
(``None`` when the block changes the encoder itself, as the Regular MoE does). The registry names
blocks by these strings so that it needs no PyTorch; a new block is a new module here, found by its
name without any table to edit (as transformers' auto classes find a model's module by its type).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from torch import nn

PACKAGE = "sbmoe.models"


def block_builder(name: str) -> Callable[..., nn.Module | None]:
    """The builder a block name refers to; a name naming no builder is an error that says so."""
    module, _, attribute = name.partition(":")
    if not module.isidentifier() or not attribute.isidentifier():
        raise ValueError(f"block {name!r}: expected '<module>:<builder>' naming a function of a module of {PACKAGE}")
    try:
        found = importlib.import_module(f"{PACKAGE}.{module}")  # a block module is loaded when a variant asks for it
    except ModuleNotFoundError as error:
        raise ValueError(f"block {name!r}: no module {PACKAGE}.{module} ({error})") from None
    builder = getattr(found, attribute, None)
    if builder is None:
        raise ValueError(f"block {name!r}: module {PACKAGE}.{module} has no function {attribute!r}")
    if not callable(builder):
        raise TypeError(f"block {name!r}: {PACKAGE}.{module}.{attribute} is not a function")
    return builder
