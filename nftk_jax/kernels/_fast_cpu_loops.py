"""The numba loops of the compiled CPU kernel (imported on first use only).

See :mod:`._fast_cpu` for what they compute and why. Every function here is
compiled in the dtype of its arrays; scalars come from the float vectors ``P``
(architecture) and ``K`` (constants), so no Python float literal promotes a
float32 computation to float64. The column loops are straight-line code with
selects only; the branches on the activation, parameterisation and heads sit
outside them. The arithmetic only commutes row and column terms, so a symmetric
Gram matrix with equal row and column vectors gives an exactly symmetric tile.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from ._fast_cpu import (
    ABRELU,
    ERF,
    GELU,
    K_ONE,
    K_PI,
    K_PI2,
    K_PI4,
    K_R,
    K_TAN,
    K_ZERO,
    LINEAR,
)

_jit = nb.njit(error_model="numpy", cache=True, fastmath=False)
_inline = nb.njit(error_model="numpy", cache=True, fastmath=False, inline="always")


@_inline
def _atan2nn(y, x, K):
    """atan2(y, x) for y, x >= 0, in [0, pi/2] (see _special.atan2_nonneg)."""
    hi = max(x, y)
    lo = min(x, y)
    big = lo > K[K_TAN] * hi
    num = lo - hi if big else lo
    den = lo + hi if big else hi
    t = num / (den if den > K[K_ZERO] else K[K_ONE])
    z = t * t
    p = K[K_R + 9]
    p = p * z + K[K_R + 8]
    p = p * z + K[K_R + 7]
    p = p * z + K[K_R + 6]
    p = p * z + K[K_R + 5]
    p = p * z + K[K_R + 4]
    p = p * z + K[K_R + 3]
    p = p * z + K[K_R + 2]
    p = p * z + K[K_R + 1]
    p = p * z + K[K_R + 0]
    r = t + t * (z * p)
    if big:
        r = r + K[K_PI4]
    return K[K_PI2] - r if y > x else r


@_inline
def _signed_atan2(y, x, K):
    r = _atan2nn(abs(y), x, K)
    return -r if y < K[K_ZERO] else r


@_inline
def _safe_sqrt(x, K):
    return math.sqrt(x) if x > K[K_ZERO] else K[K_ZERO]


@_inline
def _affine_ntk(h, nt, a_h, a_c, w2, standard):
    """The dense layer's NTK, associated as the XLA program does: ``(w2 h + b2) +
    w2 ntk`` (ntk) or ``(fan_in h + w2 ntk) + [b]`` (standard)."""
    if standard:
        return (a_h * h + w2 * nt) + a_c
    return (a_h * h + a_c) + w2 * nt


@_inline
def _abrelu_layer(h, nt, gp, rq_l, rp_l, rq1, rp1, a_h, a_c, P, K, standard):
    """The arc-cosine step with its carried gap (see _closed_forms._abrelu)."""
    w2, b2, c, f = P[0], P[1], P[6], P[7]
    zero, one = K[K_ZERO], K[K_ONE]
    two = one + one
    for j in range(h.shape[0]):
        q12 = w2 * h[j] + b2
        ntk = _affine_ntk(h[j], nt[j], a_h, a_c, w2, standard)
        d = rp1 - rp_l[j]
        r12 = rq1 * rq_l[j]
        den = r12 + w2 * (rp1 * rp_l[j]) + b2
        den = den if den > zero else one
        gap = w2 * gp[j] + (w2 * b2) * (d * d) / den
        sa = _safe_sqrt(gap, K)
        sb = _safe_sqrt(r12 + q12, K)
        s = sa * sb
        theta = two * _atan2nn(sa, sb, K)
        if sa == zero and sb == zero:
            theta = K[K_PI2]
        dot = c - f * theta
        h[j] = f * s + dot * q12
        gp[j] = max(c * gap - f * (s - theta * q12), zero)
        nt[j] = ntk * dot


@_inline
def _linear_layer(h, nt, a_h, a_c, P, standard):
    w2, b2, c = P[0], P[1], P[6]
    for j in range(h.shape[0]):
        ntk = _affine_ntk(h[j], nt[j], a_h, a_c, w2, standard)
        h[j] = c * (w2 * h[j] + b2)
        nt[j] = ntk * c


@_inline
def _erf_layer(h, nt, rq_l, sh_l, qs_l, q1, a_h, a_c, P, K, standard):
    """The arcsine step (see _closed_forms._erf); q's scaled by b^2 = P[6]."""
    w2, b2, bb, aa, cc = P[0], P[1], P[6], P[7], P[8]
    zero, one = K[K_ZERO], K[K_ONE]
    two = one + one
    rq1, sh1 = math.sqrt(q1), math.sqrt(q1 + q1 + one)
    two_pi, scale = P[9], P[10]  # 2 / pi and 4 b^2 a^2 / pi, rounded once
    for j in range(h.shape[0]):
        q12 = w2 * h[j] + b2
        ntk = _affine_ntk(h[j], nt[j], a_h, a_c, w2, standard)
        e12 = bb * q12
        su = sh1 * sh_l[j]
        rq = rq1 * rq_l[j]
        low = (one + two * (q1 + qs_l[j])) / (su + two * rq)
        low = low + two * max(rq - e12, zero)
        root = math.sqrt(low * (su + two * e12))
        ang = _signed_atan2(two * e12, root, K)
        h[j] = aa * (two_pi * ang) + cc
        nt[j] = ntk * (scale / root)


