"""Training examples: one positive document per query, in-batch-negative batches, and InfoNCE over them."""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from sbmoe.io.collection import Qrels


@dataclass
class Example:
    qid: str
    doc_id: str


def sample_positives(qrels: Qrels, rng: random.Random) -> list[Example]:
    """One positive document per query, drawn from its judgements with a grade above zero."""
    examples = []
    for qid in sorted(qrels):
        positives = sorted(d for d, grade in qrels[qid].items() if grade > 0)
        if positives:
            examples.append(Example(qid, rng.choice(positives)))
    return examples


def batches(examples: list[Example], size: int) -> list[list[Example]]:
    batches = [examples[i : i + size] for i in range(0, len(examples), size)]
    return [b for b in batches if len(b) > 1]  # one example has no in-batch negative


def info_nce(
    queries: torch.Tensor, docs: torch.Tensor, temperature: float, doc_ids: list[str] | None = None
) -> torch.Tensor:
    """In-batch-negative InfoNCE: query ``i``'s positive is document ``i``, the others are negatives.

    Scores are dot products of ``queries / temperature`` with ``docs``. When ``doc_ids`` is given, a
    batch document that is another query's copy of the same positive is not counted as a negative.
    """
    scores = (queries / temperature) @ docs.T
    if doc_ids is not None:
        same = torch.tensor([[a == b for b in doc_ids] for a in doc_ids], device=scores.device)
        same.fill_diagonal_(False)
        scores = scores.masked_fill(same, float("-inf"))
    return F.cross_entropy(scores, torch.arange(len(queries), device=scores.device))
