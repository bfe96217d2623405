r"""Settings of a full-scale run chosen from the machine's free memory and disk.

The scalable run (see :mod:`nftk_jax.experiment._run_scalable`) has one size knob,
the number ``m`` of landmarks, which is also the size of the stratified subset on
which :math:`\Omega` is learned exactly. Its costs, for ``n`` training and
``n_t`` test inputs, ``L`` layers, ``d`` classes and ``G <= d + 2`` kernels (the
distinct rows of :math:`\Omega`, the selected single depth, the uniform mix):

* memory, the largest of the stages: the subset kernels, float32,
  :math:`4 L m^2` (read from their stage file where a stage needs them); the
  learner's float64 fit and validation blocks, :math:`8 \cdot 0.8 L m^2`, and its
  own buffers, about :math:`12 d (0.8 m)^2`; the normal equations, :math:`8 G m^2`,
  with one kernel chunk, or with the subset kernels in the solve; the data;
* disk: the subset kernels and the checkpoints, about :math:`4 L m^2 + 8 G m^2 \cdot 2`;
* time: kernel entries :math:`L (m^2/2 + (n + n_t) m)` at the measured rate, plus
  :math:`n m^2 G` multiply-adds for the normal equations, plus the Omega learner
  (about 4 class solves of size :math:`0.8 m` per step, measured).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..core import NFTKInputError

__all__ = ["ScalePlan", "free_memory_bytes", "measure_rates", "plan_scalable"]

_GIB = 2**30
_STEP = 250  # landmarks are chosen in multiples of this


class ScalePlan(NamedTuple):
    """What a full-scale run will do and what it needs.

    Attributes:
        n_train, n_test, depth, n_classes: the problem.
        landmarks: ``m``, landmarks and size of the Omega-learning subset.
        chunk_rows: rows of :math:`K_{nm}` computed at a time.
        memory_bytes: expected peak memory of the run.
        disk_bytes: expected disk use of the run directory.
        memory_budget: bytes the run may use (free memory, or as given).
        free_disk: free bytes where the run directory lives.
        expected_s: expected wall time in seconds.
        kernel_rate: kernel entries x layers per second used for the estimate.
        flop_rate: float64 multiply-adds per second used for the estimate.
    """

    n_train: int
    n_test: int
    depth: int
    n_classes: int
    landmarks: int
    chunk_rows: int
    memory_bytes: int
    disk_bytes: int
    memory_budget: int
    free_disk: int
    expected_s: float
    kernel_rate: float
    flop_rate: float

    def line(self) -> str:
        """The one-line plan printed at the start of a run."""
        return (
            f"plan: n={self.n_train} train / {self.n_test} test, L={self.depth}, "
            f"subset and landmarks m={self.landmarks}, chunks of {self.chunk_rows} "
            f"rows; memory {self.memory_bytes / _GIB:.1f} of "
            f"{self.memory_budget / _GIB:.1f} GiB budget, disk "
            f"{self.disk_bytes / _GIB:.1f} of {self.free_disk / _GIB:.1f} GiB free; "
            f"expected {self.expected_s / 60:.0f} min (kernels at "
            f"{self.kernel_rate:.2g} entries x layers/s, {self.flop_rate:.2g} flop/s)"
        )


def free_memory_bytes() -> int:
    """Available memory: psutil if installed, else MemAvailable of /proc/meminfo."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


def measure_rates(spec, n_features: int) -> tuple[float, float]:
    """Kernel entries x layers per second and float64 flop/s, measured in ~1 s."""
    from scipy.linalg import blas

    from ..kernels import layerwise_kernels

    rng = np.random.default_rng(0)
    # a probe the size of one chunk of K_nm's rows (a smaller one measures the
    # call overhead, not the rate: 128 x 256 under-rated the compiled kernel ~3x)
    x = rng.random((1024, n_features), dtype=np.float32)
    layerwise_kernels(spec, x[:512], x, dtype=np.float32, devices=None)  # compile
    t0 = time.perf_counter()
    layerwise_kernels(spec, x[:512], x, dtype=np.float32, devices=None)
    kernel_rate = spec.depth * 512 * 1024 / max(time.perf_counter() - t0, 1e-6)
    b = rng.random((1024, 1536))
    blas.dsyrk(1.0, b[:64], trans=1)  # load BLAS before timing
    t0 = time.perf_counter()
    blas.dsyrk(1.0, b, trans=1)
    flop_rate = 1024 * 1536 * 1536 / max(time.perf_counter() - t0, 1e-6)
    return kernel_rate, flop_rate


