"""System names: the Regular MoE's, training overrides in names, parsing them back, the labels and
row order the tables use, and a study's systems expanded from its configuration entries."""

from __future__ import annotations

import re

import pytest

from sbmoe.systems.labels import display_label, system_order
from sbmoe.systems.names import (
    format_rate,
    parse_system,
    poolings,
    study_systems,
    system_name,
    system_settings,
    trained_system_pattern,
)


def test_format_rate():
    assert [format_rate(v) for v in (1e-6, 2e-5, 1.5e-4, 0.01, 3.0)] == ["1e-6", "2e-5", "1.5e-4", "1e-2", "3e0"]


@pytest.mark.parametrize(
    "name,settings",
    [
        ("finetune", {"variant": "finetune", "combination": None, "num_experts": None, "top_k": None, "overrides": {}}),
        (
            "finetune-elr2e-5",
            {
                "variant": "finetune",
                "combination": None,
                "num_experts": None,
                "top_k": None,
                "overrides": {"encoder_lr": 2e-5},
            },
        ),
        (
            "sbmoe-learned-e6-elr1e-5-mlr1e-3",
            {
                "variant": "sbmoe",
                "combination": "learned",
                "num_experts": 6,
                "top_k": None,
                "overrides": {"encoder_lr": 1e-5, "moe_lr": 1e-3},
            },
        ),
        (
            "regular-moe-e4-k2",
            {"variant": "regular-moe", "combination": None, "num_experts": 4, "top_k": 2, "overrides": {}},
        ),
        (
            "random-gate-e3-mlr1.5e-4",
            {
                "variant": "random-gate",
                "combination": "paper",
                "num_experts": 3,
                "top_k": None,
                "overrides": {"moe_lr": 1.5e-4},
            },
        ),
    ],
)
def test_names_round_trip(name, settings):
    assert system_settings(name) == settings
    assert parse_system(name) == {key: settings[key] for key in ("variant", "combination", "num_experts")}
    assert (
        system_name(
            settings["variant"],
            settings["combination"] or "paper",
            settings["num_experts"],
            settings["top_k"],
            settings["overrides"],
        )
        == name
    )
    assert re.fullmatch(trained_system_pattern(), name)


@pytest.mark.parametrize(
    "name",
    [
        "finetune-mlr1e-4-elr2e-5",
        "finetune-elr2e-5-elr1e-5",
        "regular-moe-e4",
        "finetune-lr2e-5",
        "sbmoe-paper-e6-elr0.00002",
    ],
)
def test_names_that_are_not_systems(name):
    with pytest.raises(ValueError, match="not a system name"):
        system_settings(name)


def test_names_need_their_settings():
    with pytest.raises(ValueError, match="top_k"):
        system_name("regular-moe", num_experts=4)
    with pytest.raises(ValueError, match="override"):
        system_name("finetune", overrides={"epochs": 3})
    assert poolings("regular-moe-e4-k2") == ("none",) and poolings("sbmoe-paper-e6-elr2e-5") == ("top1", "all")


def test_labels_and_order():
    assert display_label("regular-moe-e4-k2") == "Regular MoE E=4 k=2"
    assert display_label("finetune-elr2e-5") == "FT (encoder lr 2e-5)"
    assert display_label("sbmoe-learned-e6-mlr1e-3", "all") == "SB-MoE ALL E=6 (learned gate) (MoE lr 1e-3)"
    names = [
        ("regular-moe-e4-k2", "none"),
        ("finetune-elr2e-5", "none"),
        ("sbmoe-paper-e6", "top1"),
        ("finetune", "none"),
        ("zeroshot", "none"),
        ("adapter-paper", "none"),
    ]
    ordered = [name for name, _ in sorted(names, key=lambda pair: system_order(*pair))]
    assert ordered == [
        "zeroshot",
        "finetune",
        "finetune-elr2e-5",
        "adapter-paper",
        "sbmoe-paper-e6",
        "regular-moe-e4-k2",
    ]


def test_study_systems_expand_the_entries():
    systems = study_systems(
        [
            {"variant": "finetune"},
            {"variant": "finetune", "encoder_lr": 2e-5},
            {"variant": "sbmoe", "combination": "learned", "experts": [3, 6]},
            {"variant": "regular-moe", "experts": [4], "moe_layers": [-2, -1]},
        ]
    )
    assert list(systems) == [
        "finetune",
        "finetune-elr2e-5",
        "sbmoe-learned-e3",
        "sbmoe-learned-e6",
        "regular-moe-e4-k2",
    ]
    assert systems["finetune-elr2e-5"]["training"] == {"encoder_lr": 2e-5}
    assert systems["regular-moe-e4-k2"]["model"] == {
        "variant": "regular-moe",
        "num_experts": 4,
        "top_k": 2,
        "moe_layers": [-2, -1],
    }
    assert systems["sbmoe-learned-e6"]["model"] == {"variant": "sbmoe", "combination": "learned", "num_experts": 6}
    with pytest.raises(ValueError, match=r"systems\[1\].*already listed \(systems\[0\]\)"):
        study_systems([{"variant": "finetune"}, {"variant": "finetune"}])
