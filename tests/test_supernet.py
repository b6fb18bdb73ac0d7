"""The MCUNet super-network: sub-networks extracted from it compute what it computes with that arch active and
are `build_torch` models; training lowers the loss; checkpoints resume; the `supernet` evaluator scores archs."""

import dataclasses
import math
import random

import pytest
import torch
import yaml
from torch import nn

from search_spaces import get_space
from search_spaces.supernet import MCUNetSupernet, largest_arch
from tinynas.data import resize
from tinynas.errors import ConfigError
from tinynas.evaluators import EvaluationContext, make_evaluator
from tinynas.paths import CONF_DIR
from tinynas.supernet import SupernetConfig, checkpoint_path, train_supernet
from tinynas.train import TrainConfig, recalibrate_bn

# Tiny space with every elastic dimension; expand 1 exercises the blocks that drop their 1×1 expand.
SPACE = get_space("mcunet", {"resolutions": [8, 12], "widths": [0.5, 0.75, 1.0], "depth_choices": [1, 2],
                             "kernel_choices": [3, 5], "expand_choices": [1, 3, 4],
                             "stages": [[16, 2], [24, 1], [32, 2]], "stem_channels": 16,
                             "first_block_channels": 8, "head_channels": 32})
CFG = SupernetConfig(largest_epochs=1, epochs=1, subnets_per_batch=1, batch_size=32, lr=0.01,
                     max_train_samples=512, bn_calibration_samples=64)


pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.kernel_paths]


@pytest.fixture(scope="module")
def supernet():
    """A super-network with random (not initial) BN statistics and affine parameters, so slicing errors show."""
    torch.manual_seed(0)
    net = MCUNetSupernet(SPACE, 1, 10)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_()
                m.bias.normal_()
    return net


def archs(n=8):
    rng = random.Random(0)
    return [SPACE.smallest(), largest_arch(SPACE)] + [SPACE.random(rng) for _ in range(n - 2)]


@pytest.mark.parametrize("train_mode", [False, True])
def test_extracted_subnet_computes_what_the_active_supernet_computes(supernet, train_mode):
    for arch in archs():
        supernet.train(train_mode).set_active(arch)
        x = torch.randn(4, 1, arch.resolution, arch.resolution)
        sub = supernet.extract(arch)
        assert sub.training == train_mode
        with torch.no_grad():
            torch.testing.assert_close(sub(x), supernet(x), atol=1e-5, rtol=1e-5)
    supernet.eval()


def test_extracted_state_dict_loads_strictly_into_build_torch(supernet):
    for arch in archs():
        state = supernet.extract(arch).state_dict()
        fresh = SPACE.build_torch(arch, 1, 10)
        fresh.load_state_dict(state, strict=True)
        assert [(k, v.shape) for k, v in fresh.state_dict().items()] == [(k, v.shape) for k, v in state.items()]
        # and the weights are slices of the super-network's, not the fresh model's initialisation
        assert torch.equal(state["stem.0.weight"], supernet.stem[0].weight[:state["stem.0.weight"].shape[0]])


def test_supernet_state_dict_is_the_largest_arch_model(supernet):
    fresh = SPACE.build_torch(largest_arch(SPACE), 1, 10)
    fresh.load_state_dict(supernet.state_dict(), strict=True)


def test_kernel_is_the_centre_crop_and_depth_the_first_blocks(supernet):
    arch = SPACE.smallest()
    sub = supernet.extract(arch)
    dw_big = supernet.blocks[1].body[-2][0].weight  # stage 0, block 0: depthwise 5×5 at full width
    dw = sub.blocks[1].body[-2][0].weight
    assert dw.shape[-1] == 3 and torch.equal(dw, dw_big[:dw.shape[0], :, 1:4, 1:4])
    assert supernet.block_indices(arch) == [0, 1, 3, 5]  # first block, then block 0 of each 2-deep stage


