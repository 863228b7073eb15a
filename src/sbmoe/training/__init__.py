"""Contrastive training of retrievers with in-batch negatives: settings, examples, the texts training
reads, the loop.
"""
