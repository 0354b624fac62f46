"""Pruning selection and the distillation loss without TensorFlow: counts, ties, floors, hand-checked numbers."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from edgebuild.converters.distillation import distillation_loss_reference
from edgebuild.converters.pruning import ChannelGraph, PruningOptions, check_ratio, keep_count, select
from edgebuild.errors import ProfileError
from edgebuild.profiles.schema import PruningSection


@pytest.mark.parametrize(
    "n, ratio, round_to, min_channels, expected",
    [
        (16, 0.5, 1, 1, 8),
        (10, 0.25, 1, 1, 8),
        (3, 0.5, 1, 1, 2),
        (1, 0.9, 1, 1, 1),
        (16, 0.0, 1, 1, 16),
        (64, 0.6, 8, 1, 24),
        (64, 0.75, 8, 1, 16),
        (32, 0.3, 8, 1, 24),
        (12, 0.5, 8, 1, 8),
        (6, 0.5, 8, 1, 6),
        (16, 0.9, 1, 4, 4),
        (16, 0.9, 1, 32, 16),
    ],
)
def test_keep_count(n, ratio, round_to, min_channels, expected) -> None:
    assert keep_count(n, ratio, round_to, min_channels) == expected


@pytest.mark.parametrize("bad", [1.0, -0.01, 2, float("nan"), "0.5", True])
def test_ratio_out_of_range_is_a_profile_error(bad) -> None:
    with pytest.raises(ProfileError, match=r"pruning.ratio = .* is out of range.*share of channels to remove"):
        check_ratio(bad, "pruning.ratio")


def test_options_check_their_fields() -> None:
    with pytest.raises(ProfileError, match=r"pruning.criterion = 'l3' .* l1, l2, bn_scale"):
        PruningOptions(criterion="l3")
    with pytest.raises(ProfileError, match=r"pruning.round_to = 0 must be a whole number >= 1"):
        PruningOptions(round_to=0)
    with pytest.raises(ProfileError, match=r"pruning.min_channels = 0"):
        PruningOptions(min_channels=0)
    with pytest.raises(ProfileError, match=r"pruning.layer_ratios.conv = 1.0 is out of range"):
        PruningOptions(layer_ratios={"conv": 1.0})


def test_options_are_the_profile_section() -> None:
    """One options type: code-made options are the profile's [pruning] section (strict, errors name the key)."""
    options = PruningOptions(ratio=0.25)
    assert isinstance(options, PruningSection) and options.kind == "structured"
    assert (options.ratio, options.criterion, options.round_to, options.min_channels) == (0.25, "l1", 1, 1)
    with pytest.raises(ProfileError, match=r"pruning.round_to = 8.0 must be a whole number >= 1"):
        PruningOptions(round_to=8.0)  # no silent coercion
    with pytest.raises(
        ProfileError,
        match=r"pruning.recovery = 'retrain' is not known; choose one of auto, "
        r"fine-tune, distill",
    ):
        PruningOptions(recovery="retrain")
    section = PruningSection(kind="structured", ratio=0.5)  # what a build passes, as it is
    assert select(_graph(), {}, section) == select(_graph(), {}, PruningOptions(ratio=0.5))


def _graph() -> ChannelGraph:
    """a(4) + b(4) tied by Add; c(4) alone; d(2) feeds the output (fixed)."""
    g = ChannelGraph(producers={"a": [0, 1, 2, 3], "b": [4, 5, 6, 7], "c": [8, 9, 10, 11], "d": [12, 13]})
    g.ties = [(0, 4), (1, 5), (2, 6), (3, 7)]
    g.fixed = {12, 13}
    return g


def test_tied_producers_share_one_mask_ranked_by_summed_scores() -> None:
    scores = {
        0: 1.0,
        1: 0.1,
        2: 0.5,
        3: 2.0,
        4: 0.1,
        5: 0.1,
        6: 2.0,
        7: 0.1,  # a+b: 1.1, 0.2, 2.5, 2.1
        8: 3,
        9: 2,
        10: 1,
        11: 0,
    }
    kept, groups = select(_graph(), scores, PruningOptions(ratio=0.5))
    assert kept == {2, 3, 6, 7, 8, 9, 12, 13}
    assert {g.layers: (g.channels, g.kept) for g in groups} == {("a", "b"): (4, 2), ("c",): (4, 2)}


