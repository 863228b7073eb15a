"""``sbmoe``: train, encode, search and evaluate SB-MoE retrievers from the command line.

sbmoe train    --dataset DIR --config CONFIG.yaml --output MODEL_DIR --log LOG.jsonl
               [--pooled-queries Q.npz --pooled-corpus C.npz]
sbmoe init     --config CONFIG.yaml --output MODEL_DIR            (an untrained, zero-shot model)
sbmoe pool     --model MODEL_DIR --dataset DIR --kind corpus --output POOLED.npz
sbmoe encode   --model MODEL_DIR --dataset DIR --kind queries --pooling top1 --output ENC.npz
sbmoe search   --queries Q.npz --corpus C.npz [C2.npz ...] --output RUN.trec
sbmoe evaluate --run RUN.trec --qrels QRELS.tsv --output EVAL.json
sbmoe verdicts results/analysis/verdicts.json                     (the verdicts as Markdown)
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from sbmoe.analysis.claims.markdown import verdicts_markdown
from sbmoe.evaluation.metrics import METRICS, metric_problem
from sbmoe.io.errors import DataFormatError, InputWarning, read_json
from sbmoe.pipeline import stages
from sbmoe.pipeline.config import load_config


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {number}")
    return number


def _metric(value: str) -> str:
    problem = metric_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


def _word(value: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise argparse.ArgumentTypeError(f"expected one word (TREC run fields are whitespace-separated), got {value!r}")
    return value


def _shard(value: str) -> tuple[int, int]:
    try:
        index, total = (int(v) for v in value.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SHARD/NUM_SHARDS such as 0/4, got {value!r}") from None
    if not 0 <= index < total:
        raise argparse.ArgumentTypeError(f"shard index must be in [0, {total}), got {index}")
    return index, total


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sbmoe", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model on a BEIR-layout dataset")
    train.add_argument("--dataset", required=True, help="BEIR-layout folder with qrels/<split>.tsv")
    train.add_argument("--config", required=True, help="YAML/JSON with encoder, model, training, seed")
    train.add_argument("--output", required=True, help="model folder to write")
    train.add_argument("--log", required=True, help="per-epoch JSONL training log to write")
    train.add_argument("--split", default="train")
    train.add_argument("--valid-split", default="valid", help="qrels split held out for validation, if the file exists")
    train.add_argument("--pooled-queries", help="the frozen encoder's pooled training queries ('sbmoe pool')")
    train.add_argument("--pooled-corpus", nargs="+", help="the frozen encoder's pooled corpus shards ('sbmoe pool')")

    init = commands.add_parser("init", help="save an untrained model (the zero-shot baseline)")
    init.add_argument("--config", required=True)
    init.add_argument("--output", required=True)

    for name, help_text in (
        ("pool", "encode texts with the encoder alone (cache for frozen encoders)"),
        ("encode", "encode and route a dataset's queries or corpus"),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--model", required=True, help="model folder")
        sub.add_argument("--dataset", required=True)
        sub.add_argument("--kind", choices=("queries", "corpus"), required=True)
        sub.add_argument("--split", default="test", help="queries of this qrels split")
        sub.add_argument("--shard", type=_shard, default=(0, 1), help="SHARD/NUM_SHARDS of the corpus, e.g. 0/4")
        sub.add_argument("--batch-size", type=_positive, default=128)
        sub.add_argument("--output", required=True, help=".npz to write")
        if name == "encode":
            sub.add_argument("--pooling", choices=("top1", "all", "none"), default="top1")
            sub.add_argument("--pooled", help="cached pooled embeddings from 'sbmoe pool' (frozen encoders only)")

    search = commands.add_parser("search", help="exact dot-product top-k search")
    search.add_argument("--queries", required=True, help="encoded queries (.npz)")
    search.add_argument("--corpus", required=True, nargs="+", help="encoded corpus shards (.npz)")
    search.add_argument("--k", type=_positive, default=1000)
    search.add_argument("--tag", type=_word, default="sbmoe")
    search.add_argument("--output", required=True, help="TREC run file to write")

    evaluate = commands.add_parser("evaluate", help="score a run with ranx")
    evaluate.add_argument("--run", required=True)
    evaluate.add_argument("--qrels", required=True)
    evaluate.add_argument("--metrics", nargs="+", type=_metric, default=list(METRICS))
    evaluate.add_argument(
        "--relevance-threshold", type=_positive, default=1, help="minimum grade counted relevant by binary metrics"
    )
    evaluate.add_argument("--drop-self-hits", action="store_true", help="ignore hits whose doc id equals the query id")
    evaluate.add_argument("--output", required=True, help="JSON with means and per-query values")

    verdicts = commands.add_parser("verdicts", help="print a study's verdicts as Markdown")
    verdicts.add_argument("report", help="results/analysis/verdicts.json of a run")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; bad input is reported as ``sbmoe <command>: error: <message>`` (exit status 2)
    and suspicious input as ``sbmoe <command>: warning: <message>``, without a traceback."""
    args = build_parser().parse_args(argv)

    def show_warning(message, category, filename, lineno, file=None, line=None):
        label = "warning" if issubclass(category, InputWarning) else category.__name__
        print(f"sbmoe {args.command}: {label}: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("always", InputWarning)
        warnings.showwarning = show_warning
        try:
            _run(args)
        except (ValueError, OSError) as error:  # InputError is a ValueError; OSError: unreadable or unwritable
            print(f"sbmoe {args.command}: error: {error}", file=sys.stderr)
            return 2
    return 0


def _run(args: argparse.Namespace) -> None:
    if args.command == "train":
        model, training = load_config(args.config)
        stages.train_stage(
            args.dataset,
            model,
            training,
            args.output,
            args.log,
            args.split,
            args.valid_split,
            pooled_queries=args.pooled_queries,
            pooled_corpus=args.pooled_corpus,
        )
    elif args.command == "init":
        model, _ = load_config(args.config)
        stages.init_stage(model, args.output)
    elif args.command == "pool":
        stages.pool_stage(args.model, args.dataset, args.kind, args.output, args.split, *args.shard, args.batch_size)
    elif args.command == "encode":
        stages.encode_stage(
            args.model,
            args.dataset,
            args.kind,
            [args.pooling],
            [args.output],
            args.split,
            *args.shard,
            pooled=args.pooled,
            batch_size=args.batch_size,
        )
    elif args.command == "search":
        stages.search_stage(args.queries, args.corpus, args.output, args.k, args.tag)
    elif args.command == "evaluate":
        result = stages.evaluate_stage(
            args.run, args.qrels, args.output, args.metrics, args.relevance_threshold, args.drop_self_hits
        )
        print(json.dumps(result["metrics"], indent=1))
    elif args.command == "verdicts":
        report = read_json(args.report, "a study's verdicts (results/analysis/verdicts.json)")
        missing = [
            key for key in ("claims", "metrics", "defaults") if not isinstance(report, dict) or key not in report
        ]
        if missing:
            raise DataFormatError(args.report, None, f"no {', '.join(missing)}: not a verdicts report")
        print(verdicts_markdown(report), end="")


if __name__ == "__main__":
    sys.exit(main())
