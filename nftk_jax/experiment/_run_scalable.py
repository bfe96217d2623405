r"""NFT-K on data too large for ``n x n`` kernels, in resumable stages.

Stages, each written to the run directory when it finishes (atomically, tied to the
data and settings by a digest), so a run killed at any point resumes without
recomputing finished stages and ends with the same result:

1. ``kernels``: layerwise NTKs of a stratified subset :math:`S` of ``m`` training
   images (float32, ``stage_kernels.npz``);
2. ``omega``: :math:`\Omega` learned exactly on :math:`S` (`fit_mkl_kernels`,
   ``val_mse`` on a stratified split of :math:`S`, its own checkpoint), the
   validation-selected single depth and the uniform mix (``stage_omega.npz``);
3. ``normal``: the Nystrom normal equations of every kernel over all ``n``
   training images, landmarks :math:`S`, accumulated chunk by chunk
   (``stage_normal.npz``, rewritten every ``checkpoint_seconds``);
4. ``solve``: the ``m x m`` solves (``stage_solve.npz``);
5. ``predict``: test scores, chunk by chunk (``stage_predict.npz``);
6. ``exact`` (optional): the learned-Omega predictor by exact Theorem 1 on all
   ``n`` images, CG over streamed kernel products, checkpointed every iteration
   (`stage_exact`). With ``nystrom=False`` stages 3-5 are skipped and this is the
   only fit on all images.

The kernels of a class share one pass over :math:`K_{nm}`: the distinct rows of
:math:`\Omega`, the selected depth and the uniform mix are ``G <= d + 2`` kernels.
See docs/scaling.md for the approximation and its measured cost.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..core import (
    NFTKInputError,
    ensure_writable_dir,
    jsonable,
    load_checkpoint,
    problem_digest,
    save_checkpoint,
    take_blocks,
    write_json,
    write_npy,
)
from ..model import MLP
from ._exact_stage import ExactOptions, exact_plan_line, stage_exact
from ._plan import ScalePlan
from ._run_fit import spec_config

__all__ = ["STAGES", "run_scalable_fit"]

#: The stages of a scalable run, in order.
STAGES = ("kernels", "omega", "normal", "solve", "predict")


class _Stages:
    """Loads and saves the stage files of one run directory."""

    def __init__(self, out: Path, digest: str, config: dict, callback):
        self.out, self.digest, self.config = out, digest, config
        self.callback = callback or (lambda event: None)
        self.resumed: dict[str, str] = {}

    def path(self, name: str) -> Path:
        return self.out / f"stage_{name}.npz"

    def load(self, name: str) -> dict[str, np.ndarray] | None:
        p = self.path(name)
        if not p.exists():
            return None
        return load_checkpoint(p, digest=self.digest)

    def save(self, name: str, state: dict[str, Any]) -> None:
        save_checkpoint(self.path(name), state, config=self.config, digest=self.digest)

    def event(self, name: str) -> None:
        self.callback(name)


def _subset(y: np.ndarray, m: int, seed: int) -> np.ndarray:
    from ..mkl import validation_split

    if m >= len(y):
        return np.arange(len(y))
    return validation_split(y, m / len(y), seed, stratify=True)[1]


def _stage_kernels(st: _Stages, spec, x_sub, progress, log) -> np.ndarray:
    """Computes and saves the subset kernels; returns their scale (`_layer_scale`)."""
    from ..kernels import layerwise_kernels

    if st.path("kernels").exists():
        st.resumed["kernels"] = "resumed"
        return _subset_kernels(st)[1]
    log(f"stage kernels: {spec.depth} layers on the {len(x_sub)}-image subset")
    theta = np.asarray(
        layerwise_kernels(spec, x_sub, dtype=np.float32, progress=progress)
    )
    st.save("kernels", {"theta": theta})
    st.resumed["kernels"] = "computed"
    st.event("kernels")
    return _layer_scale(theta)


def _layer_scale(theta: np.ndarray) -> np.ndarray:
    """``s_l``: the mean diagonal of each layer kernel, float64."""
    return np.mean(np.diagonal(theta, axis1=1, axis2=2), axis=1).astype(np.float64)


def _subset_kernels(st: _Stages) -> tuple[np.ndarray, np.ndarray]:
    """The subset's layer kernels from their stage file, trace-normalised in place
    (float32), and the float64 scale ``s_l`` (mean diagonal) they were divided by.

    Read from disk where needed rather than held in memory between stages, so that
    no stage holds them beside its own large arrays without need.
    """
    saved = st.load("kernels")
    if saved is None:  # pragma: no cover - the kernels stage ran before
        raise FileNotFoundError(f"{st.path('kernels')} is missing; rerun the fit.")
    theta = np.array(saved["theta"], dtype=np.float32, copy=False)
    del saved
    scale = _layer_scale(theta)
    theta /= scale[:, None, None].astype(np.float32)
    return theta, scale


def _val_accuracy(theta_fit, theta_val, y_enc, y_val, omega, ridge) -> float:
    """Validation accuracy of Theorem 1 with layer weights ``omega``: one ``n x n``
    system per distinct row of ``omega`` (no ``(d, n, n)`` stack, no device copy)."""
    import scipy.linalg

    from ..linalg import host_cholesky

    scores = np.empty((theta_val.shape[1], omega.shape[0]))
    rows, inverse = np.unique(omega, axis=0, return_inverse=True)
    for g, w in enumerate(rows):
        cls = np.flatnonzero(inverse.ravel() == g)
        chol, _ = host_cholesky(
            lambda w=w: np.tensordot(w, theta_fit, axes=1), ridge,
            what="the validation split's K + ridge I", remedy="Increase the ridge",
        )  # fmt: skip
        alpha = scipy.linalg.cho_solve((chol, True), y_enc[:, cls], check_finite=False)
        del chol
        scores[:, cls] = np.tensordot(w, theta_val, axes=1) @ alpha
    return float(np.mean(np.argmax(scores, axis=1) == y_val))


def _stage_omega(st: _Stages, y_sub, d, ridge, opts, progress, log) -> dict:
    from ..linalg import encode_targets
    from ..mkl import fit_mkl_kernels, validation_split

    saved = st.load("omega")
    if saved is not None:
        st.resumed["omega"] = "resumed"
        return saved
    theta, _ = _subset_kernels(st)
    L = theta.shape[0]
    fit, val = validation_split(y_sub, opts["validation_fraction"], opts["seed"], True)
    # float64 blocks copied out of the float32 subset kernels layer by layer: no
    # float64 copy of all of them, no (L, n_fit, m) intermediate; the float32
    # kernels are dropped before the learner runs
    th_fit = take_blocks(theta, fit, fit, dtype=np.float64)
    th_val = take_blocks(theta, val, fit, dtype=np.float64)
    del theta
    log(f"stage omega: learning Omega exactly on {len(fit)} + {len(val)} images")
    res = fit_mkl_kernels(
        th_fit, y_sub[fit], theta_val=th_val, y_val=y_sub[val], ridge=ridge,
        objective="val_mse", constraint=opts["constraint"], steps=opts["steps"],
        tol=opts["tol"], n_classes=d, checkpoint=str(st.out / "omega_checkpoint.npz"),
        progress=progress,
    )  # fmt: skip
    y_enc, _ = encode_targets(y_sub[fit], len(fit), n_classes=d)
    single = []
    for l in range(L):
        om = np.zeros((d, L))
        om[:, l] = 1.0
        single.append(_val_accuracy(th_fit, th_val, y_enc, y_sub[val], om, ridge))
    uniform = np.full((d, L), 1.0 / L)
    state = {
        "omega": np.asarray(res.omega),
        "val_single": np.asarray(single),
        "val_uniform": _val_accuracy(th_fit, th_val, y_enc, y_sub[val], uniform, ridge),
        "val_learned": _val_accuracy(
            th_fit, th_val, y_enc, y_sub[val], np.asarray(res.omega), ridge
        ),
        "n_steps": res.n_steps,
        "converged": bool(res.converged),
        "objective": np.asarray(res.history.objective),
        "trajectory": np.asarray(res.history.omega),
    }
    st.save("omega", state)
    st.resumed["omega"] = "computed"
    st.event("omega")
    return state


def _kernel_rows(omega: np.ndarray, best_depth: int) -> tuple[np.ndarray, dict]:
    """Distinct kernels: Omega's distinct rows, the selected depth, the uniform mix."""
    d, L = omega.shape
    rows, assign = [], {}
    for name, mat in (
        ("learned", omega),
        ("single", np.eye(L)[np.full(d, best_depth)]),
        ("uniform", np.full((d, L), 1.0 / L)),
    ):
        idx = []
        for c in range(d):
            match = [g for g, r in enumerate(rows) if np.array_equal(r, mat[c])]
            if not match:
                rows.append(mat[c].copy())
                match = [len(rows) - 1]
            idx.append(match[0])
        assign[name] = np.asarray(idx)
    return np.stack(rows), assign


