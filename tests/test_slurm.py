"""The cluster profiles on a real SLURM: the CI-sized study through profiles/slurm-cpu, every cluster job
submitted with sbatch, gives the same results as the local run; the submissions ask for what the
profiles say, for a GPU rule, a CPU rule, and none for a local rule.

Needs a SLURM that answers `sinfo` (scripts/slurm-cluster start sets up a one-node one). Without one
the tests are skipped, unless SBMOE_REQUIRE_SLURM=1 (as in CI), which makes that a failure.
"""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ENV, SNAKEMAKE, workdir

pytest.importorskip("snakemake_executor_plugin_slurm")

REQUIRED = os.environ.get("SBMOE_REQUIRE_SLURM") == "1"
CLUSTER_RUN_TIMEOUT = 1200  # seconds; the CI study takes a few minutes through a one-node cluster
# rules that go through sbatch in the CI study (a frozen random encoder), and its local rules
CLUSTER_RULES = {
    "init_model",
    "pool_queries",
    "pool_corpus",
    "train",
    "search",
    "search_untrained",
    "evaluate",
    "bm25",
    "search_split",
    "train_router",
    "route",
}
LOCAL_RULES = {
    "export_dataset",
    "dataset_stats",
    "significance",
    "table_in_domain",
    "table_zero_shot",
    "table_reproduction",
    "table_experts",
    "figure_expert_count",
    "figure_tsne",
    "figure_training",
    "table_routing",
    "figure_routing",
    "paper_macros",
    "verdicts",
    "paper",
}
COMPARED = (
    "models",
    "pooled",
    "encoded",
    "runs",
    "eval",
    "analysis/tables",
    "analysis/significance.json",
    "analysis/macros.tex",
    "analysis/dataset_stats.json",
)


