"""The SB-MoE block: routing (TOP-1, ALL, noisy top-1, random), the adapter, the balance loss, and
which combination lets the gate learn."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from sbmoe.models.moe import Expert, Gate, RandomGate, Routing, SBMoE, load_balancing_loss, routing_entropy, top1_mask

H, E, N = 32, 4, 24


def _inputs(n=N, seed=0):
    return torch.randn(n, H, generator=torch.Generator().manual_seed(seed))


def _clean_softmax(gate: Gate, x):
    with torch.no_grad():
        return torch.softmax(gate.logits(F.relu(gate.hidden_layer(x))), dim=-1)


def _block(combination="paper", gate="learned", num_experts=E, seed=0):
    torch.manual_seed(seed)
    return SBMoE(H, num_experts, combination, gate=gate, seed=seed)


@pytest.mark.parametrize("combination", ["paper", "learned"])
@pytest.mark.parametrize("pooling", ["top1", "all"])
def test_shapes(combination, pooling):
    block = _block(combination).eval()
    out, routing = block(_inputs(), pooling)
    assert out.shape == (N, H)
    assert routing.weights.shape == (N, E) and routing.probs.shape == (N, E)
    assert routing.experts.shape == (N,) and routing.experts.dtype == torch.long
    assert routing.experts.min() >= 0 and routing.experts.max() < E


def test_expert_is_two_layer_relu_mlp():
    torch.manual_seed(0)
    expert = Expert(H)
    assert expert.down.weight.shape == (H // 2, H) and expert.up.weight.shape == (H, H // 2)
    x = _inputs(3)
    by_hand = F.relu(x @ expert.down.weight.T + expert.down.bias) @ expert.up.weight.T + expert.up.bias
    torch.testing.assert_close(expert(x), by_hand)


def test_top1_mask():
    weights = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])
    assert torch.equal(top1_mask(weights), torch.tensor([[0.0, 0.7, 0.0], [0.5, 0.0, 0.0]]))


def test_top1_is_sparse_and_keeps_the_softmax_max():
    block = _block().eval()
    x = _inputs()
    _, routing = block(x, "top1")
    probs = _clean_softmax(block.gate, x)
    assert ((routing.weights != 0).sum(dim=1) == 1).all()
    torch.testing.assert_close(routing.weights.max(dim=1).values, probs.max(dim=1).values)
    assert torch.equal(routing.experts, probs.argmax(dim=1))
    assert torch.equal(routing.weights.argmax(dim=1), routing.experts)
    assert (routing.weights.sum(dim=1) < 1).all()  # not renormalised
    torch.testing.assert_close(routing.probs, probs)


def test_all_weights_are_the_full_softmax():
    block = _block().eval()
    x = _inputs()
    _, routing = block(x, "all")
    torch.testing.assert_close(routing.weights.sum(dim=1), torch.ones(N))
    assert (routing.weights > 0).all()
    torch.testing.assert_close(routing.weights, _clean_softmax(block.gate, x))
    _, top1 = block(x, "top1")
    assert torch.equal(routing.experts, top1.experts)  # the same expert is the arg-max of both


@pytest.mark.parametrize("combination", ["paper", "learned"])
def test_combinations_compute_the_documented_formulas(combination):
    block = _block(combination).eval()
    x = _inputs()
    with torch.no_grad():
        out, routing = block(x, "all")
        mixed = sum(routing.weights[:, i : i + 1] * block.experts[i](x) for i in range(E))
    expected = F.normalize(mixed, dim=-1, eps=1e-6) + x if combination == "paper" else x + mixed
    torch.testing.assert_close(out, expected)
    if combination == "paper":
        with torch.no_grad():
            out, routing = block(x, "top1")
            chosen = torch.stack([block.experts[int(k)](x[i]) for i, k in enumerate(routing.experts)])
        # with one expert kept, its weight cancels in the normalisation
        torch.testing.assert_close(out, F.normalize(chosen, dim=-1) + x)


def test_noisy_top1_in_training_mode():
    block = _block().train()
    x = _inputs()
    gate = block.gate
    torch.manual_seed(7)
    _, routing = block(x)
    assert ((routing.weights != 0).sum(dim=1) == 1).all()
    # the same draw, by hand: softmax(z + N(0,1) * softplus(W_noise x)) masked to its arg-max
    torch.manual_seed(7)
    with torch.no_grad():
        z = gate.logits(F.relu(gate.hidden_layer(x)))
        noisy = torch.softmax(z + torch.randn_like(z) * F.softplus(gate.noise(x)), dim=-1)
    torch.testing.assert_close(routing.weights.detach(), top1_mask(noisy))
    torch.testing.assert_close(routing.probs.detach(), torch.softmax(z, dim=-1))
    # noise changes the routing: across draws the kept weight differs from the clean maximum,
    # and some texts go to another expert than the clean arg-max
    clean = torch.softmax(z, dim=-1)
    assert not torch.allclose(routing.weights.detach().max(dim=1).values, clean.max(dim=1).values)
    draws = torch.stack([block(x)[1].experts for _ in range(20)])
    assert (draws != clean.argmax(dim=1)).any()
    # in eval mode the routing is deterministic
    block.eval()
    assert torch.equal(block(x)[1].experts, block(x)[1].experts)


def test_random_gate_is_seeded():
    x = _inputs(64)
    first, second, other = RandomGate(E, seed=3), RandomGate(E, seed=3), RandomGate(E, seed=4)
    a1, a2 = first(x, "top1"), first(x, "top1")
    b1 = second(x, "top1")
    assert torch.equal(a1.experts, b1.experts) and torch.equal(a1.weights, b1.weights)  # same seed, same experts
    assert not torch.equal(a1.experts, a2.experts)  # the sequence goes on
    first.reseed()
    assert torch.equal(first(x, "top1").experts, a1.experts)  # reseeding restarts it
    assert not torch.equal(other(x, "top1").experts, a1.experts)  # another seed differs
    assert ((a1.weights != 0).sum(dim=1) == 1).all() and a1.probs is None
    assert set(a1.experts.tolist()) == set(range(E))
    # the same in training and inference, and the pooling is ignored
    first.reseed()
    first.train()
    assert torch.equal(first(x, "all").experts, a1.experts)


def test_random_gate_block_routes_like_its_gate():
    block = _block(gate="random", seed=5)
    x = _inputs()
    _, routing = block(x, "top1")
    assert torch.equal(routing.experts, RandomGate(E, seed=5)(x, "top1").experts)
    assert [id(p) for p in block.parameters()] == [
        id(p) for e in block.experts for p in e.parameters()
    ]  # no gate weights


@pytest.mark.parametrize("combination", ["paper", "learned"])
def test_adapter_has_one_expert_and_no_gate(combination):
    block = _block(combination, gate=None, num_experts=1)
    assert block.gate is None and len(block.experts) == 1
    x = _inputs()
    out, routing = block(x)
    assert torch.equal(routing.weights, torch.ones(N, 1))
    assert torch.equal(routing.experts, torch.zeros(N, dtype=torch.long))
    expert = block.experts[0](x)
    expected = F.normalize(expert, dim=-1, eps=1e-6) + x if combination == "paper" else x + expert
    torch.testing.assert_close(out, expected)
    with pytest.raises(ValueError, match="one expert"):
        SBMoE(H, 2, gate=None)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="combination"):
        SBMoE(H, E, "sum")
    with pytest.raises(ValueError, match="gate"):
        SBMoE(H, E, gate="softmax")
    with pytest.raises(ValueError, match="pooling"):
        _block()(_inputs(), "top2")


def test_load_balancing_loss():
    experts = torch.arange(8) % E
    uniform = Routing(weights=torch.zeros(8, E), experts=experts, probs=torch.full((8, E), 1 / E))
    assert float(load_balancing_loss(uniform)) == pytest.approx(1.0)
    collapsed = Routing(
        weights=torch.zeros(8, E),
        experts=torch.zeros(8, dtype=torch.long),
        probs=F.one_hot(torch.zeros(8, dtype=torch.long), E).float(),
    )
    assert float(load_balancing_loss(collapsed)) == pytest.approx(E)
    # by hand: shares f = (3/4, 1/4, 0, 0), mean probabilities P = (0.5, 0.3, 0.1, 0.1) -> 4 * (0.375 + 0.075)
    probs = torch.tensor([[0.5, 0.3, 0.1, 0.1]] * 4)
    mixed = Routing(weights=torch.zeros(4, E), experts=torch.tensor([0, 0, 0, 1]), probs=probs)
    assert float(load_balancing_loss(mixed)) == pytest.approx(4 * (0.75 * 0.5 + 0.25 * 0.3))
    with pytest.raises(ValueError, match="learned gate"):
        load_balancing_loss(Routing(weights=torch.ones(2, 1), experts=torch.zeros(2, dtype=torch.long)))


def test_routing_entropy():
    assert routing_entropy(torch.full((E,), 1 / E)) == pytest.approx(math.log(E))
    assert routing_entropy(torch.tensor([1.0, 0.0, 0.0])) == pytest.approx(0.0)
    assert routing_entropy(torch.tensor([0.5, 0.5, 0.0])) == pytest.approx(math.log(2))


def _backward_through(block: SBMoE, seed=0):
    block.train()
    torch.manual_seed(seed)
    queries, docs = _inputs(16, seed=1), _inputs(16, seed=2)
    q, _ = block(queries)
    d, _ = block(docs)
    loss = F.cross_entropy(q @ d.T, torch.arange(16))
    loss.backward()
    return loss


def test_paper_combination_gives_the_gate_no_gradient():
    block = _block("paper")
    _backward_through(block)
    gate_params = dict(block.gate.named_parameters())
    assert {"noise.weight", "noise.bias", "hidden_layer.weight", "logits.weight"} <= set(gate_params)
    for name, param in gate_params.items():
        assert param.grad is not None, name
        assert param.grad.abs().max() < 1e-6, (name, float(param.grad.abs().max()))
    for expert in block.experts:
        for param in expert.parameters():
            assert param.grad is not None
    assert max(float(p.grad.abs().max()) for p in block.experts.parameters()) > 1e-3


def test_learned_combination_trains_the_gate():
    block = _block("learned")
    _backward_through(block)
    for name in ("hidden_layer.weight", "logits.weight", "logits.bias", "noise.weight"):
        grad = dict(block.gate.named_parameters())[name].grad
        assert grad is not None and grad.abs().max() > 1e-4, name
    assert max(float(p.grad.abs().max()) for p in block.experts.parameters()) > 1e-3
