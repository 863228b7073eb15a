"""Retrieval over a corpus: exact dense search, BM25 (PISA), fusion of runs, and PyTerrier transformers."""
