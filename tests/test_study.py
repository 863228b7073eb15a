"""The study checks of sbmoe.pipeline.study on a small hand-written study: a valid one passes, and
each malformed key is refused with a message that starts with that key."""

import copy
from pathlib import Path

import pytest

from sbmoe.pipeline.study import StudyError, check_study, routing_split, routing_trainsets, study_table

TABLE = """\
datasets:
  alpha:
    splits:
      train: {ir_datasets: alpha/train}
      dev: {ir_datasets: alpha/dev}
      test: {ir_datasets: alpha/test}
    relevance_threshold: 1
    drop_self_hits: false
  beta:
    splits:
      test: {ir_datasets: beta/test}
    relevance_threshold: 2
    drop_self_hits: true
  gamma:
    splits:
      test: {ir_datasets: gamma/test}
    relevance_threshold: 1
    drop_self_hits: false
  delta:
    splits:
      train: {url: "https://example.org/delta-train.zip", sha256: null, format: beir}
      test: {ir_datasets: delta/test}
    relevance_threshold: 1
    drop_self_hits: false
"""


@pytest.fixture
def study(tmp_path, monkeypatch) -> dict:
    """A study that passes every check: alpha trains, alpha and beta test in domain, gamma zero-shot."""
    monkeypatch.delenv("SBMOE_DATASET_MIRROR", raising=False)
    table = tmp_path / "datasets.yaml"
    table.write_text(TABLE)
    return {
        "encoders": {"base": {"name_or_path": "bert-base-uncased"}},
        "training": {"train_layers": "all"},
        "systems": [
            {"variant": "finetune"},
            {"variant": "sbmoe", "combination": "learned", "experts": [3]},
            {"variant": "regular-moe", "experts": [4], "top_k": 2, "moe_layers": [-1]},
        ],
        "seeds": [1, 2],
        "datasets": {"table": str(table), "mirror": "", "offline": False},
        "in_domain": {"alpha": ["alpha", "beta"]},
        "zero_shot": {"alpha": ["gamma"]},
        "evaluation": {"metrics": ["ndcg@10", "recall@100"]},
        "encoding": {"corpus_shards": {"default": 1, "beta": 2}},
        "analysis": {
            "tsne": {
                "encoder": "base",
                "trainset": "alpha",
                "testset": "gamma",
                "system": "sbmoe-learned-e3",
                "pooling": "all",
                "seed": 2,
            },
            "curves": "alpha",
        },
        "routing": {
            "encoder": "base",
            "seed": 1,
            "experts": ["bm25", "zeroshot", "sbmoe-learned-e3/top1"],
            "router": {"features": ["length", "bm25"]},
            "splits": {"alpha": "dev"},
        },
    }


def checked(config: dict, resources: Path | str = "resources/datasets") -> None:
    check_study(config, study_table(config), resources)


def test_a_valid_study_passes(study):
    table = study_table(study)
    assert sorted(table) == ["alpha", "beta", "delta", "gamma"]
    assert table["beta"].relevance_threshold == 2 and table["beta"].drop_self_hits
    assert check_study(study, table) is None


def test_routing_split_and_trainsets(study):
    assert routing_split(study, "alpha") == "dev" and routing_split(study, "beta") == "valid"
    assert routing_trainsets(study) == ["alpha"]  # every training set when routing.trainsets is not given
    study["in_domain"]["delta"] = ["delta"]
    study["routing"]["trainsets"] = ["delta"]
    assert routing_trainsets(study) == ["delta"]
    assert routing_split({"in_domain": {}}, "alpha") == "valid"


def system(index):
    return lambda c: c["systems"][index]


