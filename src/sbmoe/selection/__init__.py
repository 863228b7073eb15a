"""Mixture-of-Experts routing over whole retrievers: a router that picks or weights BM25 and dense
retrievers per query.
"""
