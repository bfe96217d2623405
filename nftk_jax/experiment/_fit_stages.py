r"""The stages of one ``nftk fit`` run (:func:`~nftk_jax.experiment._run_fit.run_fit`).

Training kernels, ridge, Omega learning (the main split with its checkpoint, then
``K - 1`` further splits), test kernels (after Omega learning, which does not need
them, so that they do not add to its peak memory), baselines (cached in
``baselines.json``), evaluation against the baselines, files and figures; each
stage is timed (``kernels_s`` counts both kernels) and the peak resident memory
after it recorded (cumulative, ``VmHWM``).
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from ..core import progress_bar, write_json, write_npy
from ._run_ridge import choose_ridge as _choose_ridge

__all__ = ["peak_rss_gib", "run_stages"]


def peak_rss_gib() -> float:
    """This process's peak resident memory so far, in GiB (NaN where unknown).

    ``metrics['peak_rss_gib']`` records it after every stage, so the stage that
    sets the peak can be read off a run. On Linux it is the address space's high-water
    mark (``VmHWM``): ``getrusage``'s ``ru_maxrss`` survives ``exec``, so a run
    started from a large process (a test runner, a notebook) would report its
    parent's peak.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20  # kB
    except OSError:  # not Linux
        pass
    try:
        import resource
    except ImportError:  # pragma: no cover (Windows)
        return float("nan")
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 2**20  # Linux and BSD report KiB


