"""Error of one quantized tensor against its float twin, accumulated sample by sample (NumPy only).

Two kinds of pair are measured with the same statistics:

- cumulative: the artifact's tensor against the float model's tensor with the same name, both run on
  the same input. This is the error a layer's output carries, everything upstream included.
- added: the quantized op's output against the same op computed in float *on the quantized op's own
  (dequantized) inputs*, which is what the TFLite converter's layer-wise debug model (NumericVerify)
  computes. This is the error the op itself introduces; ranking by it names the layer that breaks the
  model instead of every layer after it.

Whole-tensor SNR hides a tensor whose channels differ widely in range: one wide channel carries all the
signal power, and the narrow channels can be rounded to nothing while the tensor's SNR stays high. So
every pair also keeps per-channel (last axis) sums, and `channel_snr_db` is the median channel's SNR.
The ranking uses the lower of the two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RESERVOIR = 4096  # float values kept per tensor for percentiles (a seeded, uniform sample over all samples)


@dataclass
class PairStats:
    """Sums over every sample of one (reference, candidate) tensor pair; `finish` turns them into metrics."""

    scale: float | None  # the quantized tensor's scale (per-tensor), for RMSE in quantization steps
    zero_point: int = 0
    qrange: tuple[float, float] | None = None  # float range the quantized tensor can represent
    elements: int = 0
    signal: float = 0.0  # sum of reference**2
    noise: float = 0.0  # sum of (candidate - reference)**2
    dot: float = 0.0
    candidate_power: float = 0.0
    channel_signal: np.ndarray | None = None
    channel_noise: np.ndarray | None = None
    channel_absmax: np.ndarray | None = None
    ref_min: float = math.inf
    ref_max: float = -math.inf
    clipped: int = 0  # reference values outside the quantized range
    sample: list[np.ndarray] = field(default_factory=list)
    _kept: int = 0
    _rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))

    def add(self, reference: np.ndarray, candidate: np.ndarray) -> None:
        """Accumulate one chunk of samples (float32 arithmetic and BLAS dot products; totals kept in float64)."""
        r = np.ascontiguousarray(reference, np.float32)
        c = np.ascontiguousarray(candidate, np.float32).reshape(r.shape)
        e = c - r
        flat_r, flat_c, flat_e = r.reshape(-1), c.reshape(-1), e.reshape(-1)
        self.elements += r.size
        self.signal += _dot(flat_r, flat_r)
        self.noise += _dot(flat_e, flat_e)
        self.dot += _dot(flat_r, flat_c)
        self.candidate_power += _dot(flat_c, flat_c)
        channels = r.shape[-1] if r.ndim >= 2 else 1
        r2 = r.reshape(-1, channels)
        e2 = e.reshape(-1, channels)
        cs = np.einsum("ij,ij->j", r2, r2, dtype=np.float64)
        cn = np.einsum("ij,ij->j", e2, e2, dtype=np.float64)
        cm = np.maximum(r2.max(axis=0), -r2.min(axis=0)).astype(np.float64) if r2.size else np.zeros(channels)
        if self.channel_signal is None:
            self.channel_signal, self.channel_noise, self.channel_absmax = cs, cn, cm
        else:
            assert self.channel_noise is not None and self.channel_absmax is not None
            self.channel_signal += cs
            self.channel_noise += cn
            self.channel_absmax = np.maximum(self.channel_absmax, cm)
        if r.size:
            self.ref_min = min(self.ref_min, float(r.min()))
            self.ref_max = max(self.ref_max, float(r.max()))
        if self.qrange is not None:
            low, high = self.qrange
            self.clipped += int(np.count_nonzero((flat_r < low) | (flat_r > high)))
        self._keep(flat_r)

    def _keep(self, values: np.ndarray) -> None:
        """A bounded, seeded sample of |reference| values for the outlier percentiles."""
        if values.size == 0:
            return
        take = min(values.size, max(16, RESERVOIR // 8))
        picked = np.abs(values if take == values.size else values[self._rng.integers(0, values.size, take)])
        self.sample.append(picked.astype(np.float32))
        self._kept += picked.size
        if self._kept > 4 * RESERVOIR:
            merged = np.concatenate(self.sample)
            self.sample = [merged[self._rng.integers(0, merged.size, RESERVOIR)]]
            self._kept = RESERVOIR

    def finish(self) -> dict[str, Any]:
        """Metrics of this pair (JSON-ready: no infinities; an exact match has SNR null)."""
        rmse = math.sqrt(self.noise / self.elements) if self.elements else 0.0
        norms = math.sqrt(self.signal * self.candidate_power)
        out: dict[str, Any] = {
            "snr_db": _db(self.signal, self.noise),
            "channel_snr_db": self.channel_snr(),
            "rmse": rmse,
            "rmse_steps": (rmse / self.scale) if self.scale else None,
            "cosine": (self.dot / norms) if norms > 0 else None,
        }
        return out

    def channel_snr(self) -> float | None:
        """The median SNR over channels with any signal (channels that are zero in float are left out)."""
        if self.channel_signal is None or self.channel_noise is None or self.channel_signal.size <= 1:
            return None
        live = self.channel_signal > 0
        if not np.any(live):
            return None
        noise = self.channel_noise[live]
        signal = self.channel_signal[live]
        with np.errstate(divide="ignore"):
            snr = np.where(noise > 0, 10.0 * np.log10(signal / np.maximum(noise, 1e-300)), np.inf)
        value = float(np.median(snr))
        return None if math.isinf(value) else value

    def range_facts(self) -> dict[str, Any]:
        """What the diagnosis reads: the float range, its percentiles, the channels' spread, clipping."""
        values = np.concatenate(self.sample) if self.sample else np.zeros(0, np.float32)
        absmax = max(abs(self.ref_min), abs(self.ref_max)) if self.elements else 0.0
        facts: dict[str, Any] = {
            "min": self.ref_min if self.elements else None,
            "max": self.ref_max if self.elements else None,
            "absmax": absmax,
            "p99_9": float(np.percentile(values, 99.9)) if values.size else None,
            "p99": float(np.percentile(values, 99.0)) if values.size else None,
            "clipped_fraction": (self.clipped / self.elements) if self.qrange is not None and self.elements else None,
        }
        if self.channel_absmax is not None and self.channel_absmax.size > 1:
            live = self.channel_absmax[self.channel_absmax > 0]
            if live.size > 1:
                order = np.argsort(self.channel_absmax)[::-1]
                facts["channels"] = int(self.channel_absmax.size)
                facts["widest_channel"] = int(order[0])
                facts["widest_channel_absmax"] = float(self.channel_absmax[order[0]])
                facts["median_channel_absmax"] = float(np.median(live))
        return facts


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b)) if a.size else 0.0  # float32 BLAS: ~1e-4 relative, far below what a dB shows


def worst_db(*values: float | None) -> float | None:
    """The lowest of SNR values where None means exact (infinitely good)."""
    finite = [v for v in values if v is not None]
    return min(finite) if finite else None


def _db(signal: float, noise: float) -> float | None:
    if noise <= 0.0:
        return None  # exact
    if signal <= 0.0:
        return -999.0
    return 10.0 * math.log10(signal / noise)


def levels_used(absmax: float, scale: float | None) -> float | None:
    """How many quantization steps a value range of `absmax` spans at `scale`."""
    if not scale:
        return None
    return absmax / scale
