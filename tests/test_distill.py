"""Distillation: the Hinton loss against its formula computed in numpy, feature distillation's stage matching
against the shapes forward hooks see, adapters trained and hooks removed; `tinynas distill` side by side,
resumed from its run dir, and its config errors."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from search_spaces import get_space
from tinynas.data import Split
from tinynas.distill import DistillLoss, distill, stage_outputs
from tinynas.train import TrainConfig, fit, seed_everything

OPTIONS = {"resolutions": [32], "widths": [0.3, 0.5], "depth_choices": [1, 2], "kernel_choices": [3, 5],
           "expand_choices": [3, 4], "head_channels": 32}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def models():
    space = get_space("mcunet", OPTIONS)
    student = space.smallest()
    seed_everything(0)
    return space.build_torch(student, 1, 4), space.build_torch(space.largest(student), 1, 4)


def log_softmax(z):
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def test_hinton_loss_matches_its_formula():
    g = torch.Generator().manual_seed(0)
    s_logits, t_logits = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g) * 3
    labels = torch.tensor([0, 1, 2, 3, 0])
    teacher = nn.Linear(4, 4)
    with torch.no_grad():
        teacher.weight.copy_(torch.eye(4)), teacher.bias.zero_()
    T, alpha = 3.0, 0.6
    got = DistillLoss(nn.Identity(), teacher, T, alpha)(s_logits, labels, t_logits)  # teacher(inputs) = t_logits
    ls_s, ls_t = log_softmax(s_logits.numpy() / T), log_softmax(t_logits.numpy() / T)
    kl = (np.exp(ls_t) * (ls_t - ls_s)).sum(1).mean()
    ce = -log_softmax(s_logits.numpy())[np.arange(5), labels.numpy()].mean()
    assert float(got) == pytest.approx(alpha * T * T * kl + (1 - alpha) * ce, rel=1e-5)


def test_stage_outputs_are_the_last_block_at_each_resolution():
    student, _ = models()
    sizes = []
    hooks = [b.register_forward_hook(lambda m, i, o: sizes.append((m, tuple(o.shape[2:])))) for b in student.blocks]
    student.eval()(torch.zeros(1, 1, 32, 32))  # every strided block halves the size
    for h in hooks:
        h.remove()
    expected = [m for (m, s), nxt in zip(sizes, sizes[1:] + [(None, None)]) if s != nxt[1]]
    assert stage_outputs(student) == expected


def test_feature_term_is_the_adapted_mse_and_adapters_train():
    student, teacher = models()
    x = torch.randn(8, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 4, (8,), generator=torch.Generator().manual_seed(2))
    loss = DistillLoss(student, teacher, 4.0, 0.5, feature_weight=2.0, sample_input=x[:2])
    plain = DistillLoss(nn.Identity(), teacher, 4.0, 0.5)
    student_stages, teacher_stages = stage_outputs(student), stage_outputs(teacher)
    assert len(loss.pairs) == len(student_stages) == len(teacher_stages)
    seen = {}
    named = [(("s", i), m) for i, m in enumerate(student_stages)] + [(("t", i), m) for i, m in enumerate(teacher_stages)]
    handles = [m.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, o)) for k, m in named]
    student.train(), teacher.eval()
    logits = student(x)
    total = loss(logits, y, x)
    for h in handles:
        h.remove()
    mse = np.mean([float(((a(seen["s", i]).detach() - seen["t", j]) ** 2).mean()) for a, (i, j) in zip(loss.adapters, loss.pairs)])
    assert total.item() == pytest.approx(plain(logits, y, x).item() + 2.0 * mse, rel=1e-5)
    for a, (i, j) in zip(loss.adapters, loss.pairs):
        assert (a.in_channels, a.out_channels) == (seen["s", i].shape[1], seen["t", j].shape[1])
    assert not {id(p) for p in loss.parameters()} & {id(p) for p in teacher.parameters()}, "the teacher never trains"

    split = Split(x.numpy().repeat(2, 0), y.numpy().repeat(2))
    before = [a.weight.detach().clone() for a in loss.adapters]
    teacher_before = [p.detach().clone() for p in teacher.parameters()]
    fit(student, split, TrainConfig(epochs=1, batch_size=8), torch.device("cpu"), loss_fn=loss, teacher=teacher)
    assert all(not torch.equal(b, a.weight) for b, a in zip(before, loss.adapters)), "adapters train with the student"
    assert all(torch.equal(b, p) for b, p in zip(teacher_before, teacher.parameters()))
    loss.close()
    distill(student, teacher, split, split, TrainConfig(epochs=1, batch_size=8), 4.0, 0.5, torch.device("cpu"),
            feature_weight=2.0)
    assert not any(m._forward_hooks for m in [*student.modules(), *teacher.modules()]), "hooks removed afterwards"


TINY = ["dataset=digits", "++dataset.max_train_samples=200", "search_space.options.resolutions=[8]",
        "search_space.options.widths=[0.3]", "search_space.options.depth_choices=[1]",
        "search_space.options.head_channels=32", "train.batch_size=50", "distill.teacher.epochs=1",
        "distill.student_epochs=1", "run_id=tiny"]


@pytest.fixture
def arch_file(tmp_path):
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"space": "mcunet", "resolution": 8, "width": 0.3, "depths": [1] * 5,
                                "kernels": [[3]] * 5, "expands": [[6]] * 5}))
    return path


@pytest.mark.slow
def test_distill_command_side_by_side_prune_qat_and_resume(tinynas_cli, arch_file, tmp_path):
    args = ["distill", f"arch={arch_file}", *TINY, "distill.feature_weight=0.5", "distill.prune.enabled=true",
            "distill.prune.target.ratio=0.8", "distill.prune.epochs=1", "distill.qat.enabled=true"]
    first = tinynas_cli(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    run = tmp_path / "runs" / "distill" / "tiny"
    metrics = json.loads((run / "metrics.json").read_text())
    for k in ("teacher", "student_without_kd", "student_with_kd"):
        assert 0 <= metrics[f"{k}_test_accuracy"] <= 1
        assert f"| {k.replace('_', ' ').replace('kd', 'KD')} |" in first.stderr
    p = metrics["pruning"]
    assert p["after"]["model_bytes"] <= 0.8 * p["before"]["model_bytes"]
    assert json.loads((run / "pruned_arch.json").read_text()) == p["arch"]
    assert sorted(f.name for f in run.glob("*.train.pt")) == ["pruned.train.pt", "qat.train.pt", "student.train.pt",
                                                              "student_no_kd.train.pt", "teacher.train.pt"]
    again = tinynas_cli(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("resuming training") == 5
    assert json.loads((run / "metrics.json").read_text()) == metrics


@pytest.mark.slow
def test_bad_prune_target_is_one_line_before_training(tinynas_cli, arch_file):
    p = tinynas_cli("distill", f"arch={arch_file}", *TINY, "distill.prune.enabled=true")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert "distill.prune.target={} must set at least one of flash_bytes" in p.stderr
    assert "training teacher" not in p.stderr
