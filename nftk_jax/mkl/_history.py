"""The learner's state between steps and its history: what is recorded after
every step, packed into a checkpoint and restored from one."""

from __future__ import annotations

import os
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..core import CheckpointError, load_checkpoint, problem_digest, save_checkpoint
from ._result import MKLHistory

__all__ = ["Checkpoint", "History", "LoopState"]


class LoopState(NamedTuple):
    """The learner's state between steps (everything a checkpoint must restore)."""

    omega: jax.Array  # (d, L) float64: current feasible Omega
    value: float  # objective at omega
    grad: jax.Array  # (d, L) float64: gradient at omega
    alpha: jax.Array  # (n, d) float64: (K_c + rho I)^{-1} y_c at omega
    adjoint: jax.Array  # (n, d) float64: last adjoint solution (zeros if none)
    t_next: float  # first trial step of the next Armijo search (0: not yet set)
    n_small: int  # consecutive steps with relative change < rel_tol
    step: int  # accepted steps so far
    converged: bool  # a stopping rule fired
    stop_reason: str  # why the loop stopped ('' while running)
    opt_state: Any  # optax state (None without an optax step rule)


class History:
    """The trajectory: one entry per recorded state (entry 0: the start)."""

    def __init__(self, entries: dict[str, list] | None = None):
        self.entries = entries or {k: [] for k in MKLHistory._fields}
        times = self.entries["time"]
        self._t_offset = float(times[-1]) if times else 0.0
        self._t_start = time.perf_counter()

    def record(self, state: LoopState, grad_norm: float, step_size: float) -> None:
        """Append ``state`` with its projected-gradient norm and accepted step."""
        om = np.asarray(state.omega, dtype=np.float64)
        e = self.entries
        e["objective"].append(state.value)
        e["grad_norm"].append(grad_norm)
        e["sparsity"].append(float(np.mean(om == 0.0)))
        e["step_size"].append(step_size)
        e["omega"].append(om)
        e["time"].append(self._t_offset + time.perf_counter() - self._t_start)

    def last(self, field: str) -> Any:
        """The latest entry of ``field``."""
        return self.entries[field][-1]

    def result(self, d: int, L: int) -> MKLHistory:
        """The :class:`MKLHistory` of the entries, ``omega`` as ``(T, d, L)``."""
        return MKLHistory(
            *(
                np.asarray(self.entries[k], dtype=np.float64).reshape(
                    (-1, d, L) if k == "omega" else (-1,)
                )
                for k in MKLHistory._fields
            )
        )

    def pack(self, state: LoopState, solver_status: str) -> dict[str, np.ndarray]:
        """``state`` and the history as the arrays of a checkpoint."""
        out = {
            "omega": np.asarray(state.omega, dtype=np.float64),
            "value": np.float64(state.value),
            "grad": np.asarray(state.grad, dtype=np.float64),
            "alpha": np.asarray(state.alpha, dtype=np.float64),
            "adjoint": np.asarray(state.adjoint, dtype=np.float64),
            "t_next": np.float64(state.t_next),
            "n_small": np.int64(state.n_small),
            "step": np.int64(state.step),
            "converged": np.bool_(state.converged),
            "stop_reason": np.asarray(state.stop_reason),
            "finished": np.bool_(bool(state.stop_reason)),
            "solver_status": np.asarray(solver_status),
        }
        for k in MKLHistory._fields:
            out["history_" + k] = np.asarray(self.entries[k], dtype=np.float64)
        leaves = [] if state.opt_state is None else jax.tree.leaves(state.opt_state)
        out["opt_n_leaves"] = np.int64(len(leaves))
        for i, leaf in enumerate(leaves):
            out[f"opt_leaf_{i}"] = np.asarray(leaf)
        return out

    @classmethod
    def restore(
        cls, saved: dict[str, np.ndarray], step_rule: Any, shape: tuple[int, int]
    ) -> tuple[LoopState, History, str]:
        """The state, history and solver status packed in ``saved``.

        Raises:
            CheckpointError: ``saved`` lacks an entry or its shapes differ.
        """
        try:
            omega = saved["omega"]
            if omega.shape != shape:
                raise KeyError("omega shape")
            state = LoopState(
                jnp.asarray(omega),
                float(saved["value"]),
                jnp.asarray(saved["grad"]),
                jnp.asarray(saved["alpha"]),
                jnp.asarray(saved["adjoint"]),
                float(saved["t_next"]),
                int(saved["n_small"]),
                int(saved["step"]),
                bool(saved["converged"]),
                str(saved["stop_reason"]),
                _restore_opt_state(saved, step_rule, omega),
            )
            entries = {k: list(saved["history_" + k]) for k in MKLHistory._fields}
            status = str(saved["solver_status"])
        except KeyError as e:
            raise CheckpointError(
                f"checkpoint is incomplete or from another configuration ({e}); "
                "delete it or pass a new checkpoint path."
            ) from e
        return state, cls(entries), status


def _restore_opt_state(saved, step_rule, omega) -> Any:
    template = step_rule.init(jnp.asarray(omega))
    if template is None:
        return None
    treedef = jax.tree.structure(template)
    n_leaves = int(saved["opt_n_leaves"])
    if n_leaves != treedef.num_leaves:
        raise KeyError("optimizer state")
    leaves = [jnp.asarray(saved[f"opt_leaf_{i}"]) for i in range(n_leaves)]
    return jax.tree.unflatten(treedef, leaves)


class Checkpoint:
    """A checkpoint file tied to one problem: its ``digest`` and ``config``."""

    def __init__(self, path: str | None, arrays: dict[str, Any], config: dict):
        self.path = path
        self.config = config
        self.digest = None if path is None else problem_digest(arrays, config)

    def load(self) -> dict[str, np.ndarray] | None:
        """The saved arrays, or ``None`` without a file.

        Raises:
            CheckpointError: the file belongs to another problem or is corrupt.
        """
        if self.path is None or not os.path.exists(self.path):
            return None
        return load_checkpoint(self.path, digest=self.digest, config=self.config)

    def save(self, state: LoopState, history: History, solver_status: str) -> None:
        """Write ``state`` and ``history`` (atomically); nothing without a path."""
        if self.path is None:
            return
        packed = history.pack(state, solver_status)
        save_checkpoint(self.path, packed, config=self.config, digest=self.digest)
