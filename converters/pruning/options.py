"""What to prune: the profile's `[pruning]` section, the one options type of structured pruning.

A build passes its resolved `profile.pruning` (a frozen `PruningSection`) straight to the pass. Code that
makes options without a profile (the `prune` command's flags, distillation's `width:F` students, tests)
uses `PruningOptions`: the same section type, with `kind = "structured"`, no type coercion, and a bad value
reported as a ProfileError naming its `pruning.*` key (the command turns the key into its flag).
"""

from __future__ import annotations

import math
from typing import Any, get_args

from pydantic import ConfigDict, ValidationError
from pydantic_core import ErrorDetails

from edgebuild.errors import ProfileError
from edgebuild.profiles.schema import PruningSection

CRITERIA: tuple[str, ...] = get_args(PruningSection.model_fields["criterion"].annotation)
RECOVERIES: tuple[str, ...] = get_args(PruningSection.model_fields["recovery"].annotation)


class PruningOptions(PruningSection):
    """A `[pruning]` section made in code: `PruningOptions(ratio=0.5, round_to=8)`."""

    model_config = ConfigDict(strict=True)  # 1.0 is not a round_to, "0.5" not a ratio

    def __init__(self, **fields: Any) -> None:
        fields.setdefault("kind", "structured")
        try:
            super().__init__(**fields)
        except ValidationError as exc:
            raise ProfileError(_explain(exc.errors()[0])) from None


def check_ratio(ratio: Any, key: str = "ratio") -> float:
    """0 <= ratio < 1, else a ProfileError saying so."""
    if (
        isinstance(ratio, bool)
        or not isinstance(ratio, (int, float))
        or not (0.0 <= float(ratio) < 1.0)
        or math.isnan(float(ratio))
    ):
        raise ProfileError(_ratio_message(key, ratio))
    return float(ratio)


def _ratio_message(key: str, ratio: Any) -> str:
    return (
        f"{key} = {ratio!r} is out of range: it is the share of channels to remove, from 0 (keep all) up to "
        "but not including 1 (e.g. 0.5 removes half of each layer's filters)."
    )


def _explain(error: ErrorDetails) -> str:
    """One pydantic error of a PruningOptions field as the sentence the pruning.* key deserves."""
    loc = [str(part) for part in error["loc"]]
    key, value, field = "pruning." + ".".join(loc), error.get("input"), loc[0] if loc else ""
    if field == "ratio" or (field == "layer_ratios" and len(loc) > 1):
        return _ratio_message(key, value)
    if field == "round_to":
        return (
            f"{key} = {value!r} must be a whole number >= 1 (e.g. 8 or 16 to keep channel counts "
            "hardware-friendly; 1 turns rounding off)."
        )
    if field == "min_channels":
        return f"{key} = {value!r} must be a whole number >= 1 (no layer may lose all its channels)."
    if error["type"] == "literal_error" and field in PruningSection.model_fields:
        choices = get_args(PruningSection.model_fields[field].annotation)
        return f"{key} = {value!r} is not known; choose one of {', '.join(choices)}."
    return f"{key} = {value!r}: {error['msg']}."
