"""The recurrent architecture spec: a stacked RNN with a readout after every layer.

For layers ``l = 1..L`` and steps ``t = 1..T`` of a sequence ``x_1..x_T``
(``m`` features per step, hidden width ``n``)::

    g^{l,t} = (sigma_w / sqrt(n)) W^l h^{l,t-1}
              + (sigma_u / sqrt(m_l)) U^l h^{l-1,t} + sigma_b b^l
    h^{l,t} = phi(g^{l,t}),   h^{0,t} = x_t,   h^{l,0} = sigma_h xi^l
    f_l     = (sigma_v / sqrt(n)) V^l h^{l,T}

with standard normal ``W, U, b, V`` shared over time, ``m_1 = m``, ``m_l = n``
otherwise, and a fixed (untrained) standard normal initial state ``xi^l`` shared
by all inputs. Head ``l``'s kernel is the NTK of the depth-``l`` RNN with readout
``l``; see docs/rntk.md for the recursion.
"""

from __future__ import annotations

import dataclasses

from ..core import check_positive_float
from ._spec import check_size_and_activation

__all__ = ["RNN", "RNN_ACTIVATIONS"]

#: Activations with a closed-form recurrent kernel.
RNN_ACTIVATIONS = ("relu", "erf")


@dataclasses.dataclass(frozen=True)
class RNN:
    """A stacked Elman RNN with a readout of every layer's last hidden state.

    Args:
        depth: number of recurrent layers L (>= 1); one readout per layer.
        activation: ``'relu'`` or ``'erf'``.
        sigma_w: scale of the recurrent weights ``W^l`` (times ``1/sqrt(n)``).
        sigma_u: scale of the input weights ``U^l`` (times ``1/sqrt(fan_in)``).
        sigma_b: scale of the biases (0 removes them).
        sigma_h: scale of the fixed initial hidden state (0: a zero state).
        sigma_v: scale of every readout ``V^l`` (times ``1/sqrt(n)``).
        width: hidden width ``n`` of the finite network (the kernels do not
            depend on it).

    Example:
        >>> import numpy as np
        >>> from nftk_jax import RNN, layerwise_kernels
        >>> seqs = [np.ones((3, 2)), np.ones((5, 2))]
        >>> layerwise_kernels(RNN(depth=2), seqs).shape
        (2, 2, 2)
    """

    depth: int
    activation: str = "relu"
    sigma_w: float = 1.0
    sigma_u: float = 1.0
    sigma_b: float = 0.1
    sigma_h: float = 0.0
    sigma_v: float = 1.0
    width: int = 512

    def __post_init__(self):
        check_size_and_activation(
            self,
            RNN_ACTIVATIONS,
            "has no closed-form recurrent kernel here",
            list(RNN_ACTIVATIONS),
        )
        for name in ("sigma_w", "sigma_u", "sigma_v"):
            object.__setattr__(
                self, name, check_positive_float(getattr(self, name), name)
            )
        for name in ("sigma_b", "sigma_h"):
            value = check_positive_float(getattr(self, name), name, allow_zero=True)
            object.__setattr__(self, name, value)