CASES = {
    # datasets of the study
    "in-domain-unknown-trainset": (
        lambda c: c.update(in_domain={"omega": ["alpha"]}),
        "in_domain.omega",
        "unknown dataset 'omega'",
    ),
    "in-domain-trainset-without-train": (
        lambda c: c.update(in_domain={"beta": ["beta"]}),
        "in_domain.beta",
        "dataset 'beta' has no 'train' split",
    ),
    "in-domain-unknown-testset": (
        lambda c: c["in_domain"]["alpha"].append("omega"),
        "in_domain.alpha",
        "unknown dataset 'omega' (the dataset table lists",
    ),
    "zero-shot-untrained": (
        lambda c: c.update(zero_shot={"beta": ["gamma"]}),
        "zero_shot.beta",
        "not a training set of in_domain (['alpha'])",
    ),
    "zero-shot-unknown-testset": (
        lambda c: c["zero_shot"]["alpha"].append("omega"),
        "zero_shot.alpha",
        "unknown dataset 'omega'",
    ),
    "encoder-missing-folder": (
        lambda c: c["encoders"]["base"].update(name_or_path="./no/such/encoder"),
        "encoders.base.name_or_path",
        "'./no/such/encoder': local encoder folder does not exist",
    ),
    "corpus-shards": (
        lambda c: c["encoding"]["corpus_shards"].update(delta=3),
        "encoding.corpus_shards.delta",
        "not a dataset of the study",
    ),
    "metric-cutoff": (
        lambda c: c["evaluation"].update(metrics=["ndcg@10", "ndcg@0"]),
        "evaluation.metrics[1]",
        "the cutoff after '@' must be a positive integer",
    ),
    # systems
    "sbmoe-without-experts": (
        lambda c: system(1)(c).pop("experts"),
        "systems[1].experts",
        "variant 'sbmoe' needs a list of expert counts",
    ),
    "finetune-with-experts": (
        lambda c: system(0)(c).update(experts=[2]),
        "systems[0].experts",
        "variant 'finetune' does not take 'experts' (it takes ['variant', 'encoder_lr'])",
    ),
    "top-k-outside-regular-moe": (
        lambda c: system(1)(c).update(top_k=1),
        "systems[1].top_k",
        "variant 'sbmoe' does not take 'top_k' (it takes ['variant', 'combination', 'experts', 'encoder_lr', "
        "'moe_lr'])",
    ),
    "regular-moe-frozen-encoder": (
        lambda c: c["training"].update(train_layers=0),
        "systems[2]",
        "needs training.train_layers >= 1",
    ),
    "regular-moe-top-k": (
        lambda c: system(2)(c).update(top_k=5),
        "systems[2].top_k",
        "between 1 and the number of experts (4)",
    ),
    "regular-moe-untrained-layer": (
        lambda c: (c["training"].update(train_layers=2), system(2)(c).update(moe_layers=[-3])),
        "systems[2].moe_layers",
        "layer -3 is not among the top 2 trained layers",
    ),
    "no-finetune": (lambda c: c["systems"].pop(0), "systems", "no {variant: finetune} is listed"),
    # analysis
    "tsne-encoder": (
        lambda c: c["analysis"]["tsne"].update(encoder="large"),
        "analysis.tsne.encoder",
        "unknown encoder 'large' (the study's: ['base'])",
    ),
    "tsne-trainset": (
        lambda c: c["analysis"]["tsne"].update(trainset="beta"),
        "analysis.tsne.trainset",
        "'beta' is not a training set of in_domain",
    ),
    "tsne-system": (
        lambda c: c["analysis"]["tsne"].update(system="sbmoe-learned-e6"),
        "analysis.tsne.system",
        "'sbmoe-learned-e6' is not one of the study's systems",
    ),
    "tsne-pooling": (
        lambda c: c["analysis"]["tsne"].update(system="finetune"),
        "analysis.tsne.pooling",
        "'finetune' is read with ['none'], not 'all'",
    ),
    "tsne-seed": (lambda c: c["analysis"]["tsne"].update(seed=7), "analysis.tsne.seed", "7 is not one of seeds [1, 2]"),
    "curves": (
        lambda c: c["analysis"].update(curves="gamma"),
        "analysis.curves",
        "'gamma' is not a training set of in_domain",
    ),
    # routing
    "routing-encoder": (lambda c: c["routing"].update(encoder="large"), "routing.encoder", "unknown encoder 'large'"),
    "routing-seed": (lambda c: c["routing"].update(seed=3), "routing.seed", "3 is not one of seeds [1, 2]"),
    "routing-expert-name": (
        lambda c: c["routing"]["experts"].append("colbert"),
        "routing.experts",
        "not a system name: 'colbert'",
    ),
    "routing-expert-pooling": (lambda c: c["routing"]["experts"].append("finetune/top1"), "routing.experts", "pooling"),
    "routing-expert-not-studied": (
        lambda c: c["routing"]["experts"].append("adapter-paper"),
        "routing.experts",
        "'adapter-paper' is not bm25, zeroshot or one of the study's",
    ),
    "routing-bm25-features": (
        lambda c: c["routing"].update(experts=["zeroshot", "finetune"]),
        "routing.router.features",
        "the bm25 features need bm25 among routing.experts",
    ),
    "routing-trainset": (
        lambda c: c["routing"].update(trainsets=["gamma"]),
        "routing.trainsets",
        "'gamma' is not a training set of in_domain",
    ),
    "routing-split-train": (
        lambda c: c["routing"]["splits"].update(alpha="train"),
        "routing.splits.alpha",
        "not 'train'",
    ),
    "routing-split-unknown": (
        lambda c: c["routing"]["splits"].update(alpha="eval"),
        "routing.splits.alpha",
        "dataset 'alpha' has no 'eval' split",
    ),
    "routing-split-without-train": (
        lambda c: c["routing"]["splits"].update(beta="valid"),
        "routing.splits.beta",
        "dataset 'beta' has no 'train' split",
    ),
    "routing-split-own-corpus": (
        lambda c: (c["in_domain"].update(delta=["delta"]), c["routing"].update(trainsets=["delta"])),
        "routing.splits.delta",
        "the 'valid' queries of 'delta' are judged on their own corpus",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_study_is_refused_naming_the_key(study, case):
    edit, key, words = CASES[case]
    edit(study)
    with pytest.raises(StudyError) as caught:
        checked(study)
    message = str(caught.value)
    assert message.startswith(f"{key}: ") and words in message, message


def test_the_datasets_table_is_named_when_missing_or_invalid(study, tmp_path):
    study["datasets"]["table"] = str(tmp_path / "none.yaml")
    with pytest.raises(StudyError, match=rf"^datasets.table: file '{tmp_path / 'none.yaml'}' does not exist"):
        study_table(study)
    broken = tmp_path / "broken.yaml"
    broken.write_text(TABLE.replace("relevance_threshold: 2", "relevance_threshold: two"))
    study["datasets"]["table"] = str(broken)
    with pytest.raises(StudyError, match=rf"^datasets.table: {broken}: dataset 'beta': 'relevance_threshold' must be"):
        study_table(study)


def test_offline_study_needs_every_dataset_on_disk_or_in_the_mirror(study, tmp_path):
    study["datasets"]["offline"] = True
    resources, mirror = tmp_path / "resources", tmp_path / "mirror"
    for folder, name in ((resources, "alpha"), (resources, "beta"), (mirror, "gamma")):
        (folder / name).mkdir(parents=True)
        (folder / name / "corpus.jsonl").write_text("")
    with pytest.raises(StudyError) as caught:
        checked(study, resources)
    message = str(caught.value)
    assert message.startswith("datasets.offline: dataset 'gamma' is in neither") and "(none set)" in message, message
    study["datasets"]["mirror"] = str(mirror)
    checked(study, resources)  # gamma is found in the mirror
    (mirror / "gamma" / "corpus.jsonl").unlink()
    with pytest.raises(StudyError, match=rf"^datasets.offline: dataset 'gamma' is in neither {resources}/gamma/"):
        checked(study, resources)


def test_the_mirror_may_come_from_the_environment(study, tmp_path, monkeypatch):
    study["datasets"]["offline"] = True
    resources, mirror = tmp_path / "resources", tmp_path / "mirror"
    for name in ("alpha", "beta", "gamma"):
        (mirror / name).mkdir(parents=True)
        (mirror / name / "corpus.jsonl").write_text("")
    monkeypatch.setenv("SBMOE_DATASET_MIRROR", str(mirror))
    checked(study, resources)
    study["datasets"]["mirror"] = str(tmp_path / "elsewhere")  # the configuration's mirror wins
    with pytest.raises(StudyError, match=rf"^datasets.mirror: folder '{tmp_path / 'elsewhere'}' does not exist"):
        checked(study, resources)


def test_the_checks_leave_the_configuration_unchanged(study):
    before = copy.deepcopy(study)
    checked(study)
    assert study == before
