"""Augmentations from config: each output checked against a brute-force numpy description of what it may be."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from tinynas.augment import make_augment
from tinynas.errors import ConfigError


def batch(n=16, c=2, h=8, w=6, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(n, c, h, w)).astype(np.float32))


def crops(sample: np.ndarray, pad_h: int, pad_w: int, flips=(False,)):
    """Every H×W window of ``sample`` zero-padded by pad_h / pad_w (and its mirror when asked)."""
    _, h, w = sample.shape
    p = np.pad(sample, ((0, 0), (pad_h, pad_h), (pad_w, pad_w)))
    for dy in range(2 * pad_h + 1):
        for dx in range(2 * pad_w + 1):
            win = p[:, dy:dy + h, dx:dx + w]
            for f in flips:
                yield win[..., ::-1] if f else win


@pytest.mark.parametrize("spec", [None, False, "none", [], ["none"]])
def test_off_specs_give_none(spec):
    assert make_augment(spec) is None


def test_true_and_shift_move_the_whole_batch_by_one_offset():
    x = batch()
    for spec in (True, "shift", {"name": "shift", "max_shift": 1}):
        pad = 1 if isinstance(spec, dict) else 2
        out = make_augment(spec)(x).numpy()
        offsets = [{i for i, win in enumerate(crops(xi, pad, pad)) if np.array_equal(win, oi)}
                   for xi, oi in zip(x.numpy(), out)]
        assert set.intersection(*offsets), f"{spec!r}: the samples were not all shifted by one common offset"
    np.random.seed(5)
    a = make_augment(True)(x)
    np.random.seed(5)
    assert torch.equal(a, make_augment("shift")(x))  # numpy's generator drives it, as train.py always had


def test_crop_flip_gives_a_padded_crop_or_its_mirror_per_sample():
    x = batch(n=64)
    torch.manual_seed(0)
    out = make_augment({"name": "crop_flip", "pad": 2})(x).numpy()
    mirrored = 0
    for xi, oi in zip(x.numpy(), out):
        hits = [f for f in (False, True) for win in crops(xi, 2, 2, (f,)) if np.array_equal(win, oi)]
        assert hits, "output is no padded crop of its input"
        mirrored += hits[0]
    assert 10 < mirrored < 54  # flips about half the samples
    assert len({o.tobytes() for o in out}) == 64


def test_time_shift_noise_moves_along_time_only_and_adds_noise_of_the_asked_size():
    x = batch(n=32, c=1, h=49, w=10)
    torch.manual_seed(1)
    out = make_augment({"name": "time_shift_noise", "max_shift": 3, "noise": 0})(x).numpy()
    for xi, oi in zip(x.numpy(), out):
        assert any(np.array_equal(win, oi) for win in crops(xi, 3, 0))
    shifted = make_augment({"name": "time_shift_noise", "max_shift": 0, "noise": 0.5})(x) - x
    assert abs(float(shifted.std()) - 0.5) < 0.03 and abs(float(shifted.mean())) < 0.03


def test_specaugment_zeroes_one_time_band_and_one_frequency_band():
    x = batch(n=64, c=1, h=49, w=10) + 10  # no zeros in the input
    torch.manual_seed(2)
    out = make_augment({"name": "specaugment", "time_mask": 6, "freq_mask": 3})(x).numpy()[:, 0]
    xs = x.numpy()[:, 0]
    assert np.all((out == xs) | (out == 0))
    widths = []
    for o in out:
        zero = o == 0
        rows, cols = np.flatnonzero(zero.all(1)), np.flatnonzero(zero.all(0))
        expected = np.zeros_like(zero)
        expected[rows, :] = True
        expected[:, cols] = True
        assert np.array_equal(zero, expected)  # the zeros are whole rows and whole columns
        for band, most in ((rows, 6), (cols, 3)):
            assert len(band) <= most and (len(band) == 0 or band[-1] - band[0] == len(band) - 1)
        widths.append((len(rows), len(cols)))
    assert max(w[0] for w in widths) > 0 and max(w[1] for w in widths) > 0


def test_same_torch_seed_same_output_and_lists_chain_from_omegaconf():
    x = batch(c=1, h=49, w=10)
    spec = OmegaConf.create({"a": ["time_shift_noise", {"name": "specaugment", "freq_mask": 1}]}).a
    fn = make_augment(spec)
    torch.manual_seed(3)
    a = fn(x)
    torch.manual_seed(3)
    assert torch.equal(a, fn(x)) and a.shape == x.shape and not torch.equal(a, x)


def test_unknown_names_and_options_are_named():
    with pytest.raises(ConfigError, match=r"augment='mixup' is unknown; allowed: false, true \(shift\), crop_flip"):
        make_augment("mixup")
    with pytest.raises(ConfigError, match=r"augment crop_flip: unknown options \['padding'\]; "
                                          r"allowed: \['flip', 'pad'\]"):
        make_augment({"name": "crop_flip", "padding": 4})