def _stage_normal(st, spec, x, y_enc, x_sub, weights, scale, opts, progress, log):
    from ..linalg import NormalEquations, accumulate_normal_equations

    saved = st.load("normal")
    state = None
    if saved is not None:
        state = NormalEquations(saved["gram"], saved["rhs"], int(saved["rows_done"]))
        if state.rows_done == len(x):
            st.resumed["normal"] = "resumed"
            return state
        st.resumed["normal"] = f"continued from row {state.rows_done}"
    log(
        f"stage normal: K_nm^T K_nm of {len(weights)} kernels over {len(x)} images, "
        f"{len(x_sub)} landmarks"
    )
    last = [time.perf_counter()]

    def on_chunk(eq: NormalEquations) -> None:
        now = time.perf_counter()
        if now - last[0] >= opts["checkpoint_seconds"] and eq.rows_done < len(x):
            st.save("normal", eq._asdict())
            last[0] = time.perf_counter()
        st.event("normal_chunk")

    eq = accumulate_normal_equations(
        spec, x, y_enc, x_sub, weights, scale=scale, chunk_rows=opts["chunk_rows"],
        state=state, on_chunk=on_chunk, progress=progress,
    )  # fmt: skip
    st.save("normal", eq._asdict())
    st.resumed.setdefault("normal", "computed")
    st.event("normal")
    return eq


