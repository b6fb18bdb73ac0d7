"""Batch augmentations named in config (``train.augment`` / a dataset's ``augment`` suggestion).

``make_augment(spec)`` turns a config value into a function of an N×C×H×W float batch (already normalised, so
zero is the mean) or ``None``. A spec is ``false``/``null``/``"none"`` (no augmentation), ``true`` (``"shift"``), a
name, a mapping ``{name: crop_flip, pad: 4}`` overriding that augmentation's options, or a list of these applied in
order. Randomness comes from torch's global generator (``"shift"`` keeps numpy's, as it always had), so
``tinynas.train.seed_everything`` makes every run repeatable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from tinynas.errors import ConfigError

Augment = Callable[[torch.Tensor], torch.Tensor]


def shift(x: torch.Tensor, max_shift: int = 2) -> torch.Tensor:
    """Translate the whole batch by up to ``max_shift`` pixels in each direction (zero padding)."""
    padded = F.pad(x, (max_shift,) * 4)
    h, w = x.shape[-2:]
    dy, dx = np.random.randint(0, 2 * max_shift + 1, size=2)
    return padded[..., dy:dy + h, dx:dx + w]


def _crop(x: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """A random H×W window of each sample zero-padded by ``pad_h`` rows / ``pad_w`` columns on every side."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (pad_w, pad_w, pad_h, pad_h))
    dys, dxs = torch.randint(0, 2 * pad_h + 1, (len(x),)).tolist(), torch.randint(0, 2 * pad_w + 1, (len(x),)).tolist()
    return torch.stack([p[:, dy:dy + h, dx:dx + w] for p, dy, dx in zip(padded, dys, dxs)])  # slices: fast


def crop_flip(x: torch.Tensor, pad: int = 4, flip: bool = True) -> torch.Tensor:
    """Per sample: zero-pad by ``pad``, take a random crop of the original size, mirror left-right half the time
    (the CIFAR-10 / VWW recipe)."""
    out = _crop(x, pad, pad)
    if flip:
        mirror = (torch.rand(len(x)) < 0.5).to(x.device)[:, None, None, None]
        out = torch.where(mirror, out.flip(-1), out)
    return out


def time_shift_noise(x: torch.Tensor, max_shift: int = 5, noise: float = 0.05) -> torch.Tensor:
    """Per sample: shift along time (H, e.g. 49 MFCC frames) by up to ``max_shift`` frames with zero fill, then
    add Gaussian noise of standard deviation ``noise`` (in normalised units)."""
    out = _crop(x, max_shift, 0) if max_shift else x
    if noise:
        out = out + noise * torch.randn(out.shape).to(out.device)
    return out


def specaugment(x: torch.Tensor, time_mask: int = 5, freq_mask: int = 2) -> torch.Tensor:
    """SpecAugment-lite: per sample, zero one band of up to ``time_mask`` frames (H) and one of up to ``freq_mask``
    coefficients (W)."""
    n, _, h, w = x.shape
    keep = torch.ones(n, 1, h, w)
    for axis, (size, most) in enumerate(((h, time_mask), (w, freq_mask))):
        if most <= 0:
            continue
        width = torch.randint(0, min(most, size) + 1, (n,))
        start = (torch.rand(n) * (size - width + 1)).long()
        pos = torch.arange(size)
        band = (pos >= start[:, None]) & (pos < (start + width)[:, None])  # n × size
        keep = keep * (~band).float().reshape((n, 1, size, 1) if axis == 0 else (n, 1, 1, size))
    return x * keep.to(x.device)


AUGMENTS: dict[str, Augment] = {
    "shift": shift,
    "crop_flip": crop_flip,
    "time_shift_noise": time_shift_noise,
    "specaugment": specaugment,
}
_OPTIONS = {"shift": {"max_shift"}, "crop_flip": {"pad", "flip"}, "time_shift_noise": {"max_shift", "noise"},
            "specaugment": {"time_mask", "freq_mask"}}


def _one(spec: Any) -> Augment | None:
    if spec is None or spec is False or (isinstance(spec, str) and spec.lower() in ("none", "false", "")):
        return None
    if spec is True:
        spec = "shift"
    if isinstance(spec, Mapping):
        options = dict(spec)
        name = options.pop("name", None)
    else:
        name, options = spec, {}
    if not isinstance(name, str) or name not in AUGMENTS:
        raise ConfigError(f"augment={spec!r} is unknown; allowed: false, true (shift), "
                          f"{', '.join(sorted(AUGMENTS))}, a mapping with 'name', or a list of these")
    unknown = sorted(set(options) - _OPTIONS[name])
    if unknown:
        raise ConfigError(f"augment {name}: unknown options {unknown}; allowed: {sorted(_OPTIONS[name])}")
    fn = AUGMENTS[name]
    return (lambda x: fn(x, **options)) if options else fn


def make_augment(spec: Any) -> Augment | None:
    """The augmentation that ``spec`` names, or ``None`` when it names none (see the module docstring)."""
    if isinstance(spec, Sequence) and not isinstance(spec, str):
        fns = [f for f in (_one(s) for s in spec) if f is not None]
        if not fns:
            return None
        if len(fns) == 1:
            return fns[0]

        def chain(x: torch.Tensor) -> torch.Tensor:
            for f in fns:
                x = f(x)
            return x

        return chain
    return _one(spec)