def test_set_active_rejects_an_arch_outside_the_space(supernet):
    with pytest.raises(ValueError, match="kernels"):
        supernet.set_active(dataclasses.replace(SPACE.smallest(), kernels=((7,), (3,), (3,))))


def _loss(net, data, arch):
    """Cross-entropy of ``arch`` (BN recalibrated) on 256 training images."""
    x = torch.from_numpy(resize(data.train.x[:256], arch.resolution))
    sub = net.extract(arch)
    recalibrate_bn(sub, x, "cpu")
    with torch.no_grad():
        return nn.functional.cross_entropy(sub(x), torch.from_numpy(data.train.y[:256])).item()


def test_training_lowers_the_loss_of_largest_and_smallest(digits):
    torch.manual_seed(0)
    before = MCUNetSupernet(SPACE, 1, 10)
    state = train_supernet(SPACE, digits, dataclasses.replace(CFG, epochs=2), "cpu", seed=0)
    assert state.epochs == 3 and len(state.losses) == 3
    # One scale across phases (mean label cross-entropy per arch run): it falls epoch after epoch.
    assert state.losses[0] > state.losses[1] > state.losses[2], state.losses
    for arch in (largest_arch(SPACE), SPACE.smallest()):
        assert _loss(state.net, digits, arch) < 0.8 * _loss(before, digits, arch)