def test_fixed_channels_spread_through_ties_and_are_never_removed() -> None:
    g = _graph()
    g.fixed |= {5}  # b's channel 1 reaches an output: a's channel 1 is tied to it
    kept, groups = select(g, {i: float(i) for i in range(14)}, PruningOptions(ratio=0.5))
    assert {1, 5} <= kept
    group = next(gr for gr in groups if gr.layers == ("a", "b"))
    assert (group.channels, group.kept) == (3, 2)  # 3 removable pairs, keep 3 - floor(1.5) = 2


def test_concatenate_style_offset_ties_group_all_producers() -> None:
    """d(8) is added to concat(a(4), c(4)): d[0:4] ties to a, d[4:8] ties to c."""
    g = ChannelGraph(producers={"a": [0, 1, 2, 3], "c": [4, 5, 6, 7], "d": list(range(8, 16))})
    g.ties = [(i, 8 + i) for i in range(8)]
    scores = {i: (1.0 if i in (0, 5, 8, 13) else 0.0) for i in range(16)}
    kept, groups = select(g, scores, PruningOptions(ratio=0.75, min_channels=1))
    assert [set(gr.layers) for gr in groups] == [{"a", "c", "d"}]
    assert kept == {0, 8, 5, 13}  # a keeps 0, c keeps 5 (=d's 13): the masks are offset


def test_min_channels_holds_per_producer() -> None:
    g = ChannelGraph(producers={"a": [0, 1, 2, 3], "c": [4, 5, 6, 7], "d": list(range(8, 16))})
    g.ties = [(i, 8 + i) for i in range(8)]
    scores = {i: (5.0 if i in (0, 1, 8, 9) else 0.1) for i in range(16)}
    kept, _ = select(g, scores, PruningOptions(ratio=0.75, min_channels=1))
    assert {0, 1} <= kept and any(i in kept for i in (4, 5, 6, 7))  # c keeps at least one channel


def test_different_layer_ratios_in_one_group_are_refused() -> None:
    with pytest.raises(ProfileError, match=r"tied.*a = 0.25, b = 0.5.*same ratio"):
        select(_graph(), {}, PruningOptions(layer_ratios={"a": 0.25, "b": 0.5}))


def test_distillation_loss_hand_checked() -> None:
    # teacher logits (ln 3, 0) -> p_t = (3/4, 1/4); student logits (0, 0) -> p_s = (1/2, 1/2); label 0
    teacher, student, labels = np.array([[math.log(3), 0.0]]), np.zeros((1, 2)), np.array([0])
    kl_t1 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)  # = 0.130812...
    assert kl_t1 == pytest.approx(0.1308120845)
    ce = math.log(2)
    assert distillation_loss_reference(student, teacher, labels, 1.0, 0.5) == pytest.approx(0.5 * ce + 0.5 * kl_t1)
    # T = 2: p_t = softmax(ln 3 / 2, 0) = (sqrt3, 1) / (sqrt3 + 1); soft term scaled by T^2 = 4
    r3 = math.sqrt(3)
    pt = (r3 / (r3 + 1), 1 / (r3 + 1))
    kl_t2 = sum(p * math.log(p / 0.5) for p in pt)
    assert distillation_loss_reference(student, teacher, labels, 2.0, 0.25) == pytest.approx(
        0.25 * ce + 0.75 * 4 * kl_t2
    )
    # no labels: soft targets only; alpha = 1: labels only; identical logits: no soft loss
    assert distillation_loss_reference(student, teacher, None, 2.0, 0.25) == pytest.approx(4 * kl_t2)
    assert distillation_loss_reference(student, teacher, labels, 2.0, 1.0) == pytest.approx(ce)
    assert distillation_loss_reference(teacher, teacher, None, 3.0, 0.0) == pytest.approx(0.0, abs=1e-12)


def test_this_module_needs_no_tensorflow() -> None:
    import subprocess

    code = (
        "import sys; import edgebuild.converters.pruning, edgebuild.converters.distillation, "
        "edgebuild.converters.sparsity, edgebuild.converters.macs; print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
