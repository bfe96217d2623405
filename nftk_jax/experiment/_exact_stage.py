r"""The ``exact`` stage of a full-scale run: Theorem 1 on all ``n`` training images.

After the Nystrom stages, the per-class systems :math:`(K_c + \rho I)\alpha_c =
y_c` with :math:`K_c = \sum_l \Omega_{cl}\Theta_l / s_l` are solved exactly (no
approximation of the kernel) by conjugate gradients batched over the classes,
where every product is one streamed pass over the kernel tiles of all ``n``
training images (each tile's layer heads mixed per class before multiplying; no
``n x n`` storage). The preconditioner is, per class, the rank-``r`` Nystrom
approximation of that class's kernel from one set of uniform landmarks (or of the
mean kernel, shared), its complement scaled by :math:`\lambda_r + \rho`
(Frangella, Tropp and Udell): deep ReLU NTKs have a spectral floor far above a
relative ridge of ``1e-3``, and with that floor in the preconditioner the
iteration count barely depends on ``r``, while the learned :math:`\Omega` weights
different layers for different classes, which a shared preconditioner cannot
follow (docs/scaling.md has the measurements).

The CG state is checkpointed after every iteration (``stage_exact_cg.npz``, a few
``n x d`` arrays, kept after the stage ends), so a killed run continues from its
last iteration, and a run with a tighter ``tol`` or a larger ``maxiter``
continues the finished iteration instead of starting over; the test scores are
``stage_exact.npz``. Both are tied by their own digest to the run's configuration
plus the stage's options (the CG state to the preconditioner's), so the Nystrom
stages of an earlier run in the same directory are reused as they are.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import jax
import numpy as np

from ..core import (
    CheckpointError,
    NFTKInputError,
    load_checkpoint,
    problem_digest,
    save_checkpoint,
)

__all__ = ["ExactOptions", "exact_plan_line", "stage_exact"]


class ExactOptions(NamedTuple):
    """Options of the exact stage (validated by :meth:`check`).

    Attributes:
        rank: landmarks ``r`` of the Nystrom preconditioner.
        tol: relative residual at which CG stops, per class.
        maxiter: iteration cap.
        seed: seed of the preconditioner's landmark draw.
        per_class: one Nystrom preconditioner per class (``d`` bases of
            ``n x r`` float32) instead of one of the mean kernel.
    """

    rank: int = 1000
    tol: float = 1e-2
    maxiter: int = 100
    seed: int = 0
    per_class: bool = True

    def check(self) -> ExactOptions:
        """Returns ``self`` when every option is valid; raises `NFTKInputError`
        naming the option (and its command-line flag) otherwise."""
        checks = (
            ("rank", "--cg-rank", isinstance(self.rank, int) and self.rank >= 1,
             "an integer >= 1"),
            ("tol", "--cg-tol", 0.0 < float(self.tol) < 1.0, "in (0, 1)"),
            ("maxiter", "--cg-maxiter",
             isinstance(self.maxiter, int) and self.maxiter >= 1, "an integer >= 1"),
            ("per_class", "--cg-preconditioner", isinstance(self.per_class, bool),
             "True or False"),
        )  # fmt: skip
        for name, flag, ok, want in checks:
            if not ok:
                raise NFTKInputError(
                    f"ExactOptions.{name} ({flag} of nftk fit) must be {want}, "
                    f"got {getattr(self, name)!r}."
                )
        return self


def exact_plan_line(plan: Any, opts: ExactOptions, d: int, nystrom: bool) -> str:
    """The exact stage's line of the plan: its passes, their expected time at the
    planner's measured kernel rate, and the preconditioner's memory."""
    n = plan.n_train
    pass_s = n * (n + 1) / 2 * plan.depth / plan.kernel_rate
    bases = (d if opts.per_class else 1) * n * min(opts.rank, n) * 4
    skip = "; Nystrom stages skipped" if not nystrom else ""
    return (
        f"exact stage: at most {opts.maxiter} CG iterations of one streamed pass "
        f"each (about {pass_s:.0f} s per pass, {opts.maxiter * pass_s / 60:.0f} min "
        f"at most), preconditioner bases {bases / 2**30:.1f} GiB{skip}"
    )


def _digests(base: str, opts: ExactOptions) -> tuple[tuple, tuple]:
    """``(digest, config)`` of the CG state and of the finished scores. The CG
    iteration depends on the preconditioner (rank, seed, per class) only, so a run
    may continue it with another ``tol`` or ``maxiter``; the scores depend on all."""
    cg = {"base": base, "rank": opts.rank, "seed": opts.seed,
          "per_class": bool(opts.per_class)}  # fmt: skip
    done = {**cg, "tol": opts.tol, "maxiter": opts.maxiter}
    return (problem_digest({}, cg), cg), (problem_digest({}, done), done)


def _finished(path, digest: str) -> dict[str, Any] | None:
    """The finished stage's results if its file was written with these options,
    read once; ``None`` otherwise (the CG then continues from its own checkpoint
    and the file is replaced)."""
    if not path.exists():
        return None
    try:
        return dict(load_checkpoint(path, digest=digest))
    except CheckpointError:
        return None


def stage_exact(
    st: Any, spec, arrays, y_enc, omega_raw, ridge, opts: ExactOptions, progress, log
) -> dict[str, Any]:
    """Exact Theorem-1 test scores ``(n_test, d)`` for the layer weights
    ``omega_raw`` (on raw kernels), with the CG's iterations, residuals and time."""
    from ..kernels import layerwise_matvec
    from ..linalg import CGState, nystrom_preconditioner, solve_cg_matrix_free

    x_tr, x_te = arrays
    (digest, config), (done_digest, done_config) = _digests(st.digest, opts)
    done_path, cg_path = st.path("exact"), st.path("exact_cg")
    done = _finished(done_path, done_digest)
    if done is not None:
        st.resumed["exact"] = "resumed"
        return done
    state = None
    if cg_path.exists():
        saved = load_checkpoint(cg_path, digest=digest, config=config)
        state = CGState(**{f: saved[f] for f in CGState._fields})
        st.resumed["exact"] = f"continued from CG iteration {int(state.k)}"
    which = "per-class" if opts.per_class else "shared"
    log(
        f"stage exact: Theorem 1 on all {len(x_tr)} images by CG over streamed "
        f"kernel products, rank-{opts.rank} {which} Nystrom preconditioner, "
        f"tol {opts.tol:g}, at most {opts.maxiter} iterations"
    )
    t0 = time.perf_counter()
    pre = nystrom_preconditioner(
        None, omega_raw, ridge=ridge, rank=opts.rank, seed=opts.seed, spec=spec,
        x=x_tr, dtype=np.float32, per_class=opts.per_class,
    )  # fmt: skip

    def on_iteration(s) -> None:
        save_checkpoint(cg_path, {f: np.asarray(v) for f, v in s._asdict().items()},
                        config=config, digest=digest)  # fmt: skip
        st.event("exact_iteration")

    sol = solve_cg_matrix_free(
        spec, x_tr, y_enc, omega_raw, ridge=ridge, tol=opts.tol,
        maxiter=opts.maxiter, preconditioner=pre, dtype=np.float32,
        progress=progress, state=state, on_iteration=on_iteration,
    )  # fmt: skip
    del pre
    # float64 sums of the float32 tiles where JAX allows 64-bit arrays
    wide = np.float64 if jax.config.jax_enable_x64 else np.float32
    scores = layerwise_matvec(
        spec, x_te, np.asarray(sol.alpha), x2=x_tr, omega=omega_raw,
        dtype=np.float32, product_dtype=wide, progress=progress,
    )  # fmt: skip
    result = {
        "scores": np.asarray(scores),
        "iterations": sol.iterations,
        "residual": np.asarray(sol.residual),
        "status": np.asarray(sol.status),
        "seconds": time.perf_counter() - t0,
    }
    save_checkpoint(done_path, result, config=done_config, digest=done_digest)
    st.resumed.setdefault("exact", "computed")
    st.event("exact")
    return result
