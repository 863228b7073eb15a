"""Encoder names: which the Hugging Face hub serves, and reading them without PyTorch."""

import subprocess
import sys

from sbmoe.models.hub import EMBEDDED_MODEL, TINY_RANDOM_MODEL, is_hub_id


def test_hub_ids_are_what_is_downloaded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "mine").mkdir(parents=True)
    assert is_hub_id("bert-base-uncased") and is_hub_id("facebook/contriever")
    assert not is_hub_id("models/mine")  # a relative folder that exists is loaded from disk
    for local in (EMBEDDED_MODEL, TINY_RANDOM_MODEL, str(tmp_path), "./models/mine", "~/models"):
        assert not is_hub_id(local), local


def test_checking_a_study_imports_no_torch():
    """The workflow reads the configuration with these modules before every job; PyTorch would add
    seconds to each."""
    code = (
        "import sys, sbmoe.models.hub, sbmoe.pipeline.study, sbmoe.data.datasets, sbmoe.systems.names; "
        "print('torch' in sys.modules)"
    )
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip() == "False"
