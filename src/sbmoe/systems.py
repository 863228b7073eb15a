"""The names of the study's systems: ``finetune``, ``adapter-paper``, ``sbmoe-learned-e6``, ...

Kept free of PyTorch so that the pipeline and the analysis can parse them cheaply.
"""

from __future__ import annotations

VARIANTS = ("finetune", "sbmoe", "random-gate", "adapter")
COMBINATIONS = ("paper", "learned")


def system_name(variant: str, combination: str = "paper", num_experts: int | None = None) -> str:
    """The name of a system in paths and tables: ``finetune``, ``adapter-paper``, ``sbmoe-learned-e6``,
    ``random-gate-e6`` (``zeroshot`` names an untrained encoder)."""
    if variant == "finetune":
        return "finetune"
    if variant == "adapter":
        return f"adapter-{combination}"
    if num_experts is None:
        raise ValueError(f"variant {variant!r} needs a number of experts")
    if variant == "random-gate":
        return f"random-gate-e{num_experts}"
    if variant == "sbmoe":
        return f"sbmoe-{combination}-e{num_experts}"
    raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


def parse_system(system: str) -> dict:
    """Invert :func:`system_name`: ``{"variant", "combination", "num_experts"}``."""
    if system in ("finetune", "zeroshot"):
        return {"variant": system, "combination": None, "num_experts": None}
    parts = system.split("-")
    try:
        if parts[0] == "adapter" and len(parts) == 2 and parts[1] in COMBINATIONS:
            return {"variant": "adapter", "combination": parts[1], "num_experts": 1}
        if system.startswith("random-gate-e") and len(parts) == 3:
            return {"variant": "random-gate", "combination": "paper", "num_experts": int(parts[2][1:])}
        if parts[0] == "sbmoe" and len(parts) == 3 and parts[1] in COMBINATIONS and parts[2][0] == "e":
            return {"variant": "sbmoe", "combination": parts[1], "num_experts": int(parts[2][1:])}
    except ValueError:
        pass
    raise ValueError(f"not a system name: {system!r} (e.g. finetune, adapter-paper, sbmoe-paper-e6, random-gate-e6)")


def poolings(system: str) -> tuple[str, ...]:
    """The inference poolings a system is read with: ``top1`` and ``all`` for SB-MoE, ``top1`` for the
    random gate, ``none`` for a model without a gate."""
    variant = parse_system(system)["variant"]
    if variant == "sbmoe":
        return ("top1", "all")
    if variant == "random-gate":
        return ("top1",)
    return ("none",)