def _stage_solve(st, eq, weights, ridge, log) -> np.ndarray:
    from ..linalg import solve_normal_equations

    saved = st.load("solve")
    if saved is not None:
        st.resumed["solve"] = "resumed"
        return saved["alpha"]
    log(f"stage solve: {len(weights)} systems of size {eq.gram.shape[1]}")
    k_mm, _ = _subset_kernels(st)
    alpha, jitter = solve_normal_equations(eq, k_mm, weights, ridge=ridge)
    st.save("solve", {"alpha": alpha, "jitter": jitter})
    st.resumed["solve"] = "computed"
    st.event("solve")
    return alpha


def _stage_predict(st, spec, x_te, x_sub, weights, alpha, scale, opts, progress, log):
    from ..linalg import nystrom_predict

    saved = st.load("predict")
    start, out = 0, None
    if saved is not None:
        start, out = int(saved["rows_done"]), saved["scores"]
        if start == len(x_te):
            st.resumed["predict"] = "resumed"
            return out
        st.resumed["predict"] = f"continued from row {start}"
    log(f"stage predict: {len(x_te)} test images")
    holder = {}
    last = [time.perf_counter()]

    def on_chunk(done: int) -> None:
        now = time.perf_counter()
        if now - last[0] >= opts["checkpoint_seconds"] and done < len(x_te):
            st.save("predict", {"scores": holder["out"], "rows_done": done})
            last[0] = time.perf_counter()
        st.event("predict_chunk")

    if out is None:
        out = np.zeros((len(weights), len(x_te), alpha.shape[-1]))
    holder["out"] = out
    out = nystrom_predict(
        spec, x_te, x_sub, weights, alpha, scale=scale, chunk_rows=opts["chunk_rows"],
        start=start, out=out, on_chunk=on_chunk, progress=progress,
    )  # fmt: skip
    st.save("predict", {"scores": out, "rows_done": len(x_te)})
    st.resumed.setdefault("predict", "computed")
    st.event("predict")
    return out


