"""`tinynas search experiment=kws_espeak` end to end at a tiny budget: espeak-ng keywords generated on first use →
MFCC 49×10 → DS-CNN search → distilled student → full-int8 TFLite, whose test accuracy is re-measured here in the
TFLite Micro interpreter on the test clips (unseen voices). Slow: run by `make test` / CI, which installs espeak-ng."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import cli_runner

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                 reason="espeak-ng is not installed (apt-get install espeak-ng; .ci/run installs it)")]

CHANCE = 1 / 12  # 10 keywords + _silence_ + _unknown_, about equally many test clips each
TINY = ["experiment=kws_espeak", "logger=none", "n_trials=2", "search.n_startup_trials=2",
        "dataset.generate.n_per_word=60", "dataset.generate.n_per_unknown_word=12", "dataset.cache=false",
        # the space's small corner (32 channels, 2-3 layers, 3x3): seconds per epoch on 2 cores
        "search_space.options.first_channel_choices=[32]", "search_space.options.channel_choices=[32]",
        "search_space.options.depth_choices=[2,3]", "search_space.options.kernel_choices=[[3,3]]",
        "train.epochs=2", "train.lr=0.01", "distill.teacher.epochs=15", "distill.student_epochs=20",
        "distill.baseline_without_kd=false", "export.calibration_samples=64"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("kws")
    proc = cli_runner(root)("search", *TINY, f"dataset.root={root / 'keywords'}", timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = Path(proc.stdout.strip().splitlines()[-1])
    return root, results, json.loads(results.read_text())


def test_the_keyword_set_was_generated_in_the_speech_commands_layout(run):
    root, _, _ = run
    kw = root / "keywords"
    assert (kw / "validation_list.txt").is_file() and (kw / "testing_list.txt").is_file()
    for word in ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"):
        assert len(list((kw / word).glob("*_nohash_*.wav"))) == 60, word
    assert len(list((kw / "_background_noise_").glob("*.wav"))) >= 1


def test_deployed_int8_model_takes_49x10_mfcc_and_beats_chance_in_tflm(run):
    from omegaconf import OmegaConf

    from tinynas.data import load_dataset
    from tinynas.export.verify import io_specs, quantize
    from tinynas.tflm import run_tflm

    _, results, r = run
    assert r["experiment"] == "kws_espeak" and r["mcu"] == "nrf52840"
    d = r["deployed"]
    tflite = results.parent / d["tflite"]
    assert tflite.name == "model_int8.tflite" and tflite.stat().st_size == d["tflite_bytes"]
    inp, out = io_specs(tflite)
    assert inp.shape == (1, 49, 10, 1) and out.shape == (1, 12)

    # The recorded int8 accuracy is TFLM's own: re-run every test clip through the interpreter here.
    cfg = OmegaConf.load(results.parent / ".hydra" / "config.yaml")
    data = load_dataset(OmegaConf.to_container(cfg.dataset, resolve=True))
    x_q = quantize(np.transpose(data.test.x, (0, 2, 3, 1)), inp)
    assert x_q.dtype == np.int8 and x_q.shape[1:] == (49, 10, 1)
    logits = run_tflm(tflite, x_q)
    acc = float(np.mean(logits.reshape(len(x_q), -1).argmax(-1) == data.test.y))
    assert acc == pytest.approx(d["int8_accuracy"], abs=1e-9)
    assert acc > 4 * CHANCE, f"int8 TFLM accuracy {acc:.3f} on {len(x_q)} unseen-voice test clips"
