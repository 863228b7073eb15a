"""The Regular MoE: Mixture-of-Experts feed-forward sub-layers inside the Transformer (METHOD.md §9).

The student replication replaced the feed-forward sub-layer of several Transformer layers by a
Mixture of Experts. Here each chosen layer (``moe_layers``) gets ``E`` experts, each a copy of that
layer's pretrained feed-forward weights ("upcycling"), and a token-level router: a linear map
``h -> E`` whose softmax picks each token's top ``k`` experts, their weights renormalised to sum
to one. With identical experts and weights summing to one the layer computes what the dense layer
did, so at initialisation the model is the dense encoder (up to rounding).

A Switch/Mixtral-style auxiliary loss keeps the token load balanced: ``E * sum_i f_i P_i``, where
``f_i`` is the share of the token-to-expert assignments given to expert ``i`` and ``P_i`` the mean
router probability of expert ``i`` (1 when routing is uniform; Mixtral's version is ``k`` times this).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from sbmoe.models.encoder import Encoder
from sbmoe.models.moe import routing_entropy


class FeedForwardExpert(nn.Module):
    """A copy of a BERT layer's feed-forward sub-layer: ``W_out act(W_in a + b_in) + b_out``."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.intermediate = copy.deepcopy(layer.intermediate)  # W_in and the activation
        self.dense = copy.deepcopy(layer.output.dense)  # W_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.intermediate(x))


@dataclass
class TokenRouting:
    """What a router decided for the tokens of one forward pass."""

    probs: torch.Tensor  # (tokens, E) softmax of the router logits
    experts: torch.Tensor  # (tokens, k) the chosen experts, best first

    @property
    def num_experts(self) -> int:
        return self.probs.shape[-1]

    def load(self) -> torch.Tensor:
        """Assignments per expert (a token counts once for each of its ``k`` experts)."""
        return torch.bincount(self.experts.reshape(-1), minlength=self.num_experts)


def balance_loss(routing: TokenRouting) -> torch.Tensor:
    """``E * sum_i f_i P_i`` over the tokens of one pass (1 when the load and the probabilities are uniform)."""
    share = routing.load().to(routing.probs.dtype) / routing.experts.numel()
    return routing.num_experts * (share * routing.probs.mean(dim=0)).sum()


class MoEFeedForward(nn.Module):
    """``E`` upcycled experts of one layer's feed-forward sub-layer and a token-level top-``k`` router.

    :attr:`routing` keeps the last pass's routing, for the load-balancing loss and the training log.
    """

    def __init__(self, layer: nn.Module, num_experts: int, top_k: int = 2, init_std: float = 0.02):
        super().__init__()
        if num_experts < 2:
            raise ValueError(f"a Regular MoE layer needs at least 2 experts, got {num_experts}")
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"top_k must be in [1, {num_experts}], got {top_k}")
        self.top_k = top_k
        self.experts = nn.ModuleList(FeedForwardExpert(layer) for _ in range(num_experts))
        hidden = self.experts[0].intermediate.dense.in_features
        self.router = nn.Linear(hidden, num_experts, bias=False)
        nn.init.normal_(self.router.weight, std=init_std)
        self.routing: TokenRouting | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(self.router(x).float(), dim=-1)
        weights, experts = probs.topk(self.top_k, dim=-1)
        weights = (weights / weights.sum(dim=-1, keepdim=True)).to(x.dtype)
        self.routing = TokenRouting(probs=probs, experts=experts)
        out = torch.zeros_like(x)
        for index, expert in enumerate(self.experts):
            rows, slot = (experts == index).nonzero(as_tuple=True)
            if rows.numel():
                out = out.index_add(0, rows, weights[rows, slot].unsqueeze(-1) * expert(x[rows]))
        return out


def layer_indices(moe_layers: list[int], num_layers: int) -> list[int]:
    """``moe_layers`` (negative values count from the top: -1 is the last layer) as sorted indices."""
    indices = []
    for layer in moe_layers:
        index = layer + num_layers if layer < 0 else layer
        if not 0 <= index < num_layers:
            raise ValueError(f"moe_layers: layer {layer} does not exist (the encoder has {num_layers} layers)")
        indices.append(index)
    if len(set(indices)) != len(indices):
        raise ValueError(f"moe_layers: {moe_layers} names a layer twice")
    return sorted(indices)


def upcycle(encoder: Encoder, moe_layers: list[int], num_experts: int, top_k: int) -> list[int]:
    """Replace the feed-forward sub-layer of each of ``moe_layers`` by an upcycled :class:`MoEFeedForward`
    (the router initialised from the current random state, as Hugging Face initialises new weights);
    the indices of the replaced layers."""
    indices = layer_indices(moe_layers, encoder.num_layers)
    init_std = getattr(encoder.model.config, "initializer_range", 0.02)
    for index in indices:
        encoder.replace_feed_forward(index, MoEFeedForward(encoder.layers[index], num_experts, top_k, init_std))
    return indices


def upcycled_block(model) -> None:
    """The Regular MoE's block (sbmoe.systems.registry): the encoder's ``moe_layers`` upcycled in place;
    no block follows the encoder."""
    config = model.config
    upcycle(model._require_encoder(), config.moe_layers, config.num_experts, config.top_k)


def replaced_parameters(encoder: Encoder) -> list[nn.Parameter]:
    """The dense feed-forward weights that the experts replaced: kept in the encoder (the experts'
    initialisation, saved with it) but unused, so training leaves them alone."""
    return [
        p
        for index in encoder.feed_forward
        for module in (encoder.layers[int(index)].intermediate, encoder.layers[int(index)].output.dense)
        for p in module.parameters()
    ]


class RoutingLog:
    """Per-epoch routing statistics of every MoE layer: expert load, its entropy, the balance loss."""

    def __init__(self, encoder: Encoder):
        self.layers = {
            index: module for index, module in encoder.feed_forward.items() if isinstance(module, MoEFeedForward)
        }
        self.load = {index: torch.zeros(len(m.experts)) for index, m in self.layers.items()}
        self.losses: dict[str, list[float]] = {index: [] for index in self.layers}

    def __bool__(self) -> bool:
        return bool(self.layers)

    def balance_loss(self) -> torch.Tensor:
        """The mean balance loss of the MoE layers' last pass, recorded for the epoch's statistics."""
        losses = []
        for index, module in self.layers.items():
            loss = balance_loss(module.routing)
            losses.append(loss)
            self.losses[index].append(float(loss.detach()))
            self.load[index] += module.routing.load().cpu().float()
        return torch.stack(losses).mean()

    def summary(self) -> dict | None:
        """``{layer: {"expert_load", "routing_entropy", "balance_loss"}}`` over the passes recorded."""
        if not self:
            return None
        summary = {}
        for index, load in self.load.items():
            share = load / load.sum() if load.sum() > 0 else None
            summary[index] = {
                "expert_load": share.tolist() if share is not None else None,
                "routing_entropy": routing_entropy(share) if share is not None else None,
                "balance_loss": float(sum(self.losses[index]) / len(self.losses[index]))
                if self.losses[index]
                else math.nan,
            }
        return summary
