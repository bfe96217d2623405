"""finite layer (see docs/architecture.md)."""

from ._network import (
    FiniteNetwork,
    PaperModeResult,
    TrainResult,
    combined_empirical_ntk,
    head_empirical_ntks,
    nftk_network,
    ridge_to_weight_decay,
    train_network,
    train_paper_mode,
    weight_decay_to_ridge,
)
from ._width_study import WidthStudy, compare_widths, plot_width_study

__all__ = [
    "FiniteNetwork",
    "PaperModeResult",
    "TrainResult",
    "WidthStudy",
    "combined_empirical_ntk",
    "compare_widths",
    "head_empirical_ntks",
    "nftk_network",
    "plot_width_study",
    "ridge_to_weight_decay",
    "train_network",
    "train_paper_mode",
    "weight_decay_to_ridge",
]
