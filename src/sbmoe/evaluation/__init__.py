"""Scoring runs: ranx metrics, the trec_eval cross-check, significance tests and the tidy table of results."""
