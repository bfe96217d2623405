r"""scikit-learn estimators for NFT-K: infinite-width MLPs with learned layer weights.

:class:`NFTKClassifier` and :class:`NFTKRegressor` wrap :func:`~nftk_jax.fit_mkl`:
``fit`` computes the layerwise NTKs of an :class:`~nftk_jax.MLP`, learns
:math:`\Omega` and solves the Theorem-1 kernel ridge regression; ``predict``
computes the kernels between new and training inputs. They follow the scikit-learn
conventions (``get_params``/``set_params``/``clone``, ``score``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from ..core import NFTKInputError
from ..model import MLP, RNN, check_spec_inputs, input_features
from ._fit import fit_mkl
from ._result import NFTKResult

__all__ = ["NFTKClassifier", "NFTKRegressor"]


class _NFTKBase(BaseEstimator):
    def __init__(
        self,
        spec: MLP | None = None,
        *,
        depth: int = 10,
        activation: str = "relu",
        ridge: float = 1e-2,
        relative_ridge: bool = True,
        objective: str = "val_mse",
        constraint: str = "simplex",
        radius: float = 1.0,
        lower: float = 0.0,
        steps: int = 100,
        tol: float = 1e-5,
        learning_rate: float | None = None,
        solver: str = "auto",
        validation_fraction: float = 0.2,
        seed: int = 0,
        checkpoint: str | None = None,
        memory_budget: int | None = None,
        dtype: Any = None,
        progress: bool = False,
    ):
        self.spec = spec
        self.depth = depth
        self.activation = activation
        self.ridge = ridge
        self.relative_ridge = relative_ridge
        self.objective = objective
        self.constraint = constraint
        self.radius = radius
        self.lower = lower
        self.steps = steps
        self.tol = tol
        self.learning_rate = learning_rate
        self.solver = solver
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.checkpoint = checkpoint
        self.memory_budget = memory_budget
        self.dtype = dtype
        self.progress = progress

    def _spec(self) -> MLP | RNN:
        if self.spec is not None:
            if not isinstance(self.spec, (MLP, RNN)):
                raise NFTKInputError(
                    f"spec must be an nftk_jax.MLP, an RNN or None, got {self.spec!r}."
                )
            return self.spec
        return MLP(depth=self.depth, activation=self.activation)

    def _fit_targets(self, X: Any, targets: Any, **extra: Any) -> NFTKResult:
        res = fit_mkl(
            self._spec(),
            X,
            targets,
            ridge=self.ridge,
            relative_ridge=self.relative_ridge,
            objective=self.objective,
            constraint=self.constraint,
            radius=self.radius,
            lower=self.lower,
            steps=self.steps,
            tol=self.tol,
            learning_rate=self.learning_rate,
            solver=self.solver,
            validation_fraction=self.validation_fraction,
            seed=self.seed,
            checkpoint=self.checkpoint,
            memory_budget=self.memory_budget,
            dtype=self.dtype,
            progress=self.progress,
            **extra,
        )
        self.result_ = res
        self.omega_ = res.omega
        self.alpha_ = res.alpha
        self.history_ = res.history
        self.ridge_ = res.ridge
        self.n_features_in_ = input_features(res.spec, res.x_train)
        return res

    def _n_rows(self, X: Any) -> int:
        """Examples in ``X``: rows, or sequences for an RNN spec."""
        spec = self._spec()
        if isinstance(spec, RNN):
            return len(check_spec_inputs(spec, X, "X"))
        return len(np.asarray(X))

    def _check_fitted(self) -> NFTKResult:
        if not hasattr(self, "result_"):
            raise NFTKInputError(
                f"this {type(self).__name__} is not fitted yet; call fit(X, y) first."
            )
        return self.result_

    def decision_function(
        self, X: Any, return_std: bool = False, *, get: str = "ntk"
    ) -> Any:
        """Raw Theorem-1 scores ``(m, d)``; with ``return_std``, also their posterior
        standard deviations ``(m, d)`` (see :meth:`~nftk_jax.NFTKResult.predict`)."""
        return self._check_fitted().predict(X, return_std, get=get)


class NFTKClassifier(ClassifierMixin, _NFTKBase):
    r"""Infinite-width NFT-K classifier: per-class learned mixture of layer NTKs.

    Labels may be arbitrary (strings, non-contiguous integers); they are mapped to
    ``0..d-1`` with ``np.unique`` (``classes_``) and regressed as centred one-hot
    targets.

    Args:
        spec: the :class:`~nftk_jax.MLP`; ``None`` builds ``MLP(depth, activation)``.
        depth: number of layers ``L`` when ``spec`` is ``None``.
        activation: activation when ``spec`` is ``None``.
        ridge: :math:`\rho`; with ``relative_ridge`` a multiple of the mean
            diagonal of the training kernels (so it follows the kernel scale).
        relative_ridge: interpret ``ridge`` relative to the kernel scale.
        objective, constraint, radius, lower, steps, tol, learning_rate, solver,
        validation_fraction, seed, checkpoint, memory_budget, dtype, progress: as in
            :func:`~nftk_jax.fit_mkl`.

    Attributes:
        classes_: ``(d,)`` the sorted distinct labels.
        omega_: ``(d, L)`` learned layer weights.
        alpha_: ``(n, d)`` dual coefficients.
        history_: the learner's :class:`~nftk_jax.mkl.MKLHistory`.
        result_: the full :class:`~nftk_jax.NFTKResult`.
    """

    def fit(self, X: Any, y: Any) -> NFTKClassifier:
        """Learn Omega and the dual coefficients from ``X`` and labels ``y (n,)``."""
        y = np.asarray(y)
        if y.ndim != 1:
            raise NFTKInputError(
                f"y must be a 1-D array of labels, got shape {y.shape}; use "
                "NFTKRegressor for (n, d) targets."
            )
        n_rows = self._n_rows(X)
        if len(y) != n_rows:
            raise NFTKInputError(
                f"y has {len(y)} labels but X has {n_rows} rows; they must match."
            )
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise NFTKInputError(
                "y has a single class; a classifier needs >= 2 classes."
            )
        self._fit_targets(X, codes.astype(np.int64), n_classes=len(self.classes_))
        return self

    def predict(self, X: Any, return_std: bool = False) -> Any:
        """Predicted labels ``(m,)`` (elements of ``classes_``); with ``return_std``,
        also the posterior standard deviation ``(m, d)`` of every class score."""
        self._check_fitted()
        if return_std:
            mean, std = self.decision_function(X, True)
            return self.classes_[np.argmax(mean, axis=1)], std
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]


class NFTKRegressor(RegressorMixin, _NFTKBase):
    r"""Infinite-width NFT-K regressor (one learned layer mixture per output).

    ``y`` may be ``(n,)`` (one output; predictions are then ``(m,)``) or ``(n, d)``.
    Arguments and attributes are as in :class:`NFTKClassifier` (without
    ``classes_``).
    """

    def fit(self, X: Any, y: Any) -> NFTKRegressor:
        """Learn Omega and the dual coefficients from ``X`` and float targets ``y``."""
        y = np.asarray(y, dtype=np.float64)
        if y.ndim not in (1, 2):
            raise NFTKInputError(
                f"y must be (n,) or (n, d) targets, got shape {y.shape}."
            )
        self._single_output = y.ndim == 1
        self._fit_targets(X, y[:, None] if self._single_output else y)
        return self

    def predict(self, X: Any, return_std: bool = False, *, get: str = "ntk") -> Any:
        """Predictions ``(m,)`` for 1-D training targets, else ``(m, d)``; with
        ``return_std``, also their posterior standard deviations (same shape)."""
        out = self.decision_function(X, return_std, get=get)
        if not return_std:
            return out[:, 0] if self._single_output else out
        mean, std = out
        if self._single_output:
            return mean[:, 0], std[:, 0]
        return mean, std
