"""Contrastive training of retrievers with in-batch negatives."""