def _nystrom_stages(
    st, timed, spec, arrays, x_sub, y_enc, rows, scale, ridge, opts, progress, log
) -> dict[str, float]:  # fmt: skip
    """Stages ``normal``, ``solve`` and ``predict``: the test accuracies of the
    kernel ``rows`` (learned, single depth, uniform) fitted by Nystrom KRR."""
    x_tr, x_te, y_te = arrays
    weights, assign = rows
    eq = timed(
        "normal", _stage_normal, st, spec, x_tr, y_enc, x_sub, weights, scale, opts,
        progress, log,
    )  # fmt: skip
    alpha = timed("solve", _stage_solve, st, eq, weights, ridge, log)
    del eq
    scores = timed(
        "predict", _stage_predict, st, spec, x_te, x_sub, weights, alpha, scale,
        opts, progress, log,
    )  # fmt: skip
    return _accuracies(scores, assign, y_te)


def _accuracies(scores, assign, y_te) -> dict[str, float]:
    d = scores.shape[-1]
    acc = {}
    for name, groups in assign.items():
        s = scores[groups, :, np.arange(d)].T  # (n_test, d): class c from its kernel
        acc[name] = float(np.mean(np.argmax(s, axis=1) == y_te))
    return acc


def _arrays(dataset) -> tuple:
    """``(x_train, x_test, y_train, y_test)``: float32 inputs, labels as given."""
    return (
        np.asarray(dataset.x_train, np.float32),
        np.asarray(dataset.x_test, np.float32),
        np.asarray(dataset.y_train),
        np.asarray(dataset.y_test),
    )


def _clear_stages(out: Path) -> None:
    for p in [*out.glob("stage_*.npz"), out / "omega_checkpoint.npz"]:
        p.unlink(missing_ok=True)


def _write_omega(out: Path, omega: np.ndarray, scale: np.ndarray) -> None:
    write_npy(out / "omega.npy", omega)
    write_npy(out / "omega_raw.npy", omega / scale[None, :])


def _scalable_metrics(
    acc, best_depth, om, omega, n_kernels, relative_ridge, scale, plan, st, timings
) -> dict:
    """What :func:`run_scalable_fit` writes to ``metrics.json`` (without the
    Nystrom stages, ``acc`` is ``None`` and only the selected depth is reported)."""
    accuracy = {"selected_depth": best_depth + 1}
    if acc is not None:
        accuracy.update(learned_omega=acc["learned"], uniform_omega=acc["uniform"],
                        selected_single_depth=acc["single"])  # fmt: skip
    metrics = {
        "accuracy": accuracy,
        "validation_accuracy": {
            "learned_omega": float(om["val_learned"]),
            "single_depth": np.asarray(om["val_single"]),
            "uniform_omega": float(om["val_uniform"]),
        },
        "sparsity": float(np.mean(omega == 0)),
        "n_kernels": n_kernels,
        "ridge": relative_ridge,
        "kernel_scale": scale,
        "omega_steps": int(om["n_steps"]),
        "omega_converged": bool(om["converged"]),
        "plan": plan._asdict(),
        "stages": dict(st.resumed),
        "timings_s": timings,
    }
    return metrics


def _exact_metrics(ex: dict, y_te: np.ndarray) -> dict:
    """The exact stage's entry of ``metrics.json``."""
    hits = np.argmax(ex["scores"], axis=1) == y_te
    return {
        "learned_omega": float(np.mean(hits)),
        "cg_iterations": int(ex["iterations"]),
        "cg_residual": float(np.max(ex["residual"])),
        "cg_status": str(ex["status"]),
        "seconds": float(ex["seconds"]),
    }


