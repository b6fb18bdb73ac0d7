"""Quantization-aware fine-tuning: the fake quantizers against numpy's int8 arithmetic, the instrumentation
leaves a plain float model, and a QAT-tuned model still exports through onnx2tf and runs in TFLite Micro."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from search_spaces import get_space
from tinynas.data import at_resolution, load_dataset
from tinynas.qat import ActivationFakeQuant, WeightFakeQuant, prepare_qat, qat_finetune, quantized_outputs
from tinynas.train import TrainConfig, accuracy, fit, seed_everything

from conftest import ROOT

RES = 8

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_weight_fake_quant_is_per_channel_symmetric_int8():
    w = torch.randn(6, 3, 3, 3) * torch.arange(1, 7).view(6, 1, 1, 1)
    got = WeightFakeQuant()(w).numpy()
    wn = w.numpy()
    scale = np.abs(wn).reshape(6, -1).max(1) / 127
    expect = np.clip(np.round(wn / scale[:, None, None, None]), -127, 127) * scale[:, None, None, None]
    np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-7)
    assert all(len(np.unique(got[c])) <= 255 for c in range(6))


def test_activation_fake_quant_uses_the_observed_range_with_zero_exact():
    hook, m = ActivationFakeQuant(), torch.nn.ReLU()
    x = torch.linspace(0.5, 6.0, 1000)
    y = hook(m.train(), (x,), x)
    scale = 6.0 / 255  # the range is widened to include 0: [0, 6]
    np.testing.assert_allclose(y.numpy(), np.round(x.numpy() / scale) * scale, atol=1e-6)
    assert float(hook(m.eval(), (x,), torch.zeros(3)).abs().max()) == 0.0


def small_model(space, arch):
    seed_everything(0)
    return space.build_torch(arch, 1, 10)


@pytest.fixture(scope="module")
def trained():
    data = load_dataset(OmegaConf.to_container(OmegaConf.load(ROOT / "conf/dataset/digits.yaml")))
    train, test = at_resolution(data.train, RES), at_resolution(data.test, RES)
    space = get_space("mcunet", {"resolutions": [RES], "widths": [0.3], "depth_choices": [1], "head_channels": 64})
    arch = space.smallest()
    model = small_model(space, arch)
    fit(model, train, TrainConfig(epochs=3, batch_size=64, optimizer="adamw", lr=0.01, max_train_samples=640),
        torch.device("cpu"))
    return space, arch, model, train, test


def test_instrumentation_covers_every_int8_tensor_and_is_removed():
    space = get_space("mcunet", {"resolutions": [RES], "widths": [0.3], "depth_choices": [1, 2]})
    arch = space.largest(space.smallest())  # depth 2: blocks with residual adds
    fresh = small_model(space, arch)
    n_convs = sum(isinstance(m, torch.nn.Conv2d) for m in fresh.modules())
    # One conv-BN-act unit per conv, one classifier, and the residual blocks' adds.
    n_res = sum(getattr(m, "residual", False) is True for m in fresh.modules())
    assert len(quantized_outputs(fresh)) == n_convs + 1 + n_res
    qat = prepare_qat(fresh)
    assert any(m._forward_hooks for m in fresh.modules())
    assert sum(k.startswith("qat_observers.") for k in fresh.state_dict()) == 2 * len(quantized_outputs(fresh))
    assert n_res > 0
    qat.remove()
    assert not any(m._forward_hooks for m in fresh.modules())
    assert fresh.state_dict().keys() == small_model(space, arch).state_dict().keys()


@pytest.mark.slow
def test_qat_model_exports_and_runs_in_tflm(trained, tmp_path):
    from tinynas.export import export_model

    space, arch, model, train, test = trained
    before = accuracy(model, test, torch.device("cpu"))
    qat_finetune(model, train, TrainConfig(epochs=1, batch_size=64, optimizer="adamw", lr=1e-3), torch.device("cpu"))
    after = accuracy(model, test, torch.device("cpu"))
    assert after > 0.5 and after > before - 0.1, (before, after)
    result = export_model(model, train.x[:64], tmp_path / "export", test=(test.x, test.y))
    assert result.fp32_accuracy == pytest.approx(after, abs=1e-6)
    assert abs(result.int8_accuracy_tflm - after) < 0.05
