"""Checks every search-space family must pass, shared by the tests/test_search_space_<name>.py files.

Ground truths: PyTorch forward hooks (MACs per layer, deployable params), Optuna's own trial record, and
for exports the TFLite file (op kinds) and TensorFlow Lite Micro's interpreter (arena head, outputs).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import optuna
import torch
from torch import nn

from estimators.macs import op_macs, total_macs, total_params

WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def torch_counts(model: nn.Module, input_chw: tuple[int, ...]):
    """MACs per conv / linear layer in execution order (forward hooks), deployable params (weights plus
    one bias per output channel, i.e. after folding batch norm) and the output shape."""
    macs = []

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            macs.append(out.numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1])
        else:
            macs.append(m.in_features * m.out_features)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(1, *input_chw))
    for h in handles:
        h.remove()
    params = sum(m.weight.numel() + m.weight.shape[0] for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    return macs, params, tuple(out.shape)


def chw(space, arch, in_channels: int) -> tuple[int, int, int]:
    h, w, c = space.input_shape(arch, in_channels)
    return c, h, w


def check_ir_matches_torch(space, arch, in_channels: int, num_classes: int) -> None:
    graph = space.to_ir(arch, in_channels, num_classes)
    ir_macs = [op_macs(graph, op) for op in graph.ops if op.kind in WEIGHTED]
    t_macs, t_params, out_shape = torch_counts(space.build_torch(arch, in_channels, num_classes),
                                               chw(space, arch, in_channels))
    assert ir_macs == t_macs
    assert total_macs(graph) == sum(t_macs)
    assert total_params(graph) == t_params
    assert out_shape == (1, num_classes) == graph.tensors[graph.outputs[0]].shape
    assert graph.tensors[graph.inputs[0]].shape == (1, *space.input_shape(arch, in_channels))


def check_json_roundtrip(space, seed: int = 1) -> None:
    arch = space.random(random.Random(seed))
    again = space.decode(json.loads(arch.to_json()))
    assert again == arch and again.hash == arch.hash
    assert space.decode(arch.to_json()) == arch
    assert isinstance(hash(arch), int)


def check_mutate_and_crossover(space, rounds: int = 40) -> None:
    rng = random.Random(0)
    a, b = space.random(rng), space.random(rng)
    changed = 0
    for _ in range(rounds):
        m = space.mutate(a, rng, prob=0.3)
        space.check(m)
        changed += m != a
        c = space.crossover(a, b, rng)
        space.check(c)
        pa, pb, pc = space.params(a), space.params(b), space.params(c)
        for key in set(pa) & set(pb) & set(pc):  # every choice both parents have comes from one of them
            assert pc[key] in (pa[key], pb[key]), key
    assert changed > rounds * 0.8
    assert space.mutate(a, rng, prob=0.0) == a
    assert space.crossover(a, a, rng) == a


def check_optuna(space, seeds=range(3)) -> None:
    for seed in seeds:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        trial = study.ask()
        arch = space.sample(trial)
        space.check(arch)
        assert space.params(arch) == trial.params
        assert space.sample(optuna.trial.FixedTrial(space.params(arch))) == arch


def check_bounds(space, in_channels: int = 1, num_classes: int = 10, samples: int = 15) -> None:
    small = space.smallest()
    big = space.largest(small)
    space.check(small), space.check(big)
    archs = [space.random(random.Random(s)) for s in range(samples)]
    assert total_macs(space.to_ir(small, in_channels, num_classes)) <= min(
        total_macs(space.to_ir(a, in_channels, num_classes)) for a in archs)
    assert total_params(space.to_ir(big, in_channels, num_classes)) >= max(
        total_params(space.to_ir(a, in_channels, num_classes)) for a in archs)


def check_export_matches_ir(space, arch, in_channels: int, num_classes: int, out_dir, seed: int = 0) -> None:
    """Export ``arch`` (PyTorch → ONNX → onnx2tf int8) and run it in TFLM: the .tflite has to_ir's ops, and
    the tflm-reference estimate of to_ir's graph is TFLM's measured arena head, byte for byte."""
    import numpy as np

    from estimators.mcu import MCU
    from estimators.sram import estimate_sram
    from estimators.tflite_reader import read_tflite
    from tinynas.export import export_model
    from tinynas.tflm import measure_arena, run_tflm

    torch.manual_seed(seed)
    model = space.build_torch(arch, in_channels, num_classes)
    for m in model.modules():
        if isinstance(m, nn.Linear):  # a trained FC has a bias (onnx2tf drops a zero one)
            nn.init.normal_(m.bias)
    calib = np.random.default_rng(seed).standard_normal((16, *chw(space, arch, in_channels))).astype(np.float32)
    result = export_model(model, calib, out_dir)
    graph = space.to_ir(arch, in_channels, num_classes)
    # RESHAPE aliases its input in TFLM; the converter drops a flatten that feeds a FULLY_CONNECTED.
    kinds = [op.kind for op in read_tflite(result.tflite_path).ops]
    assert kinds == [op.kind for op in graph.ops if op.kind != "RESHAPE" or op.kind in kinds]
    host = MCU.from_yaml(Path(__file__).resolve().parents[1] / "conf" / "mcu" / "host.yaml")
    assert estimate_sram(graph, "tflm-reference", host).activation_bytes == measure_arena(result.tflite_path).head_bytes
    x = np.clip(np.round(calib[:1].transpose(0, 2, 3, 1) / result.input_scale + result.input_zero_point), -128, 127)
    out = run_tflm(result.tflite_path, x.astype(np.int8))
    assert out.shape == (1, num_classes)
