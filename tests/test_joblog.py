"""A job's log file (sbmoe.pipeline.joblog.log_to): what the job writes lands there, bad input ends
the job with one line and exit status 1, any other failure keeps its traceback.

The jobs run as separate Python processes, as the pipeline's scripts do: pytest itself captures
warnings and output, which would hide what the log receives."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PREAMBLE = """
import logging, sys, warnings
from tqdm import tqdm
from sbmoe.io.errors import InputError
from sbmoe.pipeline.joblog import log_to
"""


def run_job(tmp_path: Path, body: str) -> tuple[subprocess.CompletedProcess, str]:
    """Run ``body`` (using ``log``, the log file's path) as a script; its result and the log file."""
    log = tmp_path / "job.log"
    script = PREAMBLE + f"log = {str(log)!r}\n" + textwrap.dedent(body)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    env.pop("TQDM_DISABLE", None)
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    return completed, log.read_text(encoding="utf-8") if log.exists() else ""


def test_logging_warnings_progress_and_prints_go_to_the_log(tmp_path):
    completed, log = run_job(
        tmp_path,
        """
        print("before the job")
        with log_to(log) as logger:
            logger.info("training started")
            logging.getLogger("transformers").warning("weights not initialised")
            warnings.warn("a suspicious input", UserWarning)
            for _ in tqdm(range(3), desc="encoding", mininterval=0):
                pass
            print("a stray print")
            print("to stderr", file=sys.stderr)
        print("after the job")
        """,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "before the job\nafter the job\n"  # the log got nothing of the rest
    assert completed.stderr == ""
    lines = log.splitlines()
    assert any(line.endswith("INFO sbmoe: training started") for line in lines), log
    assert any(line.endswith("WARNING transformers: weights not initialised") for line in lines), log
    assert "UserWarning: a suspicious input" in log
    assert "encoding: 100%" in log and "3/3" in log
    assert "a stray print\n" in log and "to stderr\n" in log
    assert "before the job" not in log and "after the job" not in log


def test_bad_input_ends_the_job_with_one_line_and_status_1(tmp_path):
    completed, log = run_job(
        tmp_path,
        """
        with log_to(log) as logger:
            logger.info("reading the qrels")
            raise InputError("qrels/test.tsv:3: grade 'x' is not a number")
        """,
    )
    assert completed.returncode == 1
    assert completed.stderr == "error: qrels/test.tsv:3: grade 'x' is not a number\n"
    assert "ERROR sbmoe: error: qrels/test.tsv:3: grade 'x' is not a number" in log
    assert "Traceback" not in log and "Traceback" not in completed.stderr


def test_any_other_failure_is_logged_with_its_traceback_and_propagates(tmp_path):
    completed, log = run_job(
        tmp_path,
        """
        def encode():
            raise RuntimeError("CUDA out of memory")

        try:
            with log_to(log):
                encode()
        except RuntimeError as error:
            print(f"caught: {error}")
        """,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "caught: CUDA out of memory\n"  # stdout is restored before it propagates
    assert "ERROR sbmoe: job failed" in log
    assert "Traceback (most recent call last)" in log and ", in encode\n" in log  # down to the failing function
    assert log.rstrip().endswith("RuntimeError: CUDA out of memory")


def test_each_job_starts_a_fresh_log(tmp_path):
    completed, log = run_job(
        tmp_path,
        """
        with log_to(log) as logger:
            logger.info("first attempt")
        with log_to(log) as logger:
            logger.info("second attempt")
        """,
    )
    assert completed.returncode == 0, completed.stderr
    assert "second attempt" in log and "first attempt" not in log