def _write_config(out, spec, name, arrays, m, relative_ridge, opts) -> dict:
    """Writes and returns ``config.json``: the run's identity (spec, digest of the
    ``(x_train, x_test, y_train, y_test)`` arrays, landmarks and learner options)."""
    x_tr, x_te, y_tr, y_te = arrays
    data_hash = problem_digest(
        {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te}, {}
    )
    config = {
        "spec": spec_config(spec), "dataset": name, "landmarks": m,
        "relative_ridge": relative_ridge, "data_sha256": data_hash,
        **{k: v for k, v in opts.items() if k != "checkpoint_seconds"},
    }  # fmt: skip
    write_json(out / "config.json", config)
    return config


def _plan_run(
    spec, x_tr, x_te, d, out, landmarks, memory_budget, time_budget_s, chunk_rows,
    steps,
) -> ScalePlan:  # fmt: skip
    """The planner's settings for this machine, from measured kernel and flop rates."""
    from ._plan import measure_rates, plan_scalable

    rates = measure_rates(spec, x_tr.shape[1])
    return plan_scalable(
        len(x_tr), len(x_te), x_tr.shape[1], spec.depth, d, out_dir=out,
        landmarks=landmarks, memory_budget=memory_budget,
        time_budget_s=time_budget_s, chunk_rows=chunk_rows, steps=steps,
        kernel_rate=rates[0], flop_rate=rates[1],
    )  # fmt: skip


def _check_fits(exact: ExactOptions | None, nystrom: bool) -> ExactOptions | None:
    """``exact`` validated; at least one fit on all training images is asked for."""
    if not nystrom and exact is None:
        raise NFTKInputError(
            "nystrom=False (--exact-only) leaves nothing to fit on all training "
            "images; pass exact=ExactOptions(...) (--exact) too."
        )
    return None if exact is None else exact.check()


def _timed(timings: dict, name: str, fn: Callable, *args) -> Any:
    """``fn(*args)``, its wall time recorded as ``timings[name + '_s']``."""
    t0 = time.perf_counter()
    value = fn(*args)
    timings[f"{name}_s"] = time.perf_counter() - t0
    return value


