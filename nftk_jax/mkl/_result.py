"""What the Omega learner returns: :class:`NFTKResult`, its :class:`MKLHistory`,
and the :class:`MKLStep` a ``callback`` receives after every step."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..core import NFTKInputError
from ..linalg import krr_predict
from ..model import check_spec_inputs

__all__ = ["MKLHistory", "MKLStep", "NFTKResult"]


class MKLHistory(NamedTuple):
    """Trajectory of the Omega learner; entry 0 is the initial point."""

    objective: np.ndarray  # (T,) float64: objective value
    grad_norm: np.ndarray  # (T,) float64: ||Omega - P(Omega - grad)||_F
    sparsity: np.ndarray  # (T,) float64: fraction of exact zeros in Omega
    step_size: np.ndarray  # (T,) float64: accepted step (0 at entry 0)
    omega: np.ndarray  # (T, d, L) float64: Omega after each step
    time: np.ndarray  # (T,) float64: seconds since the start of the fit


class MKLStep(NamedTuple):
    """What ``callback`` receives after every accepted step."""

    step: int  # number of accepted steps so far
    omega: np.ndarray  # (d, L) float64
    objective: float  # objective value at omega
    grad_norm: float  # projected-gradient norm at omega
    step_size: float  # the accepted step


class NFTKResult(NamedTuple):
    """A fitted NFT-K model: learned Omega and the Theorem-1 dual coefficients.

    Predictions are :math:`f_c(x) = \\sum_l \\Omega_{cl}\\Theta_l(x, X)\\alpha_c`.
    """

    omega: np.ndarray  # (d, L) float64: learned layer weights
    alpha: np.ndarray  # (n, d) float64: dual coefficients on the training inputs
    ridge: float  # rho
    history: MKLHistory  # trajectory of the learner
    converged: bool  # a stopping rule fired before `steps` ran out
    n_steps: int  # accepted steps
    objective: str  # objective name
    constraint: str  # constraint name
    is_classification: bool  # targets were integer labels (centred one-hot)
    cond: np.ndarray  # (d,) float64: cond(K_c + rho I), NaN when not computed
    stop_reason: str = ""  # 'rel_change', 'grad_norm', 'stationary', 'steps',
    # 'line_search' (Armijo failed: not converged), 'callback'

    solver: str = "dense"  # linear solver used: 'dense' or 'cg'
    spec: Any = None  # MLP used to compute the kernels (fit_mkl), else None
    x_train: np.ndarray | None = None  # (n, features) training inputs, else None
    kernel_dtype: Any = None  # dtype the kernels were computed in (fit_mkl)
    n_evaluations: int = 0  # Omegas at which the d systems were solved (this run)
    solver_status: str = "converged"  # worst status of the linear solves (CG:
    # 'max_steps' or 'breakdown' make `converged` False); 'converged' for dense

    def __repr__(self) -> str:
        from ._summary import result_repr

        return result_repr(self)

    def predict_kernels(self, theta_cross: Any) -> np.ndarray:
        """Raw scores ``(m, d)`` from test-vs-train kernels ``(L, m, n)``."""
        tc = np.asarray(theta_cross, dtype=np.float64)
        L, n = self.omega.shape[1], self.alpha.shape[0]
        if tc.ndim != 3 or tc.shape[0] != L or tc.shape[2] != n:
            raise NFTKInputError(
                f"theta_cross must have shape (L, m, n) = ({L}, m, {n}) (test "
                f"against the {n} training inputs), got {tc.shape}."
            )
        with jax.enable_x64(True):
            out = krr_predict(jnp.asarray(tc), self.alpha, self.omega)
            return np.asarray(out, dtype=np.float64)

    def predict_labels_kernels(self, theta_cross: Any) -> np.ndarray:
        """Argmax class labels ``(m,)`` from test-vs-train kernels."""
        self._need_classification()
        return np.argmax(self.predict_kernels(theta_cross), axis=1)

    def predict(
        self, x: Any, return_std: bool = False, *, get: str = "ntk"
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Raw scores ``(m, d)`` for inputs ``x``; needs a result from ``fit_mkl``.

        With ``return_std=True``, also the Gaussian-process posterior standard
        deviation ``(m, d)`` of every class (``get='ntk'`` or ``'nngp'`` heads; see
        :func:`nftk_jax.mkl._uncertainty.predict_with_std`).
        """
        from ..kernels import layerwise_matvec

        if return_std or get != "ntk":
            from ._uncertainty import predict_with_std

            mean, std = predict_with_std(self, x, get=get)
            return (mean, std) if return_std else mean

        if self.spec is None or self.x_train is None:
            raise NFTKInputError(
                "this result was fit from precomputed kernels (fit_mkl_kernels), so it "
                "cannot compute kernels for new inputs; use "
                "predict_kernels(theta_cross) or fit with fit_mkl(spec, x, y, ...)."
            )
        xx = check_spec_inputs(self.spec, x, "x", like=self.x_train)
        # Streamed over kernel tiles: sum_l Omega[c, l] Theta_l(x, X) alpha_c, so
        # memory is one tile plus the (m, d) scores whatever m and n.
        with jax.enable_x64(True):
            out = layerwise_matvec(
                self.spec,
                xx,
                self.alpha,
                x2=self.x_train,
                omega=self.omega,
                dtype=self.kernel_dtype or np.float64,
            )
            return np.asarray(out, dtype=np.float64)

    def predict_labels(self, x: Any) -> np.ndarray:
        """Argmax class labels ``(m,)`` for inputs ``x``."""
        self._need_classification()
        return np.argmax(self.predict(x), axis=1)

    def _need_classification(self) -> None:
        if not self.is_classification:
            raise NFTKInputError(
                "labels are only defined for classification (y given as integer "
                "labels); use predict/predict_kernels for regression scores."
            )
