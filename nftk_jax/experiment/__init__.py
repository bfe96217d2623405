"""experiment layer (see docs/architecture.md)."""

from ._agreement import run_interpret
from ._exact_stage import ExactOptions
from ._figures import (
    interpretability_matrices,
    plot_omega_heatmaps,
    plot_omega_trajectory,
    row_normalise,
)
from ._plan import ScalePlan, plan_scalable
from ._run_dir import RunDirectoryError, open_run_dir, run_guard
from ._run_fit import run_fit, spec_config
from ._run_scalable import run_scalable_fit

__all__ = [
    "ExactOptions",
    "RunDirectoryError",
    "ScalePlan",
    "interpretability_matrices",
    "open_run_dir",
    "plan_scalable",
    "plot_omega_heatmaps",
    "plot_omega_trajectory",
    "row_normalise",
    "run_fit",
    "run_guard",
    "run_interpret",
    "run_scalable_fit",
    "spec_config",
]
