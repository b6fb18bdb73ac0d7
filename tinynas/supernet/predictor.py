"""An accuracy predictor for MCUNet archs: ridge regression on a one-hot arch encoding (as OFA's and MCUNet's
accuracy predictors encode archs), fitted on sub-network accuracies scored by the super-network, so a search
can rank thousands of archs in a second instead of extracting and recalibrating each.

Encoding (:func:`encode`): one-hot resolution, width and per-stage depth, and per block slot (stage × deepest
depth) a one-hot kernel and expand ratio, all zero for a slot the arch does not use. The ridge penalty is
chosen among :data:`ALPHAS` by exact leave-one-out error (closed form from one SVD).
"""

from __future__ import annotations

import numpy as np

from search_spaces.mcunet import MCUNetArch, MCUNetSpace

ALPHAS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def encode(space: MCUNetSpace, archs: list[MCUNetArch]) -> np.ndarray:
    """The (len(archs), features) one-hot encoding of ``archs`` (see module doc)."""
    max_depth = max(space.depth_choices)
    rows = []
    for arch in archs:
        space.check(arch)
        parts = [np.asarray(space.resolutions) == arch.resolution, np.asarray(space.widths) == arch.width]
        for s, d in enumerate(arch.depths):
            parts.append(np.asarray(space.depth_choices) == d)
            for b in range(max_depth):
                used = b < d
                parts.append(np.asarray(space.kernel_choices) == (arch.kernels[s][b] if used else None))
                parts.append(np.asarray(space.expand_choices) == (arch.expands[s][b] if used else None))
        rows.append(np.concatenate(parts).astype(np.float64))
    return np.stack(rows)


class AccuracyPredictor:
    """Ridge regression from :func:`encode` to accuracy; :meth:`fit` then :meth:`predict`."""

    def __init__(self, space: MCUNetSpace, alphas: tuple[float, ...] = ALPHAS):
        self.space, self.alphas = space, tuple(alphas)
        self.alpha: float | None = None
        self.loo_rmse: float | None = None
        self._mean_x = self._coef = None
        self._mean_y = 0.0

    def fit(self, archs: list[MCUNetArch], accuracies) -> "AccuracyPredictor":
        y = np.asarray(accuracies, dtype=np.float64)
        if len(archs) != len(y) or len(y) < 3:
            raise ValueError(f"the predictor needs ≥ 3 archs with one accuracy each, got {len(archs)} archs and "
                             f"{len(y)} accuracies")
        x = encode(self.space, archs)
        self._mean_x, self._mean_y = x.mean(0), float(y.mean())
        xc, yc = x - self._mean_x, y - self._mean_y
        u, s, vt = np.linalg.svd(xc, full_matrices=False)
        uty = u.T @ yc
        best = None
        for alpha in self.alphas:
            shrink = s ** 2 / (s ** 2 + alpha)
            residual = yc - u @ (shrink * uty)
            hat = (u ** 2) @ shrink + 1.0 / len(y)  # leverage, the intercept's share included
            loo = float(np.sqrt(np.mean((residual / (1.0 - hat)) ** 2)))
            if best is None or loo < best[0]:
                best = (loo, alpha)
        self.loo_rmse, self.alpha = best
        self._coef = vt.T @ (s / (s ** 2 + self.alpha) * uty)
        return self

    def predict(self, archs: list[MCUNetArch]) -> np.ndarray:
        if self._coef is None:
            raise RuntimeError("AccuracyPredictor.predict before fit")
        return (encode(self.space, archs) - self._mean_x) @ self._coef + self._mean_y
