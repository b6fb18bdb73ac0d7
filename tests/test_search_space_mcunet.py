"""The MCUNet space: encodings, sampling operators, and the IR against the PyTorch module op by op."""

import json
import random

import optuna
import pytest
import torch
from torch import nn

from estimators.macs import op_macs, total_macs, total_params
from search_spaces import MCUNetArch, get_space

SPACE = get_space("mcunet", {"resolutions": [24, 32, 48], "depth_choices": [1, 2, 3], "head_channels": 256})


def torch_counts(model: nn.Module, resolution: int, in_channels: int):
    """MACs per conv / linear layer in execution order, counted by forward hooks, and deployable params
    (conv/linear weights plus one bias per output channel, i.e. after folding batch norm)."""
    macs = []

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            macs.append(out.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1])
        else:
            macs.append(m.in_features * m.out_features)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, in_channels, resolution, resolution))
    for h in handles:
        h.remove()
    params = sum(m.weight.numel() + m.weight.shape[0] for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    return macs, params


@pytest.mark.parametrize("seed", range(6))
def test_ir_matches_pytorch_op_by_op(seed):
    arch = SPACE.random(random.Random(seed))
    in_ch = 1 + seed % 3
    graph = SPACE.to_ir(arch, in_ch, 10)
    ir_macs = [op_macs(graph, op) for op in graph.ops if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    t_macs, t_params = torch_counts(SPACE.build_torch(arch, in_ch, 10), arch.resolution, in_ch)
    assert ir_macs == t_macs
    assert total_macs(graph) == sum(t_macs)
    assert total_params(graph) == t_params


def test_json_roundtrip_and_stable_hash():
    arch = SPACE.random(random.Random(1))
    again = SPACE.decode(json.loads(arch.to_json()))
    assert again == arch and again.hash == arch.hash
    assert isinstance(hash(arch), int)
    assert arch.hash != SPACE.random(random.Random(2)).hash


def test_decode_names_the_bad_field():
    d = SPACE.random(random.Random(0)).to_dict()
    d["resolution"] = 999
    with pytest.raises(ValueError, match="resolution=999"):
        SPACE.decode(d)
    d = SPACE.random(random.Random(0)).to_dict()
    d["bogus"] = 1
    with pytest.raises(ValueError, match="bogus"):
        SPACE.decode(d)


def test_mutate_and_crossover_stay_in_the_space():
    rng = random.Random(0)
    a, b = SPACE.random(rng), SPACE.random(rng)
    changed = 0
    for _ in range(50):
        m = SPACE.mutate(a, rng, prob=0.3)
        SPACE.check(m)
        changed += m != a
        c = SPACE.crossover(a, b, rng)
        SPACE.check(c)
        assert c.resolution in (a.resolution, b.resolution)
    assert changed > 40
    assert SPACE.mutate(a, rng, prob=0.0) == a


def test_sample_through_optuna_matches_params():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    arch = SPACE.sample(trial)
    assert SPACE.params(arch) == trial.params
    fixed = optuna.trial.FixedTrial(SPACE.params(arch))
    assert SPACE.sample(fixed) == arch


def test_smallest_and_largest_bound_the_space():
    small = SPACE.smallest()
    big = SPACE.largest(small)
    costs = [total_macs(SPACE.to_ir(SPACE.random(random.Random(s)), 1, 10)) for s in range(20)]
    assert total_macs(SPACE.to_ir(small, 1, 10)) <= min(costs)
    assert total_params(SPACE.to_ir(big, 1, 10)) >= max(total_params(SPACE.to_ir(SPACE.random(random.Random(s)), 1, 10))
                                                        for s in range(20))
