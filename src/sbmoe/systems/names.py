"""The names of the study's systems: ``finetune``, ``adapter-paper``, ``sbmoe-learned-e6``, ...

A name is its variant's name followed by what the variant's :attr:`~sbmoe.systems.registry.Variant.parts`
state (combination, ``e<experts>``, ``k<experts per token>``), all read from the registry
(:mod:`sbmoe.systems.registry`). A system may override training settings (:data:`OVERRIDES`); its name
then says so, e.g. ``finetune-elr2e-5`` is FT with an encoder learning rate of 2e-5. Kept free of
PyTorch so that the pipeline and the analysis can parse them cheaply.
"""

from __future__ import annotations

import re

from sbmoe.systems.registry import (
    COMBINATIONS,
    OVERRIDES,
    PARTS,
    VARIANTS,
    Variant,
    part_pattern,
    part_text,
    trained_variants,
    variant,
)

__all__ = [
    "BM25",
    "COMBINATIONS",
    "OVERRIDES",
    "format_rate",
    "parse_expert",
    "parse_system",
    "poolings",
    "study_systems",
    "system_name",
    "system_settings",
    "trained_system_pattern",
    "variant_of",
]

BM25 = "bm25"  # the lexical expert of routing over retrievers (not a system of the study)
_RATE = r"[0-9]+(?:\.[0-9]+)?e-?[0-9]+"
_OVERRIDE = re.compile(rf"(?P<base>.+)-(?P<tag>{'|'.join(OVERRIDES.values())})(?P<value>{_RATE})")
_SETTINGS = ("variant", "combination", "num_experts", "top_k")
_NEEDED = {"experts": "a list of expert counts"}  # what a required systems-entry key holds, for its error


def trained_system_pattern() -> str:
    """Every name :func:`system_name` makes for a trained variant, as a regular expression (Snakemake's
    wildcards), e.g. ``(?:finetune|adapter-(?:paper|learned)|...)(?:-elr<rate>)?(?:-mlr<rate>)?``."""
    bases = ["-".join([spec.name, *map(part_pattern, spec.parts)]) for spec in VARIANTS.values() if spec.trained]
    return f"(?:{'|'.join(bases)})" + "".join(f"(?:-{tag}{_RATE})?" for tag in OVERRIDES.values())


def format_rate(value: float) -> str:
    """A learning rate as names and labels show it: ``2e-5``, ``1.5e-4``."""
    mantissa, exponent = f"{float(value):e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def system_name(
    variant_name: str,
    combination: str = "paper",
    num_experts: int | None = None,
    top_k: int | None = None,
    overrides: dict[str, float] | None = None,
) -> str:
    """The name of a system in paths and tables: ``finetune``, ``adapter-paper``, ``sbmoe-learned-e6``,
    ``random-gate-e6``, ``regular-moe-e4-k2`` (``zeroshot`` names an untrained encoder), followed by
    its training overrides (``-elr2e-5``)."""
    spec = VARIANTS.get(variant_name)
    if spec is None:
        raise ValueError(f"variant must be one of {trained_variants()}, got {variant_name!r}")
    values = {"combination": combination, "num_experts": num_experts, "top_k": top_k}
    name = spec.name
    for part in spec.parts:
        setting = PARTS[part][0]
        if values[setting] is None:
            raise ValueError(
                f"variant {spec.name!r} needs " + ("a number of experts" if part == "experts" else setting)
            )
        if part == "combination" and combination not in COMBINATIONS:
            raise ValueError(f"combination must be one of {COMBINATIONS}, got {combination!r}")
        name += "-" + part_text(part, values[setting])
    for key in overrides or {}:
        if key not in spec.overrides:
            raise ValueError(f"a {spec.name} system may override {sorted(spec.overrides)}, not {key!r}")
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
    settings = {
        **_parse_base(base, system),
        "overrides": {key: overrides[key] for key in OVERRIDES if key in overrides},
    }
    spec = VARIANTS[settings["variant"]]
    if not spec.trained and overrides:
        raise ValueError(f"not a system name: {system!r} (an untrained encoder has no training settings)")
    try:
        name = system_name(
            spec.name,
            settings["combination"] or "paper",
            settings["num_experts"],
            settings["top_k"],
            settings["overrides"],
        )
    except ValueError as error:
        raise ValueError(f"not a system name: {system!r} ({error})") from None
    if name != system:
        raise ValueError(
            f"not a system name: {system!r} (overrides come in the order {list(OVERRIDES.values())}, "
            "learning rates written as 2e-5)"
        )
    return settings


