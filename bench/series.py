"""Realistic and worst-case metric series for storage and throughput benchmarks."""

from __future__ import annotations

import math

import numpy as np


def loss_curve(n: int, seed: int = 0) -> np.ndarray:
    """A decaying noisy loss as ``tensor.item()`` gives it: float32 values widened to float64."""
    rng = np.random.default_rng(seed)
    s = np.arange(n)
    loss = 0.2 + 2.3 * np.exp(-s / (n / 5)) * (1 + 0.05 * rng.standard_normal(n))
    return loss.astype(np.float32).astype(np.float64)


def lr_schedule(n: int) -> np.ndarray:
    """Linear warm-up then cosine decay, computed in float64 like schedulers do."""
    s = np.arange(n, dtype=np.float64)
    warm = max(n // 20, 1)
    return np.where(s < warm, 3e-4 * s / warm, 3e-4 * 0.5 * (1 + np.cos(math.pi * (s - warm) / (n - warm))))


def gpu_util(n: int, seed: int = 0) -> np.ndarray:
    """Integer percentages, as NVML reports them."""
    rng = np.random.default_rng(seed)
    return np.clip(np.round(92 + 5 * rng.standard_normal(n)), 0, 100).astype(np.float64)


def noise(n: int, seed: int = 0) -> np.ndarray:
    """Worst case: full-mantissa float64 noise."""
    return np.random.default_rng(seed).standard_normal(n)


SERIES = {
    "loss (float32-origin)": loss_curve,
    "lr schedule": lr_schedule,
    "gpu util (int)": gpu_util,
    "float64 noise (worst)": noise,
}
