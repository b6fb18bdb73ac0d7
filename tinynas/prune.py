"""Structured (channel) pruning of a trained winner to a tighter flash / SRAM / latency budget.

Whole hidden (expanded) channels of the inverted-residual blocks are removed, least important first (L1 or L2
norm of the channel's weights in the expand, depthwise and project convs), by stepping blocks down to a smaller
expand ratio of the SAME search space: the result is an ordinary arch of the space, so the estimators, the export
and every other command work on it unchanged. Blocks are stepped greedily, each time the one that loses the least
importance per unit of the targeted cost (estimated with :func:`estimators.estimate`), until the target is met.

Unstructured (weight-level) sparsity is deliberately not offered: TFLite Micro's kernels are dense, so zero
weights are still stored in flash and still multiplied — they save neither bytes nor time.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from estimators import MCU, estimate
from search_spaces.base import ArchSpec, SearchSpace
from tinynas.errors import ConfigError

TARGETS = ("flash_bytes", "sram_bytes", "latency_ms", "ratio")
IMPORTANCE = ("l1", "l2")


@dataclasses.dataclass(frozen=True)
class PruneSpec:
    """``distill.prune``: targets to meet together (absolute budgets as the search measures them — flash
    including the runtime's code —, and/or ``ratio`` = the fraction of the model's own estimated bytes, the
    .tflite file, to keep) and the channel importance norm."""

    targets: dict[str, float]
    importance: str = "l1"

    @classmethod
    def from_cfg(cls, cfg: dict[str, Any]) -> "PruneSpec":
        targets = {k: v for k, v in (cfg.get("target") or {}).items() if v is not None}
        unknown = sorted(set(targets) - set(TARGETS))
        if unknown or not targets:
            raise ConfigError(f"distill.prune.target={targets!r} must set at least one of {', '.join(TARGETS)}"
                              + (f" (unknown: {unknown})" if unknown else ""))
        for metric, value in targets.items():
            if not isinstance(value, (int, float)) or value <= 0 or (metric == "ratio" and value >= 1):
                raise ConfigError(f"distill.prune.target.{metric}={value!r} must be a number > 0"
                                  + (" and < 1" if metric == "ratio" else ""))
        importance = cfg.get("importance", "l1")
        if importance not in IMPORTANCE:
            raise ConfigError(f"distill.prune.importance={importance!r} is unknown; allowed: {', '.join(IMPORTANCE)}")
        return cls({k: float(v) for k, v in targets.items()}, importance)

    def limits(self, full: dict[str, float]) -> dict[str, float]:
        """Absolute limits per estimated figure, given the unpruned arch's figures ``full``."""
        out = {k: v for k, v in self.targets.items() if k != "ratio"}
        if "ratio" in self.targets:
            out["model_bytes"] = self.targets["ratio"] * full["model_bytes"]
        return out


def measure(space: SearchSpace, arch: ArchSpec, in_channels: int, num_classes: int, mcu: MCU,
            runtime: str) -> dict[str, float]:
    """The search's estimated figures for ``arch``: flash and SRAM bytes, latency, params, MACs."""
    est = estimate(space.to_ir(arch, in_channels, num_classes), mcu, runtime)
    return {"flash_bytes": est.flash.total_bytes, "model_bytes": est.flash.model_bytes,
            "sram_bytes": est.sram.total_bytes, "latency_ms": est.latency_ms, "params": est.params, "macs": est.macs}


# -- the model side: which blocks, which channels ---------------------------------------------------
def _units(block: nn.Module) -> list[nn.Module]:
    body = getattr(block, "body", None)
    if not isinstance(body, nn.Sequential):
        raise ConfigError(f"distill.prune: {type(block).__name__} is not an inverted-residual block")
    units = list(body)
    if any(not isinstance(u, nn.Sequential) for u in units):
        raise ConfigError("distill.prune: blocks with squeeze-and-excitation are not supported; allowed: "
                          "spaces of plain inverted-residual blocks (mcunet)")
    return units


def _conv(unit: nn.Module) -> nn.Conv2d:
    return next(m for m in unit if isinstance(m, nn.Conv2d))


def searched_blocks(model: nn.Module, space: SearchSpace, arch: ArchSpec) -> list[tuple[int, int, int]]:
    """(stage, block, index into ``model.blocks``) of every block whose expand ratio the arch chooses."""
    if not hasattr(arch, "expands") or not hasattr(space, "expand_choices"):
        raise ConfigError(f"distill.prune: search space {space.name!r} has no per-block expand ratios; allowed: "
                          "mcunet and other spaces with `expands`")
    blocks = list(getattr(model, "blocks", []))
    offset = len(blocks) - sum(len(e) for e in arch.expands)
    if offset < 0 or len(space.blocks(arch)) != len(blocks):
        raise ConfigError(f"distill.prune: the {space.name} model's blocks do not follow its arch's block plan")
    out, i = [], offset
    for s, stage in enumerate(arch.expands):
        for b in range(len(stage)):
            out.append((s, b, i))
            i += 1
    return out


