r"""Peak memory of ``nftk fit`` (:func:`~nftk_jax.experiment._run_fit.run_fit`).

The run holds the training kernels :math:`\Theta_l(X, X)` (``L n^2`` floats of
the kernel dtype) from the start and the test kernels :math:`\Theta_l(X_*, X)`
(``L n m``) from after Omega learning to the end, written tile by tile into
64-byte aligned host buffers that JAX takes without a copy (``jax.device_put``;
:mod:`nftk_jax.core._buffers`); each stage adds its own arrays on top, and the
peak resident memory is the process's fixed part (Python, JAX, XLA,
neural-tangents, matplotlib: :data:`BASE_BYTES`) plus the largest stage, counted
in floats of the kernel dtype:

* kernels: both kernels and one tile's working set, ``L n^2 + L n m + min(8 n^2,
  T)``;
* Omega (learning, then the refit, :func:`~nftk_jax.mkl.learn_and_refit`): the
  training kernels and the larger of

  - learning: the fit and validation blocks, ``f L n^2`` floats of the dtype the
    learner computes in (float64 when x64 is enabled, whatever the kernel dtype;
    the blocks are converted while they are copied out), and the solver's arrays
    in that dtype: dense, per class a kernel, its shifted copy and its factor,
    ``3 d (f n)^2``; CG, the shared preconditioner's mean kernel, factor and
    inverse, ``3 (f n)^2``;
  - the refit on all ``n`` inputs with the learner's solver (``result.solver``),
    in the kernel dtype: dense, ``3 d n^2``; CG, ``3 n^2``;

  one float of the learner's dtype is ``w = learner_itemsize / itemsize`` floats
  of the kernel dtype (2 for float32 kernels with x64 enabled, else 1);
* baselines: both kernels, one layer's kernel (a single depth) or the uniform mix,
  its shifted copy, its factor and the products' temporaries,
  ``L n^2 + L n m + 6 n^2``;
* evaluation: the test kernels (the training kernels are released), ``L n m``;

with ``f`` the share of the training set Omega is learned on (0.8), ``d`` classes,
``T`` the tile budget of :func:`~nftk_jax.layerwise_kernels` in floats. The
learner factorises densely when its planner says so
(:func:`~nftk_jax.linalg.plan_solver`: a fit split of at most 2000 examples whose
factors fit in memory), and uses CG otherwise. With CG (the default job,
``n = 4000``) the kernel and Omega stages are close: about ``(1 + w f) L n^2``
floats for the Omega stage. Freed
C-heap memory is returned to the system after every stage (``malloc_trim``), so
a stage starts from what it holds, not from the previous stage's high-water mark.

:func:`fit_peak_bytes` is what ``nftk fit`` checks against the machine's memory
before any work; ``benchmarks/RESULTS.md`` ("Memory of nftk fit") compares it with
peaks measured by ``/usr/bin/time -v`` and tests/test_memory.py re-measures two
sizes, one on each solver path.
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


def _solver(n_fit: int, depth: int, n_classes: int) -> str:
    """``'dense'`` or ``'cg'``: what the learner's planner picks for the fit split.

    The learner plans in float64 whatever the kernel dtype; float32 against half
    the budget is the same rule without needing 64-bit JAX enabled here.
    """
    from ..linalg import default_memory_budget, plan_solver

    plan = plan_solver(
        max(int(n_fit), 1), depth, n_classes, dtype=np.float32,
        memory_budget=default_memory_budget() // 2,
    )  # fmt: skip
    return "dense" if plan == "dense" else "cg"


def fit_stage_floats(
    n: int,
    n_test: int,
    depth: int,
    n_classes: int,
    *,
    itemsize: int = 8,
    learner_itemsize: int = 8,
    validation_fraction: float = 0.2,
) -> dict[str, float]:
    """Floats (of the kernel dtype, ``itemsize`` bytes) alive at the peak of each
    stage of ``nftk fit`` (see the module doc); the learner computes in floats of
    ``learner_itemsize`` bytes (8 when x64 is enabled).

    Example:
        >>> s = fit_stage_floats(1000, 500, 10, 10)   # dense solves
        >>> max(s, key=s.get), s["omega"] / 1000**2
        ('omega', 40.0)
        >>> s = fit_stage_floats(4000, 1000, 10, 10)  # CG (fit split of 3200)
        >>> round(s["kernels"] / 4000**2, 2), round(s["omega"] / 4000**2, 2)
        (20.5, 19.92)
        >>> s32 = fit_stage_floats(4000, 1000, 10, 10, itemsize=4)  # float32, x64
        >>> round(s32["omega"] / 4000**2, 2)  # the learner's float64 count twice
        29.84
    """
    n, m, L, d = float(n), float(n_test), float(depth), float(n_classes)
    f = 1.0 - float(validation_fraction)
    w = learner_itemsize / itemsize  # a learner float, in kernel-dtype floats
    tile = _TILE_BYTES / itemsize
    nf = f * n
    train, test = L * n * n, L * n * m
    dense = _solver(round(nf), int(L), int(d)) == "dense"
    per_class = d if dense else 1.0  # dense: d factors; CG: one preconditioner
    learn = w * (f * L * n * n + 3 * per_class * nf * nf)
    refit = 3 * per_class * n * n
    return {
        "kernels": train + test + min(8 * n * n, tile),
        "omega": train + max(learn, refit),
        "baselines": train + test + 6 * n * n,
        "evaluation": test,
    }


def fit_peak_bytes(
    n: int,
    n_test: int,
    depth: int,
    n_classes: int,
    *,
    dtype: Any = np.float64,
    learner_dtype: Any = np.float64,
    validation_fraction: float = 0.2,
) -> int:
    """Estimated peak resident memory of ``nftk fit``, in bytes, for kernels of
    ``dtype`` and a learner computing in ``learner_dtype`` (float64 when x64 is
    enabled, float32 otherwise).

    Example:
        >>> round(fit_peak_bytes(4000, 1000, 10, 10) / 2**30, 2)   # default job
        2.94
    """
    item = np.dtype(dtype).itemsize
    stages = fit_stage_floats(
        n, n_test, depth, n_classes, itemsize=item,
        learner_itemsize=np.dtype(learner_dtype).itemsize,
        validation_fraction=validation_fraction,
    )  # fmt: skip
    return int(BASE_BYTES + item * max(stages.values()))