def _needs(n, n_test, p, L, d, m, chunk) -> tuple[int, int]:
    """Peak memory and disk of a run, in bytes: the largest of its stages."""
    g = d + 2
    data = 4 * p * (n + n_test)
    subset = 4 * L * m * m  # float32 subset kernels, read from their stage file
    m_fit = 0.8 * m
    blocks = 8 * L * m_fit * m  # float64 fit and validation blocks
    # the dense learner's own buffers, about 1.5 d float64 fit-sized matrices
    # (measured: 1.6 GiB at m = 4750, d = 10)
    learner = 12 * d * m_fit * m_fit
    normal = 8 * g * m * m
    chunk_mem = 4 * (L + 8) * chunk * m + 8 * chunk * m * 2
    solve = normal + subset + 3 * 8 * m * m
    peak = data + max(subset + blocks, blocks + learner, normal + chunk_mem, solve)
    disk = subset + 2 * normal + 8 * g * (n_test + m) * d
    return int(peak * 1.15) + (300 << 20), int(disk)


def _expected_s(n, n_test, L, d, m, steps, kernel_rate, flop_rate) -> float:
    entries = L * (m * m / 2 + (n + n_test) * m)
    # Omega learning: about 4 dense class solves' worth of flops per step (measured:
    # 5 steps at m = 4750 took 49 s at 4.3e10 flop/s), for at most 15 steps (the
    # learner usually stops earlier).
    omega = min(steps, 15) * 4 * d * (0.8 * m) ** 3 / 3
    flops = n * m * m * (d + 2) + omega
    return entries / kernel_rate + flops / flop_rate + 30.0


def plan_scalable(
    n_train: int,
    n_test: int,
    n_features: int,
    depth: int,
    n_classes: int,
    *,
    out_dir: str | os.PathLike,
    landmarks: int | None = None,
    memory_budget: int | None = None,
    time_budget_s: float | None = 1500.0,
    chunk_rows: int = 1024,
    steps: int = 100,
    kernel_rate: float = 5e7,
    flop_rate: float = 2e10,
) -> ScalePlan:
    """Chooses the landmarks ``m`` (or checks a given one) against RAM, disk and time.

    Without ``landmarks`` the largest multiple of 250 (at most ``n_train``) whose
    memory fits ``memory_budget`` (default: the free memory), whose disk use fits
    the free space under ``out_dir``, and whose expected time fits
    ``time_budget_s`` (``None``: no time limit) is taken. ``steps`` is the Omega
    learner's step cap; ``kernel_rate`` (entries x layers per second) and
    ``flop_rate`` (float64 flop/s) are best measured (`measure_rates`).

    Raises:
        ValueError: if even the smallest plan, or the given ``landmarks``, needs
            more memory or disk than is free; the message gives both figures and
            the option that lowers the need.

    Example:
        >>> import tempfile
        >>> plan = plan_scalable(60000, 10000, 784, 10, 10,
        ...     out_dir=tempfile.gettempdir(), memory_budget=8 * 2**30,
        ...     time_budget_s=None)
        >>> plan.landmarks > 1000 and plan.memory_bytes <= 8 * 2**30
        True
    """
    budget = free_memory_bytes() if memory_budget is None else int(memory_budget)
    where = Path(out_dir)
    while not where.exists() and where != where.parent:
        where = where.parent
    free_disk = shutil.disk_usage(where).free

    def plan_for(m: int) -> ScalePlan:
        mem, disk = _needs(
            n_train, n_test, n_features, depth, n_classes, m, min(chunk_rows, n_train)
        )
        t = _expected_s(
            n_train, n_test, depth, n_classes, m, steps, kernel_rate, flop_rate
        )
        return ScalePlan(
            n_train, n_test, depth, n_classes, m, min(chunk_rows, n_train),
            mem, disk, budget, free_disk, t, kernel_rate, flop_rate,
        )  # fmt: skip

    def fits(p: ScalePlan, timed: bool) -> bool:
        on_time = not timed or time_budget_s is None or p.expected_s <= time_budget_s
        return p.memory_bytes <= budget and p.disk_bytes <= free_disk and on_time

    if landmarks is not None:
        plan = plan_for(min(int(landmarks), n_train))
        if not fits(plan, timed=False):
            raise NFTKInputError(_too_big(plan, "lower --landmarks (landmarks=)"))
        return plan
    sizes = sorted({min(n_train, k) for k in range(_STEP, n_train + _STEP, _STEP)})
    best = plan_for(sizes[0])
    if not fits(best, timed=False):
        raise NFTKInputError(
            _too_big(best, "free memory or disk, or pass a smaller memory need")
        )
    for m in sizes[1:]:
        candidate = plan_for(m)
        if not fits(candidate, timed=True):
            break
        best = candidate
    return best


def _too_big(plan: ScalePlan, remedy: str) -> str:
    return (
        f"the run with m={plan.landmarks} landmarks needs about "
        f"{plan.memory_bytes / _GIB:.1f} GiB of memory and "
        f"{plan.disk_bytes / _GIB:.1f} GiB of disk, but {plan.memory_budget / _GIB:.1f}"
        f" GiB of memory and {plan.free_disk / _GIB:.1f} GiB of disk are free; "
        f"{remedy}: memory grows as m^2 (halving m needs a quarter), or raise "
        "--memory-gb if more memory is really free."
    )
