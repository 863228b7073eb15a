"""Encoder names: the two models that need no hub, and which names the Hugging Face hub serves.

This module imports no PyTorch, so that reading a configuration (the workflow does it before every
job, on every cluster node) stays quick.
"""

from __future__ import annotations

from pathlib import Path

EMBEDDED_MODEL = "embedded:all-MiniLM-L6-v2"
TINY_RANDOM_MODEL = "random:tiny-bert"  # 2 layers, h=32, seeded random weights, MiniLM's tokenizer: for tests and CI


def is_hub_id(name_or_path: str) -> bool:
    """Whether loading ``name_or_path`` fetches the model from the Hugging Face hub: neither the
    embedded nor the tiny random model, nor a local folder."""
    if name_or_path in (EMBEDDED_MODEL, TINY_RANDOM_MODEL) or name_or_path.startswith((".", "/", "~")):
        return False
    return not Path(name_or_path).is_dir()
