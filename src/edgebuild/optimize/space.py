"""The search space: one candidate = profile overrides for pruning, width, precision, method, distillation."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from edgebuild.profiles.schema import Profile


@dataclass(frozen=True)
class Candidate:
    ratio: float = 0.0
    width: float = 1.0
    precision: str = "int8"
    method: str = "ptq"
    distill: bool = False

    @property
    def name(self) -> str:
        parts = [self.precision, self.method]
        if self.ratio:
            parts.append(f"prune{round(self.ratio * 100)}")
        if self.width < 1.0:
            parts.append(f"width{round(self.width * 100)}")
        if self.distill:
            parts.append("distill")
        return "-".join(parts)

    @property
    def trains(self) -> bool:
        """PTQ of the unchanged model is cheap; everything else trains."""
        return bool(self.ratio) or self.width < 1.0 or self.method == "qat" or self.distill

    def overrides(self, profile: Profile, fidelity: float = 1.0) -> tuple[str, ...]:
        """`--set` strings that turn the target's profile into this candidate (training scaled by fidelity)."""
        io = profile.quantization.io
        if self.precision == "float16":
            io = "float32"
        elif self.precision == "int16x8" and io not in {"float32", "int16"}:
            io = "int16"
        elif self.precision == "int8" and io not in {"float32", "int8", "uint8"}:
            io = "int8"
        out = [f"quantization.scheme={self.precision}", f"quantization.io={io}", f"quantization.method={self.method}"]
        out.append(f"pruning.kind={'structured' if self.ratio else 'none'}")
        if self.ratio:
            out.append(f"pruning.ratio={self.ratio}")
            out.append(f"pruning.recovery={'distill' if self.distill else 'fine-tune'}")
        if self.width < 1.0:
            out += ["distillation.enabled=true", f'distillation.student="width:{self.width}"']
        if self.trains and fidelity < 1.0:
            training = profile.training
            out.append(f"training.epochs={max(1, round(training.epochs * fidelity))}")
            out.append(f"training.recovery_epochs={max(1, round(training.recovery_epochs * fidelity))}")
        return tuple(out)


def candidates(profile: Profile) -> list[Candidate]:
    """Every valid combination of the [optimize] table, cheap ones first, then from small to large."""
    space = profile.optimize
    found = []
    for ratio, width, precision, method, distill in itertools.product(
        space.pruning_ratios, space.widths, space.precisions, space.methods, space.distillation
    ):
        if method == "qat" and precision != "int8":
            continue  # QAT here trains int8 fake-quantization only
        if ratio and width < 1.0:
            continue  # a narrower student is already the smaller model: pruning it too is not searched
        if distill and not ratio:
            continue  # distillation recovers a pruned model; a narrower width distills on its own
        found.append(Candidate(ratio, width, precision, method, distill))
    return sorted(found, key=lambda c: (c.trains, -c.ratio - (1 - c.width), c.precision, c.method, c.distill))


@dataclass(frozen=True)
class Measured:
    """What a finished PTQ build tells about the model family: artifact size and arena at full width."""

    size_bytes: int
    arena_bytes: int | None


def lower_bounds(candidate: Candidate, base: Measured) -> tuple[int, int | None]:
    """Sizes the candidate cannot go below, from the unpruned PTQ build of the same precision.

    Removing a share r of channels shrinks a convolution's weights by at most (1-r)^2 (inputs and outputs)
    and a feature map by at most (1-r); a width multiplier w the same with w for 1-r. The bounds are
    optimistic on purpose: a candidate rejected by them cannot meet the budget.
    """
    keep = (1.0 - candidate.ratio) * candidate.width
    size = int(base.size_bytes * keep * keep)
    arena = int(base.arena_bytes * keep) if base.arena_bytes is not None else None
    return size, arena