def test_checkpoint_resumes_after_the_last_epoch(tmp_path, digits):
    path = tmp_path / "supernet.pt"
    first = train_supernet(SPACE, digits, dataclasses.replace(CFG, epochs=0), "cpu", seed=0, checkpoint=path)
    assert first.epochs == 1 and path.is_file()
    resumed = train_supernet(SPACE, digits, CFG, "cpu", seed=0, checkpoint=path)
    assert resumed.epochs == 2 and resumed.losses[0] == first.losses[0]
    loaded = train_supernet(SPACE, digits, CFG, "cpu", seed=0, checkpoint=path)  # complete: loads only
    assert loaded.losses == resumed.losses
    for (k, a), b in zip(loaded.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.equal(a, b), k
    assert not all(torch.equal(a, b) for a, b in zip(first.net.parameters(), resumed.net.parameters()))


def test_a_checkpoint_trained_longer_than_asked_is_used_and_says_so(tmp_path, digits, caplog):
    path = tmp_path / "supernet.pt"
    train_supernet(SPACE, digits, CFG, "cpu", seed=0, checkpoint=path)
    with caplog.at_level("WARNING"):
        shorter = train_supernet(SPACE, digits, dataclasses.replace(CFG, epochs=0), "cpu", seed=0, checkpoint=path)
    assert shorter.epochs == 2
    assert "holds 2 epochs of training, more than the 1 asked" in caplog.text


def test_evaluator_scores_through_make_evaluator_and_shares_its_checkpoint(tmp_path, digits):
    ctx = EvaluationContext(SPACE, digits, "cpu", 0, TrainConfig(), run_dir=tmp_path)
    options = {f.name: getattr(CFG, f.name) for f in dataclasses.fields(CFG)}
    ev = make_evaluator({"name": "supernet", **options}, ctx)
    ev.prepare()
    assert checkpoint_path(tmp_path, SPACE, digits, CFG, 0).is_file()
    arch = SPACE.random(random.Random(3))
    attrs = ev.score(None, arch)
    assert 0.0 <= attrs["accuracy"] <= 1.0 and attrs["supernet_epochs"] == 2
    # A second worker loads the checkpoint instead of training: same weights, same score.
    other = make_evaluator({"name": "supernet", **options}, ctx)
    other.prepare()
    assert other.score(None, arch) == attrs
    # The score is the extracted build_torch model's validation accuracy after BN recalibration.
    sub = ev.subnet(arch)
    x = torch.from_numpy(resize(digits.val.x, arch.resolution))
    acc = (sub(x).argmax(1).numpy() == digits.val.y).mean()
    assert attrs["accuracy"] == pytest.approx(acc)


def test_evaluator_needs_the_mcunet_space(digits):
    ctx = EvaluationContext(get_space("mobilenetv3", {}), digits, "cpu", 0, TrainConfig())
    with pytest.raises(ConfigError, match="mcunet only.*'mobilenetv3'"):
        make_evaluator({"name": "supernet"}, ctx)


def test_evaluator_options_are_checked(digits):
    ctx = EvaluationContext(SPACE, digits, "cpu", 0, TrainConfig())
    with pytest.raises(ConfigError, match=r"unknown options \['epoch'\]"):
        make_evaluator({"name": "supernet", "epoch": 3}, ctx)
    with pytest.raises(ConfigError, match="optimizer='adam'"):
        make_evaluator({"name": "supernet", "optimizer": "adam"}, ctx)


def test_shipped_yaml_is_a_valid_config():
    cfg = yaml.safe_load((CONF_DIR / "evaluator" / "supernet.yaml").read_text())
    assert cfg.pop("name") == "supernet"
    # The shipped default trains progressively (the dataclass keeps it off, as progressive needs epochs ≥ 4) and
    # averages two super-networks (the dataclass trains one).
    assert SupernetConfig.from_cfg(cfg) == dataclasses.replace(SupernetConfig(), progressive=True, supernets=2)


def _differs(arch, other):
    """The elastic dimensions in which ``arch`` differs from ``other``."""
    out = {d for d in ("resolution", "width") if getattr(arch, d) != getattr(other, d)}
    if arch.depths != other.depths:
        out.add("depth")
    pairs = [(k, e, k2, e2) for s in range(len(arch.depths))
             for k, e, k2, e2 in zip(arch.kernels[s], arch.expands[s], other.kernels[s], other.expands[s])]
    out |= {"kernel"} if any(k != k2 for k, _, k2, _ in pairs) else set()
    out |= {"expand"} if any(e != e2 for _, e, _, e2 in pairs) else set()
    return out


def test_progressive_phases_split_the_epochs_and_unlock_kernel_depth_expand_then_width():
    cfg = dataclasses.replace(CFG, progressive=True, epochs=5)
    phases = cfg.phases()
    assert [n for _, n in phases] == [1, 1, 1, 1, 2] and sum(n for _, n in phases) == cfg.total_epochs
    assert [sorted(d) for d, _ in phases] == [[], ["kernel"], ["depth", "kernel"], ["depth", "expand", "kernel"],
                                              ["depth", "expand", "kernel", "resolution", "width"]]
    with pytest.raises(ConfigError, match="epochs=3 is too few for evaluator.progressive=true"):
        SupernetConfig.from_cfg({"progressive": True, "epochs": 3})


def test_last_phase_epochs_sets_the_width_phase_and_the_earlier_phases_share_the_rest():
    cfg = SupernetConfig.from_cfg({"progressive": True, "largest_epochs": 2, "epochs": 9, "last_phase_epochs": 4})
    phases = cfg.phases()
    assert [n for _, n in phases] == [2, 1, 2, 2, 4] and sum(n for _, n in phases) == cfg.total_epochs
    assert sorted(phases[-1][0]) == ["depth", "expand", "kernel", "resolution", "width"]
    for bad in ({"progressive": True, "epochs": 8, "last_phase_epochs": 6},
                {"progressive": True, "epochs": 8, "last_phase_epochs": 0},
                {"progressive": False, "epochs": 8, "last_phase_epochs": 2}):
        with pytest.raises(ConfigError, match=r"last_phase_epochs=\d needs evaluator.progressive=true and must be"):
            SupernetConfig.from_cfg(bad)


def test_progressive_training_samples_only_the_unlocked_dimensions(digits, monkeypatch):
    """Every arch the training runs, per epoch: the largest (teacher), else it differs from the largest only in the
    phase's unlocked dimensions, and over the phase each of them does vary."""
    import tinynas.supernet.training as training

    cfg = dataclasses.replace(CFG, progressive=True, epochs=4, subnets_per_batch=2, max_train_samples=256)
    seen, epoch_now = {}, [None]
    real_batch_archs, real_set_active = training.batch_archs, MCUNetSupernet.set_active

    def spy_batch_archs(space, c, epoch, rng):
        epoch_now[0] = epoch
        return real_batch_archs(space, c, epoch, rng)

    def spy_set_active(self, arch):
        seen.setdefault(epoch_now[0], []).append(arch)
        return real_set_active(self, arch)

    monkeypatch.setattr(training, "batch_archs", spy_batch_archs)
    monkeypatch.setattr(MCUNetSupernet, "set_active", spy_set_active)
    state = train_supernet(SPACE, digits, cfg, "cpu", seed=0)
    assert state.epochs == 5 and all(map(math.isfinite, state.losses))
    largest = largest_arch(SPACE)
    expected = [set(), {"kernel"}, {"kernel", "depth"}, {"kernel", "depth", "expand"},
                {"kernel", "depth", "expand", "width", "resolution"}]
    for epoch, unlocked in enumerate(expected):
        varied = set().union(*(_differs(a, largest) for a in seen[epoch]))
        if epoch == 0:  # the largest arch alone, at a random resolution per batch
            assert varied <= {"resolution"}
        else:
            assert varied == unlocked, (epoch, varied)


def test_finetune_steps_train_a_copy_of_the_subnet_and_score_deterministically(digits):
    ctx = EvaluationContext(SPACE, digits, "cpu", 0, TrainConfig())
    options = {f.name: getattr(CFG, f.name) for f in dataclasses.fields(CFG)}
    options.update(epochs=0, bn_calibration_samples=256)
    plain = make_evaluator({"name": "supernet", **options}, ctx)
    plain.prepare()
    tuned = make_evaluator({"name": "supernet", **options, "finetune_steps": 12, "finetune_lr": 0.005}, ctx)
    tuned.state = plain.state
    before = {k: v.clone() for k, v in plain.state.net.state_dict().items()}
    arch = SPACE.random(random.Random(5))
    calibration = plain.splits(arch.resolution)[0]
    x, y = torch.from_numpy(calibration.x), torch.from_numpy(calibration.y).long()

    def loss(model):
        with torch.no_grad():
            return nn.functional.cross_entropy(model.eval()(x), y).item()

    assert loss(tuned.subnet(arch)) < loss(plain.subnet(arch))  # it trained on those images
    assert tuned.score(None, arch) == tuned.score(None, arch)  # seeded: the same arch, the same score
    for k, v in plain.state.net.state_dict().items():  # on a copy: the super-network is untouched
        assert torch.equal(v, before[k]), k


def test_supernets_ensemble_scores_the_mean_of_one_supernet_per_seed(tmp_path, digits):
    options = {f.name: getattr(CFG, f.name) for f in dataclasses.fields(CFG)}
    options.update(epochs=0)
    ensemble = make_evaluator({"name": "supernet", **options, "supernets": 2},
                              EvaluationContext(SPACE, digits, "cpu", 0, TrainConfig(), run_dir=tmp_path))
    ensemble.prepare()
    assert {p.name for p in tmp_path.glob("*.pt")} == {checkpoint_path(tmp_path, SPACE, digits, CFG, s).name
                                                       for s in (0, 1)}
    singles = []
    for seed in (0, 1):  # each member alone: a one-supernet evaluator of that seed, same calibration images
        single = make_evaluator({"name": "supernet", **options}, EvaluationContext(SPACE, digits, "cpu", 0,
                                                                                   TrainConfig()))
        single.state = train_supernet(SPACE, digits, SupernetConfig.from_cfg(options), "cpu", seed=seed)
        singles.append(single)
    for arch in archs(4):
        expected = (singles[0].score(None, arch)["accuracy"] + singles[1].score(None, arch)["accuracy"]) / 2
        assert ensemble.score(None, arch)["accuracy"] == pytest.approx(expected)
    with pytest.raises(ConfigError, match="supernets=0 must be ≥ 1"):
        SupernetConfig.from_cfg({"supernets": 0})