def run_scalable_fit(
    spec: MLP,
    dataset: Any,
    out_dir: str | Path,
    *,
    landmarks: int | None = None,
    memory_budget: int | None = None,
    time_budget_s: float | None = 1500.0,
    relative_ridge: float = 1e-3,
    constraint: str = "simplex",
    steps: int = 100,
    tol: float = 1e-5,
    validation_fraction: float = 0.2,
    seed: int = 0,
    chunk_rows: int = 1024,
    checkpoint_seconds: float = 120.0,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    callback: Callable[[str], Any] | None = None,
    plan: ScalePlan | None = None,
    exact: ExactOptions | None = None,
    nystrom: bool = True,
) -> dict:
    r"""NFT-K on all of a large data set without ``n x n`` kernels, resumably.

    :math:`\Omega` is learned exactly on a stratified subset :math:`S` of ``m``
    training images; then the Theorem-1 predictor of every class is fitted on all
    training images as Nystrom KRR with landmarks :math:`S` (the exact minimiser of
    the Theorem-1 objective over functions spanned by the landmarks' kernel
    sections), next to the validation-selected single depth and the uniform mix
    fitted the same way. Layer kernels are trace-normalised on :math:`S` and the
    ridge is ``relative_ridge`` (as in ``nftk fit``, whose kernels have unit mean
    diagonal).

    Args:
        spec: the architecture.
        dataset: a :class:`nftk_jax.data.Dataset`.
        out_dir: run directory; an interrupted run in it resumes.
        landmarks: ``m``; ``None``: the planner's choice (`plan_scalable`).
        memory_budget: bytes the run may use (``None``: the free memory).
        time_budget_s: wall-time target the planner sizes ``m`` for.
        relative_ridge: ridge on the trace-normalised kernels.
        constraint, steps, tol: the Omega learner's (see `fit_mkl_kernels`).
        validation_fraction: share of :math:`S` held out to learn Omega and to
            select the single depth.
        seed: seed of the subset and of the split.
        chunk_rows: rows of :math:`K_{nm}` computed at a time.
        checkpoint_seconds: how often the chunked stages are saved.
        overwrite: delete the stage files of an earlier run first.
        progress: progress bars with ETA.
        log: receives the plan line and one line per stage.
        callback: called with an event name after every stage (``'kernels'``,
            ``'omega'``, ``'normal'``, ``'solve'``, ``'predict'``) and chunk
            (``'normal_chunk'``, ``'predict_chunk'``); an exception raised in it
            stops the run as a kill would.
        plan: a precomputed `ScalePlan` (skips planning).
        exact: also fit the learned-Omega predictor by exact Theorem 1 on all
            training images (stage ``exact``: CG over streamed kernel products,
            see `ExactOptions`); its test accuracy is ``metrics['exact']``.
        nystrom: run the Nystrom stages (``normal``, ``solve``, ``predict``) and
            their three models; ``False`` (needs ``exact``) goes from
            :math:`\Omega` straight to the exact stage, which is then the only
            fit on all training images.

    Returns:
        The metrics written to ``metrics.json``: test accuracies of the learned
        Omega, the selected single depth and the uniform mix, the plan, the stage
        timings and which stages were resumed.
    """
    from ..linalg import encode_targets

    t_start = time.perf_counter()
    exact = _check_fits(exact, nystrom)
    out = ensure_writable_dir(out_dir, "out_dir")
    if overwrite:
        _clear_stages(out)
    x_tr, x_te, y_tr, y_te = _arrays(dataset)
    d = len(dataset.classes)
    if plan is None:
        plan = _plan_run(
            spec, x_tr, x_te, d, out, landmarks, memory_budget, time_budget_s,
            chunk_rows, steps,
        )  # fmt: skip
    log(plan.line())
    if exact is not None:
        log(exact_plan_line(plan, exact, d, nystrom))
    opts = dict(constraint=constraint, steps=steps, tol=tol, seed=seed,
                validation_fraction=validation_fraction, chunk_rows=plan.chunk_rows,
                checkpoint_seconds=checkpoint_seconds)  # fmt: skip
    m, arrays = plan.landmarks, (x_tr, x_te, y_tr, y_te)
    config = _write_config(out, spec, dataset.name, arrays, m, relative_ridge, opts)
    st = _Stages(out, problem_digest({}, config), config, callback)
    timings: dict[str, float] = {}
    timed = functools.partial(_timed, timings)
    sub = _subset(y_tr, m, seed)
    x_sub, y_sub = x_tr[sub], y_tr[sub]
    scale = timed("kernels", _stage_kernels, st, spec, x_sub, progress, log)
    om = timed("omega", _stage_omega, st, y_sub, d, relative_ridge, opts, progress, log)
    omega = np.asarray(om["omega"])
    best_depth = int(np.argmax(om["val_single"]))
    weights, assign = _kernel_rows(omega, best_depth)
    y_enc, _ = encode_targets(y_tr, len(y_tr), n_classes=d)
    acc = None
    if nystrom:
        acc = _nystrom_stages(st, timed, spec, (x_tr, x_te, y_te), x_sub, y_enc,
                              (weights, assign), scale, relative_ridge, opts,
                              progress, log)  # fmt: skip
    _write_omega(out, omega, scale)
    if exact is not None:
        ex = timed(
            "exact", stage_exact, st, spec, (x_tr, x_te), y_enc,
            omega / scale[None, :], relative_ridge, exact, progress, log,
        )  # fmt: skip
    timings["total_s"] = time.perf_counter() - t_start
    metrics = _scalable_metrics(
        acc, best_depth, om, omega, len(weights), relative_ridge, scale, plan, st,
        timings,
    )  # fmt: skip
    if exact is not None:
        metrics["exact"] = _exact_metrics(ex, y_te)
    write_json(out / "metrics.json", metrics)
    return json.loads(json.dumps(metrics, default=jsonable))
