"""Progress of long work: every training stage logs one line per epoch (stage, epoch k/N, loss, accuracy,
seconds, ETA) through one helper, and draws a tqdm bar where stderr is a terminal."""

import dataclasses
import logging
import re

import numpy as np
import pytest

from search_spaces import get_space
from tinynas.data import Split
from tinynas.progress import EpochProgress, duration, epoch_done
from tinynas.train import TrainConfig, fit, seed_everything

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPACE = get_space("mcunet", {"resolutions": [8], "widths": [0.3], "depth_choices": [1], "head_channels": 32})
CFG = TrainConfig(epochs=3, batch_size=32, optimizer="sgd", lr=0.05, max_train_samples=96)
LINE = re.compile(r"^(?P<stage>.+): epoch (?P<k>\d+)/(?P<n>\d+)  loss (?P<loss>\d+\.\d{4})"
                  r"(?:  train acc (?P<acc>[01]\.\d{3}))?(?:  (?P<s>[\d.]+ s|\d+ min \d\d s)  ETA (?P<eta>.+))?$")


def data() -> Split:
    rng = np.random.default_rng(0)
    return Split(rng.standard_normal((128, 1, 8, 8)).astype(np.float32), rng.integers(0, 4, 128).astype(np.int64))


def model():
    seed_everything(3)
    return SPACE.build_torch(SPACE.smallest(), 1, 4)


def progress_lines(caplog) -> list[re.Match]:
    lines = [r.getMessage() for r in caplog.records if r.name == "tinynas.progress"]
    matches = [LINE.match(line) for line in lines]
    assert all(matches), lines
    return matches


def test_fit_logs_one_line_per_epoch_with_loss_accuracy_seconds_and_eta(caplog):
    caplog.set_level(logging.INFO, logger="tinynas.progress")
    history = fit(model(), data(), CFG, "cpu", seed=0, stage="teacher")
    lines = progress_lines(caplog)
    assert [(m["stage"], int(m["k"]), int(m["n"])) for m in lines] == [("teacher", k, 3) for k in (1, 2, 3)]
    assert [float(m["loss"]) for m in lines] == [round(h, 4) for h in history]  # the losses fit returns
    assert all(0 <= float(m["acc"]) <= 1 and m["s"] and m["eta"] for m in lines)
    assert lines[-1]["eta"] == "0.0 s"  # nothing left after the last epoch


def test_a_resumed_fit_reports_only_the_epochs_it_runs(tmp_path, caplog):
    ckpt = tmp_path / "m.train.pt"
    fit(model(), data(), dataclasses.replace(CFG, epochs=1), "cpu", seed=0, checkpoint=ckpt)
    caplog.clear()
    caplog.set_level(logging.INFO, logger="tinynas.progress")
    fit(model(), data(), dataclasses.replace(CFG, epochs=1), "cpu", seed=0, checkpoint=ckpt)  # complete: none
    assert progress_lines(caplog) == []


def test_every_deploy_stage_reports_its_epochs(digits, caplog):
    """Teacher, KD student, baseline, pruning fine-tune and QAT, one epoch each on digits: each stage logs its
    own line, in the order deploy runs them."""
    import random

    from estimators import load_mcu
    from tinynas.deploy import distill_student, prune_student, qat_student, train_teacher, train_without_kd
    from tinynas.paths import MCU_DIR

    space = get_space("mcunet", {"resolutions": [8], "widths": [0.3, 0.5], "depth_choices": [1],
                                 "head_channels": 32})
    arch = space.random(random.Random(0))
    cfg = dataclasses.replace(CFG, epochs=1, max_train_samples=64)
    dcfg = {"teacher": {"arch": "largest", "epochs": 1}, "student_epochs": 1, "temperature": 4.0, "alpha": 0.7,
            "max_train_samples": 64, "qat": {"epochs": 1, "lr": 0.001},
            "prune": {"target": {"ratio": 0.9}, "epochs": 1, "lr": None}}
    caplog.set_level(logging.INFO, logger="tinynas.progress")
    teacher = train_teacher(space, arch, digits, cfg, dcfg, "cpu")
    student = distill_student(space, arch, teacher, digits, cfg, dcfg, "cpu")
    train_without_kd(space, arch, digits, cfg, dcfg, "cpu")
    pruned = prune_student(student, arch, space, teacher, digits, load_mcu("stm32f446", MCU_DIR), "tflm", cfg,
                           dcfg, "cpu")
    qat_student(pruned.model, space.input_size(pruned.arch), teacher, digits, cfg, dcfg, "cpu")
    lines = progress_lines(caplog)
    assert [m["stage"] for m in lines] == ["teacher", "student (KD)", "baseline (student without KD)",
                                           "pruning fine-tune", "QAT"]
    assert all((m["k"], m["n"]) == ("1", "1") and m["acc"] and m["eta"] == "0.0 s" for m in lines)


def test_supernet_epochs_are_reported_by_the_same_helper(digits, caplog):
    from tests.test_supernet import CFG as SUPERNET_CFG, SPACE as SUPERNET_SPACE
    from tinynas.supernet.training import train_supernet

    caplog.set_level(logging.INFO, logger="tinynas.progress")
    state = train_supernet(SUPERNET_SPACE, digits, SUPERNET_CFG, "cpu", seed=0)
    lines = progress_lines(caplog)
    assert [(m["stage"], int(m["k"]), int(m["n"])) for m in lines] == [("supernet", 1, 2), ("supernet", 2, 2)]
    assert [float(m["loss"]) for m in lines] == [round(v, 4) for v in state.losses]
    assert lines[0]["eta"] is None and lines[1]["eta"] == "0.0 s"  # timed from its first reported epoch


def test_epoch_done_times_from_the_first_reported_epoch():
    assert epoch_done("x", 1, 3, 1.0).endswith("loss 1.0000")
    assert LINE.match(epoch_done("x", 2, 3, 0.5))["eta"]
    assert LINE.match(epoch_done("x", 1, 3, 0.5))["eta"] is None  # a new run of the stage starts untimed


def test_terminal_gets_a_bar_and_log_lines_stay_whole(capsys, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="tinynas.progress")
    with EpochProgress("qat", 2, steps_per_epoch=4, bar=True) as p:
        for k in (1, 2):
            p.step(4)
            p.epoch(k, 0.25, 0.5)
    err = capsys.readouterr().err
    assert "qat" in err and "8/8" in err  # tqdm's bar over the stage's batches
    assert len(progress_lines(caplog)) == 2
    monkeypatch.setattr("sys.stderr.isatty", lambda: False, raising=False)
    assert EpochProgress("quiet", 2, steps_per_epoch=4).bar is None  # a log file or a pipe: lines only


def test_durations_read_naturally():
    assert [duration(s) for s in (4.26, 42, 185, 7620)] == ["4.3 s", "42 s", "3 min 05 s", "2 h 07 min"]
