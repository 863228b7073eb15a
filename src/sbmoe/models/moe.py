"""The SB-MoE block: experts, gates and the two ways of combining them with the encoder's output.

Notation follows the paper and ``METHOD.md``: ``x`` is the pooled encoder embedding (size ``h``),
expert ``i`` computes ``E_i(x) = W2_i ReLU(W1_i x + b1_i) + b2_i`` and the gate produces weights
``g`` over the ``E`` experts. Two combinations are available:

``paper``
    The released formula ``out = normalize(sum_i g_i E_i(x)) + x``. With top-1 routing the
    normalisation cancels ``g_k``, so the gate receives no gradient and routing stays where the
    random initialisation put it.
``learned``
    ``out = x + sum_i g_i E_i(x)``: the routing weight scales the expert's output, so the gate is
    trained (optionally with a Switch-style load-balancing loss).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from sbmoe.systems.registry import COMBINATIONS

POOLINGS = ("top1", "all")


class Expert(nn.Module):
    """A two-layer feed-forward expert, ``h -> h/2 -> h`` with ReLU; no dropout, no norm."""

    def __init__(self, hidden: int):
        super().__init__()
        self.down = nn.Linear(hidden, hidden // 2)
        self.up = nn.Linear(hidden // 2, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(F.relu(self.down(x)))


def top1_mask(weights: torch.Tensor) -> torch.Tensor:
    """Keep each row's arg-max entry (its value, not renormalised) and zero the rest."""
    index = weights.argmax(dim=-1, keepdim=True)
    return torch.zeros_like(weights).scatter(-1, index, weights.gather(-1, index))


@dataclass
class Routing:
    """What the gate decided for a batch of texts."""

    weights: torch.Tensor  # (n, E) the weights applied to the experts
    experts: torch.Tensor  # (n,) the expert each text was routed to (arg-max of the weights)
    probs: torch.Tensor | None = None  # (n, E) softmax of the clean gate logits, for the balance loss


