r"""Peak memory of ``nftk fit`` (:func:`~nftk_jax.experiment._run_fit.run_fit`).

The run holds the layer kernels :math:`\Theta_l(X, X)` (``L n^2`` floats) and
:math:`\Theta_l(X_*, X)` (``L n m``) throughout; each stage adds its own arrays on
top, and the peak resident memory is the process's fixed part (Python, JAX, XLA,
neural-tangents, matplotlib: :data:`BASE_BYTES`) plus the largest stage, in floats
of the kernel dtype:

* kernels: the train kernels and one tile's working set,
  ``L n^2 + min(8 n^2, T) + L n m + min(8 n m, T)``;
* baselines: the kernels, their JAX copy in the solve, one shared kernel, its
  shifted copy and its Cholesky factor, the test kernels and their JAX copy,
  ``2 L n^2 + 3 n^2 + 2 L n m``;
* Omega: the kernels, the fit and validation slices and their JAX copy, per class
  a kernel, its shifted copy and its factor (dense solver),
  ``(1 + 2 f) L n^2 + L n m + 3 d (f n)^2``;
* evaluation: as the baselines, but one kernel per class,
  ``2 L n^2 + 3 d n^2 + 2 L n m``;

with ``f`` the share of the training set Omega is learned on (0.8), ``d`` classes,
``T`` the tile budget of :func:`~nftk_jax.layerwise_kernels` in floats. With the
CG solver (fit split above 2000) the Omega stage holds ``3 (f n)^2`` for the
preconditioner instead of ``3 d (f n)^2``. For ``L = d`` the evaluation stage
dominates: about ``(5 L n^2 + 2 L n m)`` floats.

:func:`fit_peak_bytes` is what ``nftk fit`` checks against the machine's memory
before any work; ``benchmarks/RESULTS.md`` ("Memory of nftk fit") compares it with
peaks measured by ``/usr/bin/time -v`` and tests/test_memory.py re-measures two
sizes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["BASE_BYTES", "fit_peak_bytes", "fit_stage_floats"]

#: Resident memory of a run besides its arrays: Python, JAX and XLA with the
#: compiled kernel and solver programs, neural-tangents, matplotlib, scipy.stats,
#: the data (0.42 GiB after the kernels of n = 500, and about 0.1 GiB more for
#: compiling the Omega learner; benchmarks/RESULTS.md, "Memory of nftk fit").
BASE_BYTES = int(0.50 * 2**30)
#: Working-set bytes of one kernel tile (``layerwise_kernels``' default budget).
_TILE_BYTES = 1 << 30
#: The learner factorises densely up to this many fit examples (solver='auto').
_DENSE_MAX_N = 2000


def fit_stage_floats(
    n: int,
    n_test: int,
    depth: int,
    n_classes: int,
    *,
    itemsize: int = 8,
    validation_fraction: float = 0.2,
) -> dict[str, float]:
    """Floats alive at the peak of each stage of ``nftk fit`` (see the module doc).

    Example:
        >>> s = fit_stage_floats(1000, 500, 10, 10)
        >>> max(s, key=s.get), s["evaluation"] / 1000**2
        ('evaluation', 60.0)
    """
    n, m, L, d = float(n), float(n_test), float(depth), float(n_classes)
    f = 1.0 - float(validation_fraction)
    tile = _TILE_BYTES / itemsize
    nf = f * n
    solver = 3 * (d if nf <= _DENSE_MAX_N else 1.0) * nf * nf
    return {
        "kernels": L * n * n + min(8 * n * n, tile) + L * n * m + min(8 * n * m, tile),
        "baselines": 2 * L * n * n + 3 * n * n + 2 * L * n * m,
        "omega": (1 + 2 * f) * L * n * n + L * n * m + solver,
        "evaluation": 2 * L * n * n + 3 * d * n * n + 2 * L * n * m,
    }


def fit_peak_bytes(
    n: int,
    n_test: int,
    depth: int,
    n_classes: int,
    *,
    dtype: Any = np.float64,
    validation_fraction: float = 0.2,
) -> int:
    """Estimated peak resident memory of ``nftk fit``, in bytes.

    Example:
        >>> round(fit_peak_bytes(4000, 1000, 10, 10) / 2**30, 1)   # default job
        7.1
    """
    item = np.dtype(dtype).itemsize
    stages = fit_stage_floats(
        n, n_test, depth, n_classes, itemsize=item,
        validation_fraction=validation_fraction,
    )  # fmt: skip
    return int(BASE_BYTES + item * max(stages.values()))