def hidden_importance(block: nn.Module, norm: str) -> torch.Tensor:
    """Per hidden channel: the norm of its weights in the expand, depthwise and project convs together."""
    units = _units(block)
    if len(units) != 3:
        raise ConfigError("distill.prune: a block without an expand conv has no hidden channels to remove")
    expand, dw, project = (_conv(u).weight.detach() for u in units)
    per_channel = torch.cat([expand.flatten(1), dw.flatten(1), project.transpose(0, 1).flatten(1)], dim=1)
    return per_channel.abs().sum(1) if norm == "l1" else per_channel.pow(2).sum(1).sqrt()


def _with_expand(arch: ArchSpec, s: int, b: int, e: int) -> ArchSpec:
    expands = tuple(tuple(e if (i, j) == (s, b) else x for j, x in enumerate(stage))
                    for i, stage in enumerate(arch.expands))
    return dataclasses.replace(arch, expands=expands)


def _excess(figures: dict[str, float], limits: dict[str, float]) -> float:
    """How far ``figures`` are over ``limits``, summed as fractions of each limit (0 when all are met)."""
    return sum(max(0.0, figures[k] / v - 1) for k, v in limits.items())


def shrink_arch(space: SearchSpace, arch: ArchSpec, model: nn.Module, spec: PruneSpec, cost) -> ArchSpec:
    """The arch of the space, ``arch`` with some expand ratios lowered, whose ``cost(arch)`` meets every target.
    Raises ConfigError naming the smallest figures reachable when no choice of expand ratios meets them."""
    limits = spec.limits(cost(arch))
    scores = {(s, b): hidden_importance(model.blocks[i], spec.importance) for s, b, i in
              searched_blocks(model, space, arch) if arch.expands[s][b] > 1}
    current, figures = arch, cost(arch)
    while _excess(figures, limits) > 0:
        best = None
        for (s, b), imp in scores.items():
            e0, e = arch.expands[s][b], current.expands[s][b]
            smaller = [c for c in space.expand_choices if 1 < c < e]  # expand 1 would drop the expand conv
            if not smaller:
                continue
            cand = _with_expand(current, s, b, max(smaller))
            cand_figures = cost(cand)
            saving = _excess(figures, limits) - _excess(cand_figures, limits)
            if saving <= 0:
                continue
            # the channels this step removes: the next-least important ones of the original block
            start, stop = len(imp) - len(imp) * e // e0, len(imp) - len(imp) * max(smaller) // e0
            lost = float(imp.sort().values[start:stop].sum() / imp.sum().clamp_min(1e-12))
            if best is None or lost / saving < best[0]:
                best = (lost / saving, cand, cand_figures)
        if best is None:
            reached = ", ".join(f"{k}={figures[k]:g} (target {v:g})" for k, v in limits.items())
            raise ConfigError(f"distill.prune.target {spec.targets} is out of reach by removing expanded channels; "
                              f"the smallest reachable: {reached}")
        _, current, figures = best
    return current


def transfer(model: nn.Module, space: SearchSpace, old: ArchSpec, new: ArchSpec, in_channels: int,
             num_classes: int, norm: str = "l1") -> nn.Module:
    """The model of ``new`` carrying ``model``'s weights, each shrunk block keeping its most important channels."""
    pruned = space.build_torch(new, in_channels, num_classes)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for s, b, i in searched_blocks(model, space, old):
        if old.expands[s][b] == new.expands[s][b]:
            continue
        block = model.blocks[i]
        hidden = _conv(_units(pruned.blocks[i])[1]).out_channels
        keep = hidden_importance(block, norm).topk(hidden).indices.sort().values
        old_hidden = _conv(_units(block)[1]).out_channels
        for u, unit in enumerate(_units(block)):
            for name, t in unit.state_dict().items():
                key = f"blocks.{i}.body.{u}.{name}"
                if u < 2 and t.ndim >= 1 and t.shape[0] == old_hidden:  # expand and depthwise: output channels
                    state[key] = t[keep].clone()
                elif u == 2 and t.ndim == 4:  # project conv: input channels
                    state[key] = t[:, keep].clone()
    pruned.load_state_dict(state)
    return pruned


@dataclasses.dataclass(frozen=True)
class PruneResult:
    model: nn.Module
    arch: ArchSpec
    before: dict[str, float]  # estimated figures of the original arch
    after: dict[str, float]   # ... and of the pruned one


def prune(model: nn.Module, space: SearchSpace, arch: ArchSpec, in_channels: int, num_classes: int, mcu: MCU,
          runtime: str, spec: PruneSpec) -> PruneResult:
    """Shrink ``model`` (of ``arch``) until its estimate on ``mcu``/``runtime`` meets ``spec``'s target."""
    def cost(a):
        return measure(space, a, in_channels, num_classes, mcu, runtime)

    new = shrink_arch(space, arch, model, spec, cost)
    pruned = transfer(model, space, arch, new, in_channels, num_classes, spec.importance)
    return PruneResult(pruned, new, cost(arch), cost(new))