def slurm_problem() -> str | None:
    """Why no SLURM cluster here can take jobs, or None."""
    missing = [tool for tool in ("sinfo", "sbatch", "squeue") if shutil.which(tool) is None]
    if missing:
        return f"no SLURM client ({', '.join(missing)} not on PATH)"
    try:
        answer = subprocess.run(["sinfo", "-h", "-o", "%a %t"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 20 s (is slurmctld running?)"
    if answer.returncode != 0:
        return f"sinfo failed: {answer.stderr.strip() or answer.returncode}"
    states = [line.split() for line in answer.stdout.splitlines() if line.strip()]
    if not any(avail == "up" and state.rstrip("*~#") in ("idle", "mix", "alloc", "comp") for avail, state in states):
        return f"no SLURM partition is up with a node that takes jobs (sinfo: {answer.stdout.strip() or 'nothing'})"
    return None


@pytest.fixture(scope="module")
def slurm():
    problem = slurm_problem()
    if problem and REQUIRED:
        pytest.fail(f"SBMOE_REQUIRE_SLURM=1, but {problem}")
    if problem:
        pytest.skip(f"{problem}; `scripts/slurm-cluster start` sets up a one-node cluster")


def run_profile(
    folder: Path, profile: str, *args: str, timeout: int, config: str = "config/ci.yaml", env: dict | None = None
) -> str:
    """Run Snakemake with a cluster profile (verbose: the plugin logs every sbatch call) and return its
    output, after "exit <code>" if it failed. On a timeout the run is interrupted like Ctrl-C, so that
    it cancels its SLURM jobs."""
    log = folder / f"{profile}.log"
    command = [*SNAKEMAKE, "--profile", f"profiles/{profile}", "--configfile", config, "--verbose", *args]
    with log.open("w") as handle:
        process = subprocess.Popen(
            command,
            cwd=folder,
            env={**ENV, **(env or {})},
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            output = log.read_text(errors="replace")
            run_ids = re.findall(r"SLURM run ID: (\S+)", output)
            for run_id in run_ids:
                subprocess.run(["scancel", "--name", run_id], timeout=30, check=False)
            pytest.fail(f"snakemake --profile profiles/{profile} did not finish within {timeout} s:\n{output[-4000:]}")
    output = log.read_text(errors="replace")
    return output if process.returncode == 0 else f"exit {process.returncode}\n{output}"


def sbatch_calls(output: str) -> dict[str, list[list[str]]]:
    """The sbatch command lines the plugin logged, by rule (their --comment is rule_<name>[_wildcards_...]),
    without the --wrap'ed job; a refused call, logged again with sbatch's error, counts once."""
    calls: dict[str, list[list[str]]] = {}
    lines = re.findall(r"^\s*(?:sbatch call:\s*)?(sbatch --parsable .*)$", output, flags=re.M)
    for line in dict.fromkeys(lines):
        words = shlex.split(line.split(" --wrap=")[0])
        comment = words[words.index("--comment") + 1]
        rule = re.match(r"rule_(\w+?)(_wildcards_.*)?$", comment).group(1)
        calls.setdefault(rule, []).append(words)
    return calls


def option(words: list[str], name: str) -> str | None:
    """The value of an sbatch option written `-x v`, `--long v` or `--long=v`; None if absent."""
    for index, word in enumerate(words):
        if word == name:
            return words[index + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


def planned_jobs(folder: Path, *args: str) -> dict[str, int]:
    plan = subprocess.run(
        [*SNAKEMAKE, "-n", "--quiet", "rules", "--configfile", "config/ci.yaml", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        env=ENV,
    )
    assert plan.returncode == 0, plan.stderr[-3000:]
    table = (plan.stdout + plan.stderr).split("Job stats:")[1]
    return {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M) if name != "total"}


def content(path: Path):
    """A result file's content, less what measures time (the seconds of each epoch in a training log)."""
    if path.name == "train_log.jsonl":
        return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in path.read_text().splitlines()]
    return path.read_bytes()


def same_files(local: Path, cluster: Path) -> list[str]:
    """The relative paths of the compared results; fails on the first that differs."""
    compared = []
    for entry in COMPARED:
        base = local / "results" / entry
        files = (
            sorted(p for p in base.rglob("*") if p.is_file() and p.name != ".snakemake_timestamp")
            if base.is_dir()
            else [base]
        )
        assert files, f"the local run wrote nothing under results/{entry}"
        for path in files:
            relative = path.relative_to(local)
            assert (cluster / relative).is_file(), f"the cluster run did not write {relative}"
            assert content(cluster / relative) == content(path), f"{relative} differs from the local run's"
            compared.append(str(relative))
    return compared


@pytest.fixture(scope="module")
def cluster_run(slurm, tmp_path_factory):
    """The CI-sized study through profiles/slurm-cpu: (folder, Snakemake's output, the planned jobs)."""
    folder = workdir(tmp_path_factory.mktemp("ci-study-slurm"))
    jobs = planned_jobs(folder)
    output = run_profile(folder, "slurm-cpu", timeout=CLUSTER_RUN_TIMEOUT)
    return folder, output, jobs


def show(calls: dict[str, list[list[str]]], capsys) -> None:
    """Print one sbatch call per rule into the test log, past pytest's capture."""
    with capsys.disabled():
        for rule in sorted(calls):
            print(f"\n{len(calls[rule])} x {rule}: {shlex.join(calls[rule][0])}", end="")
        print()


def test_ci_study_through_the_cpu_profile_equals_the_local_run(cluster_run, request, capsys):
    folder, output, jobs = cluster_run
    assert not output.startswith("exit "), output[-5000:]
    calls = sbatch_calls(output)
    show(calls, capsys)

    # every cluster job went through sbatch, once; no local rule did
    assert set(calls) == CLUSTER_RULES, sorted(calls)
    for rule in CLUSTER_RULES:
        assert len(calls[rule]) == jobs[rule], (rule, len(calls[rule]), jobs[rule])
    assert set(jobs) == CLUSTER_RULES | LOCAL_RULES | {"all"}
    for rule in LOCAL_RULES:
        assert re.search(rf"^localrule {rule}:", output, flags=re.M), f"{rule} did not run on the submitting node"
    assert len(re.findall(r"has been submitted with SLURM jobid \d+", output)) == sum(jobs[r] for r in CLUSTER_RULES)

    # what profiles/slurm-cpu asks for: no GPU anywhere, the default partition, CPUs and memory as set
    profile = yaml.safe_load((folder / "profiles" / "slurm-cpu" / "config.yaml").read_text())
    defaults, per_rule = profile["default-resources"], profile["set-resources"]
    for rule, rule_calls in calls.items():
        resources = {**defaults, **per_rule.get(rule, {})}
        for words in rule_calls:
            assert not any(w.startswith(("--gpus", "--gres", "--cpus-per-gpu")) for w in words), words
            assert option(words, "--cpus-per-task") == str(resources["cpus_per_task"]), words
            assert option(words, "--mem") == str(resources["mem_mb"]), words
            assert option(words, "-t") == str(resources["runtime"]), words
            assert option(words, "-A") is None, words
    assert all(
        per_rule[rule]["gpu"] == 0 for rule in ("train", "pool_queries", "pool_corpus", "search", "search_split")
    )

    # the same numbers as the local run (tests/conftest.py), file for file; asked for here, after the
    # SLURM check, so that a missing cluster skips without running the study locally first
    compared = same_files(request.getfixturevalue("ci_study"), folder)
    assert any(p.endswith(".trec") for p in compared) and any(p.endswith(".json") for p in compared)
    assert (folder / "results" / "paper" / "main.pdf").stat().st_size > 10_000


def test_gpu_profile_submissions(cluster_run, tmp_path, capsys):
    """profiles/slurm: the GPU rules go to the GPU partition with a GPU and CPUs per GPU (not per task),
    a CPU rule to the CPU partition with CPUs per task. Three independent jobs of the finished study
    are run again, in a copy of it: all are submitted at once. This cluster need not be able to run them
    (the one-node test cluster has no GPUs): sbatch may refuse them, it is what they ask for that counts."""
    folder = tmp_path / "study"
    shutil.copytree(cluster_run[0], folder)
    # one run per target: a frozen encoder's train, search and evaluate jobs of one seed depend on each
    # other, and a refused job's outputs are removed, so each target comes before those it feeds
    targets = [
        "results/eval/tiny/scifact/finetune/seed1.json",
        "results/runs/tiny/scifact/finetune/seed1/scifact",
        "results/models/tiny/scifact/sbmoe-paper-e3/seed2/model",
    ]
    output = "\n".join(
        run_profile(folder, "slurm", "--force", target, "--retries", "0", timeout=600) for target in targets
    )
    calls = sbatch_calls(output)
    show(calls, capsys)
    assert set(calls) == {"train", "search", "evaluate"}, output[-5000:]
    profile = yaml.safe_load((folder / "profiles" / "slurm" / "config.yaml").read_text())
    for rule in ("train", "search"):
        gpu = {**profile["default-resources"], **profile["set-resources"][rule]}
        gpus = f"{gpu['gpu_model']}:{gpu['gpu']}" if "gpu_model" in gpu else str(gpu["gpu"])
        for words in calls[rule]:
            assert option(words, "-p") == gpu["slurm_partition"] == "gpu", words
            assert option(words, "--gpus") == gpus, words
            assert option(words, "--cpus-per-gpu") == str(gpu["cpus_per_gpu"]), words
            assert option(words, "--cpus-per-task") is None, words
            assert option(words, "--mem") == str(gpu["mem_mb"]), words
    cpu = {**profile["default-resources"], **profile["set-resources"]["evaluate"]}
    for words in calls["evaluate"]:
        assert option(words, "-p") == cpu["slurm_partition"] == "cpu", words
        assert option(words, "--cpus-per-task") == str(cpu["cpus_per_task"]), words
        assert option(words, "--gpus") is None and option(words, "--cpus-per-gpu") is None, words
        assert option(words, "--mem") == str(cpu["mem_mb"]), words


def test_hub_encoder_is_fetched_on_the_submitting_node(slurm, tmp_path):
    """init_model of a hub encoder downloads it: a local rule then, never an sbatch job, since compute
    nodes are often offline. (No hub is reachable here, so the download itself fails at once.)"""
    folder = workdir(tmp_path)
    config = yaml.safe_load((folder / "config" / "ci.yaml").read_text())
    config["encoders"]["tiny"]["name_or_path"] = "sentence-transformers/all-MiniLM-L6-v2"
    (folder / "hub.yaml").write_text(yaml.safe_dump(config))
    output = run_profile(
        folder,
        "slurm-cpu",
        "results/models/tiny/none/zeroshot/seed0/model",
        "--retries",
        "0",
        config="hub.yaml",
        env={"HF_HUB_OFFLINE": "1"},
        timeout=600,
    )
    assert re.search(r"^localrule init_model:", output, flags=re.M), output[-5000:]
    assert sbatch_calls(output) == {}, output[-5000:]