@_inline
def _gelu_layer(h, nt, rq_l, sh_l, qs_l, q1, a_h, a_c, P, K, standard):
    """x Phi(x) (see _closed_forms._gelu)."""
    w2, b2 = P[0], P[1]
    zero, one = K[K_ZERO], K[K_ONE]
    two = one + one
    rq1, sh1 = math.sqrt(q1), math.sqrt(q1 + one)
    tpi, quarter = two * K[K_PI], one / (two * two)
    for j in range(h.shape[0]):
        q12 = w2 * h[j] + b2
        ntk = _affine_ntk(h[j], nt[j], a_h, a_c, w2, standard)
        q2 = qs_l[j]
        sp = sh1 * sh_l[j]
        rq = rq1 * rq_l[j]
        low = (one + (q1 + q2)) / (sp + rq) + max(rq - q12, zero)
        dsq = low * (sp + q12)
        inv_delta = one / math.sqrt(dsq)
        inv_pp = (one / (q1 + one)) * (one / (q2 + one))
        prod = q1 * q2
        angle = _signed_atan2(q12, dsq * inv_delta, K)
        val = (q12 * q12 + prod * dsq) * inv_pp * inv_delta
        h[j] = (val + q12 * angle) / tpi + quarter * q12
        first = (inv_delta * inv_delta + (one - prod) * inv_pp + one) * q12
        nt[j] = ntk * ((first * inv_delta) / tpi + quarter + angle / tpi)


@_inline
def _write_nngp(o, h, wr2, zero):
    """``o = wr2 h``; returns the number of non-finite entries."""
    n_bad = 0
    for j in range(o.shape[0]):
        v = wr2 * h[j]
        o[j] = v
        n_bad += (v - v) != zero  # 0 for finite v, NaN otherwise
    return n_bad


@_inline
def _write_head(o, h, nt, out_h, wr2, zero, standard):
    """``o = width h + wr2 nt`` (standard) or ``wr2 (h + nt)`` (ntk); returns the
    number of non-finite entries."""
    n_bad = 0
    for j in range(o.shape[0]):
        v = out_h * h[j] + wr2 * nt[j] if standard else wr2 * (h[j] + nt[j])
        o[j] = v
        n_bad += (v - v) != zero  # 0 for finite v, NaN otherwise
    return n_bad


@_inline
def _first_layer_input(h, gp, g_i, k_i, rs_i, key, sq, m, zero):
    """The input covariance and gap of one row; equal keys take the diagonal."""
    s1 = math.sqrt(sq)
    for j in range(h.shape[0]):
        same = key == k_i[j]
        g = sq if same else g_i[j]
        h[j] = g / m
        gap = max(s1 * rs_i[j] - g, zero) / m
        gp[j] = zero if same else gap


@_jit
def column_terms(pre2, post2, sq2, P, K, kind):
    """Per-column square roots, once per tile: ``(qs2, rq2, sh2, rp2, rs2)``."""
    one = K[K_ONE]
    qs2 = pre2 * P[6] if kind == ERF else pre2.copy()
    rq2 = np.sqrt(qs2)
    sh2 = rq2
    if kind == ERF:
        sh2 = np.sqrt(qs2 + qs2 + one)
    elif kind == GELU:
        sh2 = np.sqrt(qs2 + one)
    return qs2, rq2, sh2, np.sqrt(post2), np.sqrt(sq2)


@nb.njit(error_model="numpy", cache=True, fastmath=False, parallel=True)
def heads(gram, sq1, key1, key2, pre1, post1, cols, P, K, I, out, bad, row0):
    """Every head of one block of rows into rows ``row0 + i`` of ``out``
    ``(G, L, n1, b2)``; ``bad[i]`` counts row ``i``'s non-finite entries.

    ``I``: kind, standard, index of nngp and of ntk in ``out`` (-1: not
    requested). ``P``: w2, b2, wr2, m, width, bias_one, then the step's
    constants."""
    qs2, rq2, sh2, rp2, rs2 = cols
    n1, n2 = gram.shape
    zero = K[K_ZERO]
    w2, b2, wr2, m, width, bias_one = P[0], P[1], P[2], P[3], P[4], P[5]
    kind, standard, i_nngp, i_ntk = I[0], I[1], I[2], I[3]
    out_h = width if standard else wr2  # the NTK head's readout of h
    for i in nb.prange(n1):
        h = np.empty(n2, gram.dtype)
        nt = np.zeros(n2, gram.dtype)
        gp = np.empty(n2, gram.dtype)
        _first_layer_input(h, gp, gram[i], key2, rs2, key1[i], sq1[i], m, zero)
        n_bad = 0
        for lay in range(pre1.shape[0]):
            # the NTK's dense-layer affine part: a_h h + w2 ntk + a_c
            a_h = (m if lay == 0 else width) if standard else w2
            a_c = bias_one if standard else b2
            q1 = pre1[lay, i] * P[6] if kind == ERF else pre1[lay, i]
            if kind == ABRELU:
                rq1, rp1 = math.sqrt(q1), math.sqrt(post1[lay, i])
                _abrelu_layer(
                    h, nt, gp, rq2[lay], rp2[lay], rq1, rp1, a_h, a_c, P, K, standard
                )
            elif kind == LINEAR:
                _linear_layer(h, nt, a_h, a_c, P, standard)
            elif kind == ERF:
                _erf_layer(
                    h, nt, rq2[lay], sh2[lay], qs2[lay], q1, a_h, a_c, P, K, standard
                )
            else:
                _gelu_layer(
                    h, nt, rq2[lay], sh2[lay], qs2[lay], q1, a_h, a_c, P, K, standard
                )
            if i_nngp >= 0:
                n_bad += _write_nngp(out[i_nngp, lay, row0 + i], h, wr2, zero)
            if i_ntk >= 0:
                o = out[i_ntk, lay, row0 + i]
                n_bad += _write_head(o, h, nt, out_h, wr2, zero, standard)
        bad[i] = n_bad
