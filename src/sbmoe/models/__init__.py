"""Retrieval models: Hugging Face encoders, the SB-MoE block, the Regular MoE, prefix caches and the
retriever that joins them.
"""
