"""The report's sentence on training: what each configuration trains with, beside the authors'
settings (METHOD.md §3), from the study's design."""

import pytest

from sbmoe.analysis.paper import paper_macros
from sbmoe.analysis.training_setup import training_setup
from test_design import study_of

TINYBERT = "huawei-noah/TinyBERT_General_4L_312D"
MINILM = "embedded:all-MiniLM-L6-v2"


def setting(**changes):
    return {
        "encoder_lr": 1e-6,
        "moe_lr": 1e-4,
        "batch_size": 64,
        "epochs": 20,
        "train_layers": "all",
        "patience": 0,
        "encoder": "google-bert/bert-base-uncased",
        **changes,
    }


def test_the_authors_settings_read_as_theirs():
    text = training_setup([setting(), setting(encoder=TINYBERT, epochs=30)])
    assert text.startswith("encoder learning rate 1e-6 (as the authors); experts and gate 1e-4 (as the authors)")
    assert "30 or 20 epochs" not in text and "20 or 30 epochs (as the authors)" in text
    assert "every layer of the encoder trained (as the authors)" in text
    assert "the authors'" not in text.replace("the authors keep the last epoch's", "")


def test_each_departure_names_the_authors_value():
    text = training_setup([setting(encoder_lr=2e-5, epochs=6, train_layers=1, encoder=MINILM)])
    assert "encoder learning rate 2e-5 (the authors': 1e-6)" in text
    assert "6 epochs (the authors': 30 for TinyBERT, 20 for the others)" in text
    assert "the top layer of the encoder trained (the authors': every layer)" in text
    assert "batch size 64 (as the authors)" in text
    # TinyBERT at 20 epochs is not the authors' 30
    assert "(the authors': 30 for TinyBERT" in training_setup([setting(encoder=TINYBERT)])


def test_a_frozen_encoder_states_no_encoder_rate_and_early_stopping_is_said():
    text = training_setup([setting(train_layers=0, patience=5)])
    assert "encoder learning rate" not in text
    assert "the encoder frozen" in text
    assert "training stopped after 5 epochs without improvement" in text
    assert "; at most 20 epochs (as the authors);" in text
    assert training_setup([]) == "--"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("config.yaml", [(1e-6, 30, "all"), (1e-6, 20, "all")]),
        ("config/demo.yaml", [(1e-6, 20, 0)]),
        ("config/cpu-study.yaml", [(2e-5, 6, 1)]),
    ],
)
def test_each_study_states_the_settings_its_models_train_with(name, expected):
    settings = study_of(name).training_settings()  # one per encoder at least
    assert list(dict.fromkeys((s["encoder_lr"], s["epochs"], s["train_layers"]) for s in settings)) == expected
    assert all(s["batch_size"] == 64 and s["moe_lr"] == 1e-4 for s in settings)


def test_a_system_override_is_a_setting_of_its_own():
    study = study_of("config/cpu-study.yaml")
    study.config["systems"].append({"variant": "finetune", "encoder_lr": 1e-6})
    changed = type(study)(study.config, study.datasets)
    rates = [s["encoder_lr"] for s in changed.training_settings()]
    assert rates == [2e-5, 1e-6]
    assert "encoder learning rate 2e-5 or 1e-6 (the authors': 1e-6)" in training_setup(changed.training_settings())


def test_the_macro_escapes_the_sentence_for_latex():
    values = paper_macros(metrics=["ndcg@10"], training=[setting(encoder_lr=2e-5)])
    assert values["TrainingSetup"].startswith("encoder learning rate 2e-5 (the authors': 1e-6)")
