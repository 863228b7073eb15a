"""The names of the study's systems: ``finetune``, ``adapter-paper``, ``sbmoe-learned-e6``, ...

A system may override training settings (:data:`OVERRIDES`); its name then says so, e.g.
``finetune-elr2e-5`` is FT with an encoder learning rate of 2e-5. Kept free of PyTorch so that the
pipeline and the analysis can parse them cheaply.
"""

from __future__ import annotations

import re

VARIANTS = ("finetune", "sbmoe", "random-gate", "adapter", "regular-moe")
COMBINATIONS = ("paper", "learned")
OVERRIDES = {"encoder_lr": "elr", "moe_lr": "mlr"}  # training settings a system may override: their tag in names
_RATE = r"[0-9]+(?:\.[0-9]+)?e-?[0-9]+"
_OVERRIDE = re.compile(rf"(?P<base>.+)-(?P<tag>elr|mlr)(?P<value>{_RATE})")
TRAINED_SYSTEM_PATTERN = (  # every name system_name makes, as a regular expression (Snakemake's wildcards)
    "(?:finetune|adapter-(?:paper|learned)|sbmoe-(?:paper|learned)-e[0-9]+|random-gate-e[0-9]+|regular-moe-e[0-9]+-k[0-9]+)"
    f"(?:-elr{_RATE})?(?:-mlr{_RATE})?"
)


def format_rate(value: float) -> str:
    """A learning rate as names and labels show it: ``2e-5``, ``1.5e-4``."""
    mantissa, exponent = f"{float(value):e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def system_name(variant: str, combination: str = "paper", num_experts: int | None = None, top_k: int | None = None,
                overrides: dict[str, float] | None = None) -> str:
    """The name of a system in paths and tables: ``finetune``, ``adapter-paper``, ``sbmoe-learned-e6``,
    ``random-gate-e6``, ``regular-moe-e4-k2`` (``zeroshot`` names an untrained encoder), followed by
    its training overrides (``-elr2e-5``)."""
    if variant == "finetune":
        name = "finetune"
    elif variant == "adapter":
        name = f"adapter-{combination}"
    elif variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    elif num_experts is None:
        raise ValueError(f"variant {variant!r} needs a number of experts")
    elif variant == "random-gate":
        name = f"random-gate-e{num_experts}"
    elif variant == "sbmoe":
        name = f"sbmoe-{combination}-e{num_experts}"
    else:
        if top_k is None:
            raise ValueError("variant 'regular-moe' needs top_k")
        name = f"regular-moe-e{num_experts}-k{top_k}"
    for key, value in (overrides or {}).items():
        if key not in OVERRIDES:
            raise ValueError(f"a system may override {sorted(OVERRIDES)}, not {key!r}")
    for key, tag in OVERRIDES.items():
        if key in (overrides or {}):
            name += f"-{tag}{format_rate(overrides[key])}"
    return name


def system_settings(system: str) -> dict:
    """Invert :func:`system_name`: ``{"variant", "combination", "num_experts", "top_k", "overrides"}``."""
    overrides = {}
    tags = {tag: key for key, tag in OVERRIDES.items()}
    base = system
    while (match := _OVERRIDE.fullmatch(base)) and tags[match["tag"]] not in overrides:
        overrides[tags[match["tag"]]] = float(match["value"])
        base = match["base"]
    settings = {**_parse_base(base, system), "overrides": {key: overrides[key] for key in OVERRIDES if key in overrides}}
    if settings["variant"] == "zeroshot":
        if overrides:
            raise ValueError(f"not a system name: {system!r} (an untrained encoder has no training settings)")
        return settings
    if system_name(settings["variant"], settings["combination"] or "paper", settings["num_experts"], settings["top_k"],
                   settings["overrides"]) != system:
        raise ValueError(f"not a system name: {system!r} (overrides come in the order {list(OVERRIDES.values())}, "
                         "learning rates written as 2e-5)")
    return settings


def _parse_base(system: str, full: str) -> dict:
    parsed = {"variant": None, "combination": None, "num_experts": None, "top_k": None}
    if system in ("finetune", "zeroshot"):
        return {**parsed, "variant": system}
    parts = system.split("-")
    try:
        if parts[0] == "adapter" and len(parts) == 2 and parts[1] in COMBINATIONS:
            return {**parsed, "variant": "adapter", "combination": parts[1], "num_experts": 1}
        if system.startswith("random-gate-e") and len(parts) == 3:
            return {**parsed, "variant": "random-gate", "combination": "paper", "num_experts": int(parts[2][1:])}
        if parts[0] == "sbmoe" and len(parts) == 3 and parts[1] in COMBINATIONS and parts[2][0] == "e":
            return {**parsed, "variant": "sbmoe", "combination": parts[1], "num_experts": int(parts[2][1:])}
        if system.startswith("regular-moe-e") and len(parts) == 4 and parts[3][0] == "k":
            return {**parsed, "variant": "regular-moe", "num_experts": int(parts[2][1:]), "top_k": int(parts[3][1:])}
    except ValueError:
        pass
    raise ValueError(
        f"not a system name: {full!r} (e.g. finetune, adapter-paper, sbmoe-paper-e6, random-gate-e6, "
        "regular-moe-e4-k2, finetune-elr2e-5)"
    )


def parse_system(system: str) -> dict:
    """The system's ``{"variant", "combination", "num_experts"}`` (see :func:`system_settings`)."""
    settings = system_settings(system)
    return {key: settings[key] for key in ("variant", "combination", "num_experts")}


def poolings(system: str) -> tuple[str, ...]:
    """The inference poolings a system is read with: ``top1`` and ``all`` for SB-MoE, ``top1`` for the
    random gate, ``none`` for a model without a gate (the Regular MoE routes tokens, not texts)."""
    variant = parse_system(system)["variant"]
    if variant == "sbmoe":
        return ("top1", "all")
    if variant == "random-gate":
        return ("top1",)
    return ("none",)


def study_systems(entries: list[dict]) -> dict[str, dict]:
    """The systems of a study's ``systems`` entries, by name: ``{"model": {...}, "training": {...}}``
    with the model settings (variant, combination, num_experts, top_k, moe_layers) and the training
    settings the entry overrides. A name given twice is an error naming the entries."""
    found: dict[str, dict] = {}
    for index, entry in enumerate(entries):
        variant = entry["variant"]
        overrides = {key: float(entry[key]) for key in OVERRIDES if key in entry}
        for experts in entry.get("experts") or [None]:
            top_k = entry.get("top_k", 2) if variant == "regular-moe" else None
            name = system_name(variant, entry.get("combination", "paper"), experts, top_k, overrides)
            if name in found:
                raise ValueError(f"systems[{index}]: system {name!r} is already listed (systems[{found[name]['index']}])")
            model = {"variant": variant}
            if variant in ("sbmoe", "random-gate", "adapter"):
                model["combination"] = entry.get("combination", "paper")
            if experts is not None:
                model["num_experts"] = experts
            if variant == "regular-moe":
                model["top_k"] = top_k
                model["moe_layers"] = list(entry.get("moe_layers", [-1]))
            found[name] = {"index": index, "model": model, "training": overrides}
    return found
