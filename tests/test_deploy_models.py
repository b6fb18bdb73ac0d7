"""Deployed accuracies: teacher, student without KD, student with KD and the exported fp32 model are each
measured on their own model. The teacher and the two students are three different models (different weights,
different outputs); the exported model is the KD student unless pruning or QAT changed it."""

from __future__ import annotations

import copy

import pytest
import torch
import yaml

from estimators import load_mcu
from search_spaces import get_space
from tinynas import deploy as deploy_mod
from tinynas.paths import CONF_DIR, MCU_DIR
from tinynas.report import summary_markdown
from tinynas.train import TrainConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_fingerprint_follows_the_weights():
    model = torch.nn.Linear(3, 2)
    same = copy.deepcopy(model)
    assert deploy_mod.model_fingerprint(model) == deploy_mod.model_fingerprint(same)
    with torch.no_grad():
        same.bias[0] += 1e-3
    assert deploy_mod.model_fingerprint(model) != deploy_mod.model_fingerprint(same)


def test_each_accuracy_is_measured_on_its_own_model(digits, monkeypatch, tmp_path):
    ss = yaml.safe_load((CONF_DIR / "search_space" / "mcunet_mnist.yaml").read_text())
    space = get_space(ss["name"], ss["options"])
    arch = space.smallest()
    dcfg = yaml.safe_load((CONF_DIR / "distill" / "default.yaml").read_text())
    dcfg.update(student_epochs=1, max_train_samples=256, teacher={**dcfg["teacher"], "epochs": 1})
    measured = []  # (model object, its fingerprint, its test logits) per accuracy() call, in order
    real_accuracy = deploy_mod.accuracy

    def recording_accuracy(model, split, device):
        model.eval()
        with torch.no_grad():
            logits = model(torch.as_tensor(split.x[:64]))
        measured.append((model, deploy_mod.model_fingerprint(model), logits))
        return real_accuracy(model, split, device)

    def no_export(model, *args, **kwargs):  # the int8 export is tested elsewhere; only the models matter here
        return None, None, None

    monkeypatch.setattr(deploy_mod, "accuracy", recording_accuracy)
    monkeypatch.setattr(deploy_mod, "export_checked", no_export)
    dep = deploy_mod.deploy(arch, space, digits, load_mcu("stm32f746", MCU_DIR), load_mcu("host", MCU_DIR), "tflm",
                            TrainConfig(epochs=1, batch_size=64), dcfg, {}, tmp_path, "cpu", seed=0)
    (teacher, t_fp, t_out), (kd, kd_fp, kd_out), (no_kd, nk_fp, nk_out), (final, f_fp, _) = measured
    assert dep.fingerprints == {"teacher": t_fp, "student_kd": kd_fp, "student_no_kd": nk_fp, "exported": f_fp}
    assert len({t_fp, kd_fp, nk_fp}) == 3 and len({id(teacher), id(kd), id(no_kd)}) == 3
    for a, b in ((t_out, kd_out), (t_out, nk_out), (kd_out, nk_out)):
        assert not torch.allclose(a, b)  # different models answer differently
    assert final is kd and f_fp == kd_fp  # no pruning, no QAT: the exported model is the KD student
    assert dep.test_samples == len(digits.test.y)


def test_summary_names_the_model_behind_each_accuracy():
    deployed = {"trial": 3, "teacher_accuracy": 0.969, "student_no_kd_accuracy": 0.969, "student_kd_accuracy": 0.969,
                "fp32_accuracy": 0.969, "int8_accuracy": 0.96, "qat": False, "tflite_bytes": 1, "estimated_flash_bytes": 1,
                "tflm_arena_bytes": 1, "estimated_sram_bytes": 1, "target_sram_bytes": 1, "target_flash_bytes": 1,
                "tflite": "m.tflite", "c_source": "m.cc", "test_samples": 360,
                "model_fingerprints": {"teacher": "aaa", "student_no_kd": "bbb", "student_kd": "ccc", "exported": "ccc"}}
    results = {"experiment": "e", "mcu": "m", "runtime": "tflm", "pareto": [], "deployed": deployed,
               "budgets": {"sram_bytes": 1024, "flash_bytes": 1024, "latency_ms": None},
               "study": {"name": "s", "n_trials": 1, "n_complete": 1, "n_infeasible": 0, "n_pruned": 0, "n_failed": 0}}
    md = summary_markdown(results)
    assert "teacher accuracy (test, 360 samples) (model `aaa`)" in md
    assert "student without KD, fp32 (test, 360 samples) (model `bbb`)" in md
    assert "student with KD, fp32 (test, 360 samples) (model `ccc`)" in md
    assert "(model `ccc`) = the KD student (no pruning or QAT)" in md
