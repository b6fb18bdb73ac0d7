"""Resumable training: a run killed after an epoch continues from its checkpoint and ends with exactly the
weights of an uninterrupted run (ground truth: that uninterrupted run); and the schedules' learning rates."""

import random

import numpy as np
import pytest
import torch

from search_spaces import get_space
from tinynas.data import Split
from tinynas.errors import ConfigError
from tinynas.train import TrainConfig, fit, make_scheduler, seed_everything

CFG = TrainConfig(epochs=2, batch_size=32, optimizer="sgd", lr=0.05, augment=True, max_train_samples=96)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Killed(RuntimeError):
    pass


def data() -> Split:
    rng = np.random.default_rng(0)
    return Split(rng.standard_normal((128, 1, 8, 8)).astype(np.float32), rng.integers(0, 4, 128).astype(np.int64))


def model():
    space = get_space("mcunet", {"resolutions": [8], "widths": [0.3], "depth_choices": [1], "head_channels": 32})
    seed_everything(3)
    return space.build_torch(space.smallest(), 1, 4)


def state_of(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


@pytest.fixture(scope="module")
def uninterrupted():
    m = model()
    history = fit(m, data(), CFG, torch.device("cpu"), seed=5)
    return state_of(m), history


def test_killed_run_resumes_to_the_uninterrupted_weights(uninterrupted, tmp_path):
    ckpt = tmp_path / "train.pt"

    def kill(epoch, loss):
        if epoch == 0:
            raise Killed

    with pytest.raises(Killed):
        fit(model(), data(), CFG, torch.device("cpu"), seed=5, on_epoch_end=kill, checkpoint=ckpt)
    assert ckpt.is_file() and not ckpt.with_name(ckpt.name + ".tmp").exists()
    # Disturb every global RNG as a fresh process would: the checkpoint must restore them.
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    seen = []
    resumed = model()
    history = fit(resumed, data(), CFG, torch.device("cpu"), seed=5, checkpoint=ckpt,
                  on_epoch_end=lambda e, loss: seen.append(e))
    assert seen == [1], "only the second epoch runs again"
    expected, expected_history = uninterrupted
    assert history == pytest.approx(expected_history)
    got = state_of(resumed)
    assert got.keys() == expected.keys()
    for k in expected:
        assert torch.equal(got[k], expected[k]), k


def test_finished_checkpoint_trains_nothing_and_other_settings_start_over(uninterrupted, tmp_path):
    ckpt = tmp_path / "train.pt"
    fit(model(), data(), CFG, torch.device("cpu"), seed=5, checkpoint=ckpt)
    again, seen = model(), []
    fit(again, data(), CFG, torch.device("cpu"), seed=5, checkpoint=ckpt, on_epoch_end=lambda e, _: seen.append(e))
    assert seen == []
    assert all(torch.equal(v, uninterrupted[0][k]) for k, v in state_of(again).items())
    other = []
    fit(model(), data(), CFG, torch.device("cpu"), seed=6, checkpoint=ckpt, on_epoch_end=lambda e, _: other.append(e))
    assert other == [0, 1], "a checkpoint of another seed is not resumed"


def test_early_stop_is_remembered(tmp_path):
    ckpt, seen = tmp_path / "train.pt", []
    fit(model(), data(), CFG, torch.device("cpu"), seed=5, checkpoint=ckpt, on_epoch_end=lambda e, _: False)
    fit(model(), data(), CFG, torch.device("cpu"), seed=5, checkpoint=ckpt, on_epoch_end=lambda e, _: seen.append(e))
    assert seen == []


def lrs(schedule, warmup, epochs=4, steps=10):
    cfg = TrainConfig(epochs=epochs, lr=0.1, schedule=schedule, warmup_epochs=warmup)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched, out = make_scheduler(opt, cfg, steps), []
    for _ in range(epochs * steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_schedules_follow_their_formulas():
    const = lrs("constant", 1)
    assert const[:10] == pytest.approx([0.1 * (i + 1) / 11 for i in range(10)])  # linear warmup over 1 epoch
    assert const[10:] == pytest.approx([0.1] * 30)
    cos = lrs("cosine", 0)
    assert cos[0] == pytest.approx(0.1) and cos[20] == pytest.approx(0.05)  # half-way: half the peak
    assert all(a >= b for a, b in zip(cos, cos[1:]))
    one = lrs("onecycle", 2)
    assert max(range(40), key=one.__getitem__) in (19, 20)  # the peak sits at the end of 2 warmup epochs


@pytest.mark.parametrize("option, needle", [({"schedule": "step"}, "onecycle, cosine, constant"),
                                            ({"warmup_epochs": 5}, "warmup_epochs=5"),
                                            ({"optimizer": "lion"}, "sgd, adamw")])
def test_bad_train_options_name_the_value_and_the_choices(option, needle):
    with pytest.raises(ConfigError, match=needle):
        TrainConfig.from_cfg({"epochs": 2, **option})


def test_integer_and_float_settings_are_the_same_settings():
    """`lr: 1` and `lr: 1.0` must not make a resumable checkpoint look foreign."""
    assert TrainConfig.from_cfg({"lr": 1, "warmup_epochs": 0}) == TrainConfig.from_cfg({"lr": 1.0, "warmup_epochs": 0.0})
