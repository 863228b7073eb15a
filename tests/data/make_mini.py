"""Rebuild tests/data/mini/ (the CI-sized slices of SciFact and Cranfield) from ../shared/data.

Run from the repository root: python tests/data/make_mini.py. Each slice keeps the first queries
of each split (by id order in the qrels file), every document they judge, and the first
documents of the corpus as distractors.
"""

import json
import shutil
from pathlib import Path

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
OUT = Path(__file__).resolve().parent / "mini"
SLICES = {"scifact": {"train": 120, "test": 40, "distractors": 400}, "cranfield": {"test": 30, "distractors": 200}}


def qrels_head(path: Path, queries: int) -> list[str]:
    lines = path.read_text().splitlines()
    kept, seen = [lines[0]], []
    for line in lines[1:]:
        qid = line.split("\t")[0]
        if qid not in seen:
            if len(seen) == queries:
                break
            seen.append(qid)
        kept.append(line)
    return kept


for name, sizes in SLICES.items():
    source, dest = SHARED / name, OUT / name
    shutil.rmtree(dest, ignore_errors=True)
    (dest / "qrels").mkdir(parents=True)
    splits = {s: qrels_head(source / "qrels" / f"{s}.tsv", n) for s, n in sizes.items() if s != "distractors"}
    qids = {line.split("\t")[0] for lines in splits.values() for line in lines[1:]}
    judged = {line.split("\t")[1] for lines in splits.values() for line in lines[1:]}
    corpus = [json.loads(line) for line in (source / "corpus.jsonl").read_text().splitlines()]
    keep = judged | {doc["_id"] for doc in corpus[: sizes["distractors"]]}
    with open(dest / "corpus.jsonl", "w") as out:
        for doc in corpus:
            if doc["_id"] in keep:
                out.write(json.dumps(doc) + "\n")
    with open(dest / "queries.jsonl", "w") as out:
        for line in (source / "queries.jsonl").read_text().splitlines():
            if json.loads(line)["_id"] in qids:
                out.write(line + "\n")
    for split, lines in splits.items():
        (dest / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    print(name, len(keep), "docs", len(qids), "queries")