class Gate(nn.Module):
    """The learned gate: logits ``z = G2 ReLU(G1 x)`` and a noise scale ``softplus(W_noise x)``.

    Training uses noisy top-1 routing: ``softmax(z + N(0,1) * softplus(W_noise x))`` masked to its
    arg-max. At inference ``top1`` masks ``softmax(z)`` to its arg-max and ``all`` keeps it whole.
    """

    def __init__(self, hidden: int, num_experts: int):
        super().__init__()
        self.hidden_layer = nn.Linear(hidden, hidden // 2)
        self.logits = nn.Linear(hidden // 2, num_experts)
        self.noise = nn.Linear(hidden, num_experts)

    def forward(self, x: torch.Tensor, pooling: str) -> Routing:
        z = self.logits(F.relu(self.hidden_layer(x)))
        probs = torch.softmax(z, dim=-1)
        if self.training:
            noisy = z + torch.randn_like(z) * F.softplus(self.noise(x))
            weights = top1_mask(torch.softmax(noisy, dim=-1))
        elif pooling == "top1":
            weights = top1_mask(probs)
        else:
            weights = probs
        return Routing(weights=weights, experts=weights.argmax(dim=-1), probs=probs)


class RandomGate(nn.Module):
    """The RANDOM-GATE ablation: ``u ~ U(0,1)^E`` masked to its arg-max, in training and inference.

    Draws come from a generator seeded with ``seed``; :meth:`reseed` restarts the sequence, so an
    encoding pass over the same texts in the same order routes them identically.
    """

    def __init__(self, num_experts: int, seed: int):
        super().__init__()
        self.num_experts = num_experts
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def reseed(self) -> None:
        self.generator.manual_seed(self.seed)

    def forward(self, x: torch.Tensor, pooling: str) -> Routing:
        u = torch.rand(x.shape[0], self.num_experts, generator=self.generator).to(x.device, x.dtype)
        weights = top1_mask(u)
        return Routing(weights=weights, experts=weights.argmax(dim=-1))


class SBMoE(nn.Module):
    """One Mixture-of-Experts block applied to the pooled embedding of every query and document.

    ``gate`` is ``"learned"`` (noisy top-1 :class:`Gate`), ``"random"`` (:class:`RandomGate`) or
    ``None`` with a single expert (the adapter: the capacity of one expert, no routing).
    """

    def __init__(
        self,
        hidden: int,
        num_experts: int,
        combination: str = "paper",
        gate: str | None = "learned",
        seed: int = 42,
    ):
        super().__init__()
        if combination not in COMBINATIONS:
            raise ValueError(f"combination must be one of {COMBINATIONS}, got {combination!r}")
        if gate is None and num_experts != 1:
            raise ValueError("a block without a gate has exactly one expert")
        if num_experts < 1:
            raise ValueError(f"num_experts must be at least 1, got {num_experts}")
        self.num_experts = num_experts
        self.combination = combination
        self.experts = nn.ModuleList(Expert(hidden) for _ in range(num_experts))
        if gate == "learned":
            self.gate: nn.Module | None = Gate(hidden, num_experts)
        elif gate == "random":
            self.gate = RandomGate(num_experts, seed)
        elif gate is None:
            self.gate = None
        else:
            raise ValueError(f"gate must be 'learned', 'random' or None, got {gate!r}")

    def route(self, x: torch.Tensor, pooling: str = "top1") -> Routing:
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if self.gate is None:
            ones = x.new_ones(x.shape[0], 1)
            return Routing(weights=ones, experts=torch.zeros(x.shape[0], dtype=torch.long, device=x.device))
        return self.gate(x, pooling)

    def forward(self, x: torch.Tensor, pooling: str = "top1") -> tuple[torch.Tensor, Routing]:
        routing = self.route(x, pooling)
        outputs = torch.stack([expert(x) for expert in self.experts], dim=1)  # (n, E, h)
        mixed = (routing.weights.unsqueeze(-1) * outputs).sum(dim=1)
        if self.combination == "paper":
            out = F.normalize(mixed, dim=-1, eps=1e-6) + x
        else:
            out = x + mixed
        return out, routing


# The blocks of the registry's variants (sbmoe.systems.registry, resolved by sbmoe.models.blocks): each
# builds the block of a Retriever from its ModelConfig.


def learned_gate_block(model) -> SBMoE:
    """SB-MoE: ``num_experts`` experts and the learned noisy top-1 gate."""
    config = model.config
    return SBMoE(model.hidden_size, config.num_experts, config.combination, gate="learned", seed=config.seed)


def random_gate_block(model) -> SBMoE:
    """RANDOM-GATE: the SB-MoE block with a uniformly random expert per text (seeded)."""
    config = model.config
    return SBMoE(model.hidden_size, config.num_experts, config.combination, gate="random", seed=config.seed)


def adapter_block(model) -> SBMoE:
    """The adapter: a single expert and no gate."""
    config = model.config
    return SBMoE(model.hidden_size, config.num_experts, config.combination, gate=None, seed=config.seed)


def load_balancing_loss(routing: Routing) -> torch.Tensor:
    """Switch Transformer's auxiliary loss ``E * sum_i f_i P_i`` (1 when routing is uniform)."""
    if routing.probs is None:
        raise ValueError("the load-balancing loss needs a learned gate")
    num_experts = routing.probs.shape[-1]
    share = F.one_hot(routing.experts, num_experts).float().mean(dim=0)
    return num_experts * (share * routing.probs.mean(dim=0)).sum()


def routing_entropy(load: torch.Tensor) -> float:
    """Entropy (nats) of a distribution of texts over experts; ``ln E`` when perfectly balanced."""
    p = load[load > 0]
    return float(-(p * p.log()).sum()) if p.numel() else math.nan
