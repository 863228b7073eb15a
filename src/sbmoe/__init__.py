"""SB-MoE: a single Mixture-of-Experts block after the last Transformer layer of a dense bi-encoder.

The package reproduces Sokli et al., "Mixture of Experts Approaches in Dense Retrieval Tasks":
collections in BEIR layout, Hugging Face encoders, the SB-MoE block and its ablations, InfoNCE
training, exact search, ranx evaluation, and the analysis behind the paper's tables and figures.
"""

__version__ = "0.1.0"
