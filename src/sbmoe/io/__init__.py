"""Reading and writing the study's files: atomic writes, input errors, BEIR collections, TREC runs and
encoded embeddings.
"""
