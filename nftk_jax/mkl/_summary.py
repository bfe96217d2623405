"""A short, readable ``repr`` of a fitted model: shapes and key figures only."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["result_repr"]


def _shape(a: Any) -> str:
    if a is None:
        return "None"
    return "x".join(str(s) for s in np.shape(a)) or "scalar"


def _spec(spec: Any) -> str:
    if spec is None:
        return "None"
    return f"MLP(depth={spec.depth}, activation={spec.activation!r})"


def result_repr(res: Any) -> str:
    """``NFTKResult(...)`` with array shapes, the ridge, steps and final figures.

    Arrays are shown by their shapes (``omega (d, L)``, ``alpha (n, d)``), never
    their values; the key figures are the final objective, the share of exact
    zeros in Omega and why the learner stopped.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> h = NS(objective=np.array([2.0, 1.0]))
        >>> r = NS(omega=np.zeros((3, 2)), alpha=np.zeros((5, 3)), ridge=0.1,
        ...        objective="val_mse", constraint="simplex", solver="dense",
        ...        n_steps=1, converged=True, stop_reason="rel_change", history=h,
        ...        is_classification=True, spec=None, x_train=None)
        >>> print(result_repr(r))
        NFTKResult(omega 3x2, alpha 5x3, classification, ridge=0.1, objective='val_mse' 1 after 1 step(s) (converged: rel_change), constraint='simplex' (100.0% zeros), solver='dense', spec=None, x_train None)
    """  # noqa: E501
    omega = np.asarray(res.omega)
    zeros = 100.0 * float(np.mean(omega == 0)) if omega.size else 0.0
    obj = np.asarray(res.history.objective) if res.history is not None else []
    final = f" {float(obj[-1]):.4g}" if len(obj) else ""
    status = "converged" if res.converged else "not converged"
    reason = f": {res.stop_reason}" if res.stop_reason else ""
    kind = "classification" if res.is_classification else "regression"
    return (
        f"NFTKResult(omega {_shape(omega)}, alpha {_shape(res.alpha)}, {kind}, "
        f"ridge={res.ridge:.4g}, objective={res.objective!r}{final} after "
        f"{res.n_steps} step(s) ({status}{reason}), constraint={res.constraint!r} "
        f"({zeros:.1f}% zeros), solver={res.solver!r}, spec={_spec(res.spec)}, "
        f"x_train {_shape(res.x_train)})"
    )
