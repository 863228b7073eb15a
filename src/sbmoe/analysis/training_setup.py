"""How the study trained, set beside the authors' settings: the report's sentence on training says
what this configuration did and where it departs from the paper (``\\TrainingSetup`` of macros.tex).

The authors' settings are those of ``../shared/docs/METHOD.md`` (§3): AdamW, encoder learning rate
1e-6, experts and gate 1e-4, batch size 64, 30 epochs for TinyBERT and 20 for the other encoders,
every layer trained, the last epoch kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def _rate(value: float) -> str:
    """A learning rate as the paper writes it: ``2e-5``, ``1e-4``, ``2.5e-5``."""
    mantissa, exponent = f"{value:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def _either(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _layers(value: int | str) -> str:
    if value == "all":
        return "every layer of the encoder trained"
    if value == 0:
        return "the encoder frozen, the blocks trained on its pooled embeddings"
    return "the top layer of the encoder trained" if value == 1 else f"the top {value} layers of the encoder trained"


def authors_epochs(encoder: str) -> int:
    """The authors' epochs for an encoder (its ``name_or_path``): 30 for TinyBERT, 20 for the others."""
    return 30 if "tinybert" in encoder.lower() else 20


# Each setting the sentence states, in its order: how a value reads in it, the authors' value
# (epochs: a function of the encoder) and how the text names the authors' value.
_SENTENCE = {
    "encoder_lr": (lambda v: f"encoder learning rate {v}", _rate, 1e-6, "1e-6"),
    "moe_lr": (lambda v: f"experts and gate {v}", _rate, 1e-4, "1e-4"),
    "batch_size": (lambda v: f"batch size {v}", str, 64, "64"),
    "epochs": (lambda v: f"{v} epochs", str, authors_epochs, "30 for TinyBERT, 20 for the others"),
    "train_layers": (lambda v: v, _layers, "all", "every layer"),
}
STATED = (*_SENTENCE, "patience")  # the keys of a setting (with the encoder's name_or_path)


def _values(settings: Sequence[Mapping], key: str) -> list[str]:
    read = _SENTENCE[key][1]
    return list(dict.fromkeys(read(setting[key]) for setting in settings))


def _is_authors(setting: Mapping, key: str) -> bool:
    authors = _SENTENCE[key][2]
    return setting[key] == (authors(setting["encoder"]) if callable(authors) else authors)


def _part(settings: Sequence[Mapping], key: str) -> str:
    says, _, _, authors_text = _SENTENCE[key]
    text = says(_either(_values(settings, key)))
    if key == "epochs" and any(setting["patience"] for setting in settings):
        text = f"at most {text}"
    if all(_is_authors(setting, key) for setting in settings):
        return f"{text} (as the authors)"
    return f"{text} (the authors': {authors_text})"


def training_setup(settings: Sequence[Mapping]) -> str:
    """The sentence's body for the distinct ``settings`` of the study's trained models (dicts of
    :data:`STATED` and the ``encoder``'s ``name_or_path``), e.g. ``encoder learning rate 2e-5
    (the authors': 1e-6); ...``; ``--`` if none."""
    if not settings:
        return "--"
    frozen = all(setting["train_layers"] == 0 for setting in settings)
    keys = [key for key in _SENTENCE if not (frozen and key == "encoder_lr")]  # a frozen encoder has no rate
    parts = [_part(settings, key) for key in keys]
    patience = list(dict.fromkeys(setting["patience"] for setting in settings))
    if patience == [0]:
        stop = "every epoch run"
    else:
        stop = f"training stopped after {_either([str(p) for p in patience])} epochs without improvement"
    parts.append(f"{stop}, and the checkpoint of the best validation loss kept (the authors keep the last epoch's)")
    return "; ".join(parts)