def release_free_memory() -> None:
    """Return the C heap's free memory to the system (glibc's ``malloc_trim``).

    XLA's CPU buffers of a few MiB (kernel tiles, solver temporaries) come from
    the C heap, whose freed pages stay resident until trimmed; each stage would
    otherwise start from the previous stage's high-water mark. A no-op where
    glibc is not the C library.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # not glibc
        pass


def _splits(y_tr: np.ndarray, config: dict) -> tuple:
    """The ``K`` (fit, validation) splits; run 0 is the one ``fit_mkl`` makes.

    Run 0 also selects the single depth when the objective needs no validation
    part; with ``bootstrap`` the further runs resample their fitting parts.
    """
    from ..mkl import resample_splits

    K = int(config["resamples"])
    kw = {"validation_fraction": config["validation_fraction"], "seed": config["seed"]}
    splits = resample_splits(y_tr, max(K, 2), **kw)[:K]
    if config["bootstrap"] and K > 1:  # run 0 stays the run's own split
        splits = splits[:1] + resample_splits(y_tr, K, bootstrap=True, **kw)[1:]
    return splits


def _baselines(theta_tr, theta_te, y_tr, y_te, ridge, splits, d, progress) -> dict:
    """Test predictions of every single depth and of the uniform mix, and the depth
    each validation split selects (what the learned Omega is compared with)."""
    from ._baselines import reference_baselines

    L = theta_tr.shape[0]
    bar = progress_bar(
        L + 1 + len(splits), "baselines (single depths, uniform mix, depth selection)",
        enabled=progress, unit="fit",
    )  # fmt: skip
    ref = reference_baselines(
        theta_tr, theta_te, y_tr, y_te, ridge=ridge, splits=splits, n_classes=d,
        on_fit=None if bar is None else bar.update,
    )  # fmt: skip
    if bar is not None:
        bar.close()
    for key in ("single_correct", "uniform_correct"):  # compact in baselines.json
        ref[key] = np.asarray(ref[key], dtype=np.int8)
    return ref


def _train_kernels(spec, x_tr, n_test, normalize, dtype, progress, log):
    """The training kernels (JAX, over an aligned host buffer) and their scales."""
    import jax

    from ..kernels import layerwise_kernels

    L = spec.depth
    log(f"layerwise NTKs: {L} layers, {len(x_tr)} train x {n_test} test inputs")
    # A host buffer (no copy), scaled in place and taken by JAX as it is.
    label = "train kernels" if progress else False
    theta_tr = layerwise_kernels(spec, x_tr, dtype=dtype, progress=label, host=True)
    release_free_memory()  # the tiles' working set
    scale = np.ones(L)
    if normalize == "trace":
        scale = np.mean(np.diagonal(theta_tr, axis1=1, axis2=2), axis=1)
        theta_tr /= scale[:, None, None].astype(theta_tr.dtype)
    return jax.device_put(theta_tr), scale


def _test_kernels(spec, x_te, x_tr, scale, dtype, progress):
    """The test-versus-training kernels, scaled like the training kernels.

    Computed after Omega learning, which does not need them: they would sit beside
    the fit and validation slices at that stage's peak.
    """
    import jax

    from ..kernels import layerwise_kernels

    label = "test kernels" if progress else False
    theta_te = layerwise_kernels(
        spec, x_te, x_tr, dtype=dtype, progress=label, host=True
    )
    theta_te /= scale[:, None, None].astype(theta_te.dtype)
    return jax.device_put(theta_te)


def _learn_options(config: dict, d: int) -> dict:
    """The learner's settings of the run's configuration."""
    return {"objective": config["objective"], "constraint": config["constraint"],
            "steps": config["steps"], "tol": config["tol"],
            "solver": config["solver"], "n_classes": d}  # fmt: skip


def _learn_omega(theta_tr, y_tr, ridge_value, config, d, splits, ckpt, progress, log):
    """Omega on split 0 (resumable), alpha refit on all training inputs."""
    from ..mkl import array_kernels, learn_and_refit

    split = splits[0] if config["objective"] == "val_mse" else None
    log(
        f"learning Omega: objective={config['objective']}, "
        f"constraint={config['constraint']}"
    )
    return learn_and_refit(
        array_kernels(theta_tr), y_tr, split, ridge=ridge_value, checkpoint=ckpt,
        progress=progress, **_learn_options(config, d),
    )  # fmt: skip


def _learn_resamples(theta_tr, y_tr, ridge_value, config, d, splits, progress, log):
    """The results (Omega, refit alpha) on the further splits (no checkpoints)."""
    from ..mkl import array_kernels, learn_and_refit

    if len(splits) < 2:
        return []
    log(f"learning Omega on {len(splits) - 1} more validation splits")
    bar = progress_bar(
        len(splits) - 1, "Omega on more splits", enabled=progress, unit="split"
    )
    results = []
    for split in splits[1:]:
        results.append(learn_and_refit(
            array_kernels(theta_tr), y_tr, split, ridge=ridge_value,
            **_learn_options(config, d),
        ))  # fmt: skip
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    return results


def _ridge(theta_tr, y_tr, ctx) -> tuple[dict, dict | None]:
    """The ridge, and the baselines when a resumed run cached them (baselines.json)."""
    from ..linalg import encode_targets

    cached = ctx["out"] / "baselines.json"
    if cached.is_file():
        base = json.loads(cached.read_text())
        info = base["ridge"]
        ctx["log"](f"ridge = {info['value']:.4g} ({info['rule']}; reused)")
        return info, base
    y_enc, _ = encode_targets(y_tr, len(y_tr), n_classes=ctx["d"])
    info = _choose_ridge(
        theta_tr, y_enc, ctx["config"]["ridge"], ctx["ridge_grid"], ctx["log"]
    )
    ctx["log"](f"ridge = {info['value']:.4g} ({info['rule']})")
    return info, None


def _reference(theta_tr, theta_te, y_tr, y_te, info, ctx) -> dict:
    """The baselines, written to baselines.json (a resumed run reuses them)."""
    base = _baselines(
        theta_tr, theta_te, y_tr, y_te, info["value"], ctx["splits"], ctx["d"],
        ctx["progress"],
    )  # fmt: skip
    base["ridge"] = info
    write_json(ctx["out"] / "baselines.json", base)
    return base


def _evaluate(theta_te, y_te, results, base, seed) -> dict:
    """Test predictions of the learned Omegas (each refit on all training inputs
    with the learner's solver, as :func:`~nftk_jax.fit_mkl` refits) against the
    baselines."""
    from ..linalg import krr_predict
    from ._baselines import compare_learned

    learned = []
    for res in results:
        scores = np.asarray(krr_predict(theta_te, res.alpha, res.omega))
        learned.append(np.argmax(scores, axis=1) == y_te)
    return compare_learned(base, learned, seed=seed)


def run_stages(spec, dataset, out, config, *, dtype, progress, log, ridge_grid):
    y_tr, y_te = np.asarray(dataset.y_train), np.asarray(dataset.y_test)
    d = len(dataset.classes)
    timings: dict[str, float] = {}
    peaks: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - clock  # kernels: two laps
        clock = now
        peaks[name.removesuffix("_s")] = peak_rss_gib()
        release_free_memory()

    x_tr, x_te = np.asarray(dataset.x_train), np.asarray(dataset.x_test)
    theta_tr, scale = _train_kernels(
        spec, x_tr, len(x_te), config["normalize"], dtype, progress, log
    )
    lap("kernels_s")
    splits = _splits(y_tr, config)
    ctx = dict(out=out, config=config, d=d, splits=splits, ridge_grid=ridge_grid,
               progress=progress, log=log)  # fmt: skip
    info, base = _ridge(theta_tr, y_tr, ctx)
    lap("ridge_s")
    ridge = info["value"]
    result = _learn_omega(
        theta_tr, y_tr, ridge, config, d, splits, out / "checkpoint.npz", progress, log
    )
    results = [result]
    results += _learn_resamples(theta_tr, y_tr, ridge, config, d, splits, progress, log)
    omegas = [np.asarray(res.omega) for res in results]
    lap("omega_learning_s")
    theta_te = _test_kernels(spec, x_te, x_tr, scale, dtype, progress)
    lap("kernels_s")
    if base is None:
        base = _reference(theta_tr, theta_te, y_tr, y_te, info, ctx)
    lap("baselines_s")
    log(
        f"evaluating: test predictions of the learned Omega"
        f"{'s' if len(omegas) > 1 else ''}, bootstrap intervals, McNemar tests"
    )
    del theta_tr  # the refits are done: the evaluation needs the test kernels only
    baselines = _evaluate(theta_te, y_te, results, base, config["seed"])
    del theta_te
    lap("evaluation_s")
    metrics = _metrics(result, baselines, base["ridge"], scale, timings)
    _write_results(out, dataset, config, result, scale, metrics, omegas, splits)
    lap("files_s")
    metrics["timings_s"] = timings
    metrics["peak_rss_gib"] = peaks
    write_json(out / "metrics.json", metrics)  # last: it marks the run finished
    return metrics


def _metrics(result, baselines, ridge_info, scale, timings) -> dict:
    rows = baselines["rows"]
    single = [float(v) for v in baselines.pop("single_depth_test_accuracy")]
    hist = result.history
    return {
        "accuracy": {
            "learned_omega": rows[0]["test_accuracy"],
            "validation_selected_single_depth": rows[1]["test_accuracy"],
            "validation_selected_depth": rows[1]["depth"],
            "uniform_omega": rows[2]["test_accuracy"],
            "oracle_best_single_depth": rows[3]["test_accuracy"],
            "oracle_best_depth": rows[3]["depth"],
            "single_depth": single,
        },
        "baselines": baselines,
        "sparsity": float(np.mean(np.asarray(result.omega) == 0)),
        "ridge": ridge_info,
        "kernel_scale": scale,
        "converged": bool(result.converged),
        "stop_reason": result.stop_reason,
        "n_steps": int(result.n_steps),
        "history": {
            "objective": np.asarray(hist.objective),
            "grad_norm": np.asarray(hist.grad_norm),
            "sparsity": np.asarray(hist.sparsity),
        },
        "timings_s": timings,
    }


def _stability(out, omegas, splits, config) -> Any:
    """``K > 1``: the Omegas' stability, saved as omega_resamples.npy."""
    from ..mkl import summarise_omegas

    st = summarise_omegas(
        np.stack(omegas), splits=splits, bootstrap=config["bootstrap"]
    )
    write_npy(out / "omega_resamples.npy", st.omegas)
    return st


def _write_results(out, dataset, config, result, scale, metrics, omegas, splits):
    from ._figures import plot_omega_heatmaps, plot_omega_trajectory

    omega = np.asarray(result.omega)
    hist = result.history
    classes = list(dataset.classes)
    write_npy(out / "omega.npy", omega)
    write_npy(out / "omega_raw.npy", omega / scale[None, :])
    write_npy(out / "omega_trajectory.npy", np.asarray(hist.omega))
    plot_omega_heatmaps(
        omega, out / "fig2_omega.png", class_names=classes, title=config["title"]
    )
    if len(omegas) > 1:
        from ._stability_figures import plot_omega_stability

        st = _stability(out, omegas, splits, config)
        metrics["stability"] = {
            k: getattr(st, k)
            for k in ("mean", "lower", "upper", "confidence", "selection_frequency",
                      "rank_correlation", "mean_rank_correlation")
        }  # fmt: skip
        plot_omega_stability(
            st, out / "fig2_omega_stability.png", class_names=classes,
            title=config["title"],
        )  # fmt: skip
    if len(hist.objective) > 0:
        plot_omega_trajectory(
            np.asarray(hist.omega),
            out / "omega_trajectory.png",
            objective=np.asarray(hist.objective).tolist(),
            title=config["title"],
        )
