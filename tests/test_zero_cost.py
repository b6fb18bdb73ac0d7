"""evaluator=zero_cost: SynFlow against a hand-computed value, NASWOT's kernel by hand and its invariants,
determinism for a seed, the params / MACs baselines against the IR's counts, and the error for an unknown proxy."""

import math
import random

import pytest
import torch
from torch import nn

from estimators import MCU
from estimators.macs import total_macs, total_params
from search_spaces import get_space
from search_spaces.torch_blocks import HardSwish
from tinynas.errors import ConfigError
from tinynas.evaluators import EvaluationContext, make_evaluator
from tinynas.evaluators.zero_cost import PROXIES, log_abs_det, naswot, naswot_kernel, synflow
from tinynas.train import TrainConfig

SPACE = get_space("mcunet", {"resolutions": [8, 16], "widths": [0.3, 0.5, 1.0], "depth_choices": [1],
                             "head_channels": 64})


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def evaluator(digits, proxy, seed=0, **options):
    ctx = EvaluationContext(SPACE, digits, "cpu", seed, TrainConfig())
    return make_evaluator({"name": "zero_cost", "proxy": proxy, "batch_size": 16, **options}, ctx)


def tiny_net(a, b, c, d, act):
    """1×1 conv (1→2 channels, weights a, b), batch norm, ``act``, global average pool, linear (c, d) → 1."""
    net = nn.Sequential(nn.Conv2d(1, 2, 1, bias=False), nn.BatchNorm2d(2), act, nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([a, b]).view(2, 1, 1, 1))
        net[5].weight.copy_(torch.tensor([[c, d]]))
    return net


def test_synflow_of_a_tiny_network_by_hand():
    # Linearised: |a|=7, |b|=2, |c|=0.5, |d|=3, batch norm gone, ReLU6 → ReLU. An all-ones input gives
    # R = |a||c| + |b||d| = 3.5 + 6 = 9.5. Each layer's Σ θ·∂R/∂θ is R itself (R is linear in each layer's
    # weights): the conv's 7·0.5 + 2·3 and the linear's 0.5·7 + 3·2. SynFlow = 2R = 19. (Kept as ReLU6, the
    # channel at 7 would saturate and give 15; batch norm over one constant image would give 0.)
    net = tiny_net(-7.0, 2.0, 0.5, -3.0, nn.ReLU6())
    before = [p.clone() for p in net.parameters()]
    assert synflow(net, (1, 2, 2)) == pytest.approx(19.0, rel=1e-12)
    assert all(torch.equal(p, q) for p, q in zip(before, net.parameters()))  # the model is left as it was
    assert synflow(tiny_net(-7.0, 2.0, 0.5, -3.0, HardSwish()), (1, 3, 3)) == pytest.approx(19.0, rel=1e-12)


def test_naswot_kernel_by_hand():
    codes = torch.tensor([[1, 0, 1], [0, 1, 1]])
    # Agreements: each code with itself 3, with the other 1 (the last unit) → K = [[3, 1], [1, 3]], det 8.
    assert naswot_kernel(codes).tolist() == [[3.0, 1.0], [1.0, 3.0]]
    assert log_abs_det(naswot_kernel(codes)) == pytest.approx(math.log(8))
    assert log_abs_det(naswot_kernel(torch.tensor([[1, 0], [1, 0]]))) == -math.inf  # equal codes: singular


def test_naswot_invariants_on_a_real_network(digits):
    arch = SPACE.random(random.Random(1))
    ev = evaluator(digits, "naswot")
    x, _ = ev.batch(arch.resolution)

    def score(batch):
        torch.manual_seed(0)
        return naswot(SPACE.build_torch(arch, 1, 10), batch)

    base = score(x)
    assert math.isfinite(base)
    # K_H of a permuted batch is the permuted K_H: same determinant.
    assert score(x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))]) == pytest.approx(base,
                                                                                                     rel=1e-9)
    # Two equal inputs have equal codes: K_H is singular.
    assert score(torch.cat([x[:-1], x[:1]])) == -math.inf
    # A net with no rectifier has no codes to compare.
    with pytest.raises(ValueError, match="ReLU-like"):
        naswot(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), x)


def test_naswot_hooks_hard_swish_networks(digits):
    v3 = get_space("mobilenetv3", {"resolutions": [16]})
    arch = v3.random(random.Random(0))
    model = v3.build_torch(arch, 1, 10)
    assert any(isinstance(m, HardSwish) for m in model.modules())
    ctx = EvaluationContext(v3, digits, "cpu", 0, TrainConfig())
    ev = make_evaluator({"name": "zero_cost", "proxy": "naswot", "batch_size": 16}, ctx)
    assert math.isfinite(ev.value(arch))
    assert not any(m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("proxy", ["synflow", "naswot", "grad_norm"])
def test_proxies_are_deterministic_for_a_seed(digits, proxy):
    arch = SPACE.random(random.Random(2))
    a, b = evaluator(digits, proxy, seed=3).value(arch), evaluator(digits, proxy, seed=3).value(arch)
    assert a == b and math.isfinite(a)
    assert evaluator(digits, proxy, seed=4).value(arch) != a  # other weights (and batch): another score


def test_params_and_macs_are_the_ir_counts_and_grow_with_width(digits):
    narrow, wide = (SPACE.decode({"resolution": 16, "width": w, "depths": [1] * 5, "kernels": [[3]] * 5,
                                  "expands": [[6]] * 5}) for w in (0.3, 1.0))
    for proxy, count in (("params", total_params), ("macs", total_macs)):
        ev = evaluator(digits, proxy)
        assert ev.value(wide) > ev.value(narrow)
        assert ev.value(wide) == count(SPACE.to_ir(wide, 1, 10))


def test_unknown_proxy_and_bad_batch_are_named(digits):
    with pytest.raises(ConfigError, match="evaluator.proxy='jacov' is unknown; allowed: " + ", ".join(PROXIES)):
        evaluator(digits, "jacov")
    with pytest.raises(ConfigError, match="batch_size=1 must be at least 2"):
        evaluator(digits, "naswot", batch_size=1)
    with pytest.raises(ConfigError, match=r"evaluator=zero_cost: unknown options \['temperature'\]"):
        evaluator(digits, "naswot", temperature=1)


def test_zero_cost_study_records_the_proxy_as_accuracy(tmp_path, digits):
    import optuna

    from tinynas.search import Budgets, CandidateObjective, pareto_trials, run_study
    from tinynas.storage import make_storage

    storage, _ = make_storage(None, tmp_path)
    study = optuna.create_study(study_name="z", storage=storage, directions=["maximize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    ev = evaluator(digits, "params")
    mcu = MCU("tiny", "board", "cortex-m4f", 100, 64 * 1024, 64 * 1024, 50.0)
    run_study(study, CandidateObjective(SPACE, digits, mcu, "tflm", Budgets(10**9, 10**9), ev,
                                        ["accuracy", "sram"]), 4)
    for t in study.trials:
        assert t.user_attrs["accuracy"] == t.values[0] == t.user_attrs["params"] == ev.value(
            SPACE.decode(t.user_attrs["arch"]))
        assert t.user_attrs["scored"] and t.user_attrs["evaluator"] == "zero_cost"
    assert pareto_trials(study)