def _parse_base(system: str, full: str) -> dict:
    """The settings a name states, tried against every variant, the longest variant names first."""
    for spec in sorted(VARIANTS.values(), key=lambda spec: -len(spec.name)):
        if system != spec.name and not system.startswith(spec.name + "-"):
            continue
        tokens = system[len(spec.name) + 1 :].split("-") if system != spec.name else []
        if len(tokens) != len(spec.parts):
            continue
        settings = {**dict.fromkeys(_SETTINGS), **spec.fixed, "variant": spec.name}
        for part, token in zip(spec.parts, tokens, strict=True):
            if not re.fullmatch(part_pattern(part), token):
                break
            settings[PARTS[part][0]] = token if PARTS[part][1] is None else int(token[1:])
        else:
            return settings
    examples = [system_name(spec.name, "paper", 6, 2) for spec in VARIANTS.values()]
    raise ValueError(f"not a system name: {full!r} (e.g. {', '.join(examples)}, finetune-elr2e-5)")


def variant_of(system: str) -> Variant:
    """The registry's entry for a system's variant."""
    return VARIANTS[system_settings(system)["variant"]]


def parse_system(system: str) -> dict:
    """The system's ``{"variant", "combination", "num_experts"}`` (see :func:`system_settings`)."""
    settings = system_settings(system)
    return {key: settings[key] for key in ("variant", "combination", "num_experts")}


def poolings(system: str) -> tuple[str, ...]:
    """The inference poolings a system is read with (its variant's): ``top1`` and ``all`` for SB-MoE,
    ``top1`` for the random gate, ``none`` for a model without a gate (the Regular MoE routes tokens,
    not texts)."""
    return variant_of(system).poolings


def parse_expert(name: str) -> tuple[str, str | None]:
    """``(system, pooling)`` of an expert of routing over retrievers: ``bm25`` → ``("bm25", None)``;
    ``zeroshot`` and ``finetune`` → pooling ``none``; ``sbmoe-learned-e6/top1`` →
    ``("sbmoe-learned-e6", "top1")``; a system named without its pooling is read with its first
    (``top1`` for SB-MoE)."""
    if name == BM25:
        return BM25, None
    system, _, pooling = name.partition("/")
    allowed = poolings(system)  # raises ValueError for an unknown system
    pooling = pooling or allowed[0]
    if pooling not in allowed:
        raise ValueError(f"expert {name!r}: system {system} is read with pooling {allowed}, not {pooling!r}")
    return system, pooling


def study_systems(entries: list[dict]) -> dict[str, dict]:
    """The systems of a study's ``systems`` entries, by name: ``{"index", "model": {...}, "training": {...}}``
    with the model settings (variant, and what the variant's registry entry takes: combination,
    num_experts, top_k, moe_layers, ...) and the training settings the entry overrides. A key the
    variant does not take, a missing required key, or a name given twice is an error naming the entry."""
    found: dict[str, dict] = {}
    for index, entry in enumerate(entries):
        spec = _entry_variant(entry, index)
        settings = {key: entry.get(key, default) for key, default in spec.keys.items()}
        overrides = {key: float(entry[key]) for key in OVERRIDES if key in entry}
        for experts in settings.get("experts") or [None]:
            model = {"variant": spec.name, **spec.fixed}
            for key, value in settings.items():
                if key == "experts":
                    model["num_experts"] = experts
                else:
                    model[key] = list(value) if isinstance(value, list) else value
            name = system_name(
                spec.name, model.get("combination", "paper"), model.get("num_experts"), model.get("top_k"), overrides
            )
            if name in found:
                raise ValueError(
                    f"systems[{index}]: system {name!r} is already listed (systems[{found[name]['index']}])"
                )
            found[name] = {"index": index, "model": model, "training": overrides}
    return found


def _entry_variant(entry: dict, index: int) -> Variant:
    """The registry entry of a ``systems`` entry, whose keys are checked against what it takes."""
    name = entry.get("variant")
    if name not in trained_variants():
        raise ValueError(
            f"systems[{index}].variant: {name!r} is not a variant a study trains ({list(trained_variants())})"
        )
    spec = variant(name)
    accepted = spec.accepted()
    for key in entry:
        if key not in accepted:
            raise ValueError(f"systems[{index}].{key}: variant {name!r} does not take {key!r} (it takes {accepted})")
    for key, default in spec.keys.items():
        if default is None and entry.get(key) in (None, []):
            needed = _NEEDED.get(key, f"key {key!r}")
            raise ValueError(f"systems[{index}].{key}: variant {name!r} needs {needed} (it takes {accepted})")
    return spec
