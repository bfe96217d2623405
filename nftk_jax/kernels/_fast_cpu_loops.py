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


@_inline
def _layer(h, nt, gp, lay, i, pre1, post1, cols, s, e, P, K, I):
    """Layer ``lay`` of row ``i`` on the columns ``s:e`` (the row buffers' length)."""
    qs2, rq2, sh2, rp2, _ = cols
    w2, b2, m, width, bias_one = P[0], P[1], P[3], P[4], P[5]
    kind, standard = I[0], I[1]
    # the NTK's dense-layer affine part: a_h h + w2 ntk + a_c
    a_h = (m if lay == 0 else width) if standard else w2
    a_c = bias_one if standard else b2
    q1 = pre1[lay, i] * P[6] if kind == ERF else pre1[lay, i]
    if kind == ABRELU:
        rq1, rp1 = math.sqrt(q1), math.sqrt(post1[lay, i])
        rq_l, rp_l = rq2[lay, s:e], rp2[lay, s:e]
        _abrelu_layer(h, nt, gp, rq_l, rp_l, rq1, rp1, a_h, a_c, P, K, standard)
    elif kind == LINEAR:
        _linear_layer(h, nt, a_h, a_c, P, standard)
    else:
        rq_l, sh_l, qs_l = rq2[lay, s:e], sh2[lay, s:e], qs2[lay, s:e]
        if kind == ERF:
            _erf_layer(h, nt, rq_l, sh_l, qs_l, q1, a_h, a_c, P, K, standard)
        else:
            _gelu_layer(h, nt, rq_l, sh_l, qs_l, q1, a_h, a_c, P, K, standard)


@_inline
def _start_row(h, nt, gp, i, gram, sq1, key1, key2, cols, s, e, P, K):
    """The buffers of row ``i`` on the columns ``s:e`` before the first layer."""
    nt[:] = K[K_ZERO]
    rs2 = cols[4]
    _first_layer_input(
        h, gp, gram[i, s:e], key2[s:e], rs2[s:e], key1[i], sq1[i], P[3], K[K_ZERO]
    )


@nb.njit(error_model="numpy", cache=True, fastmath=False, parallel=True)
def heads(gram, sq1, key1, key2, pre1, post1, cols, P, K, I, out, bad, row0):
    """Every head of one block of rows into rows ``row0 + i`` of ``out``
    ``(G, L, n1, b2)``; ``bad[i]`` counts row ``i``'s non-finite entries.

    ``I``: kind, standard, index of nngp and of ntk in ``out`` (-1: not
    requested). ``P``: w2, b2, wr2, m, width, bias_one, then the step's
    constants."""
    n1, n2 = gram.shape
    zero = K[K_ZERO]
    wr2, width = P[2], P[4]
    standard, i_nngp, i_ntk = I[1], I[2], I[3]
    out_h = width if standard else wr2  # the NTK head's readout of h
    for i in nb.prange(n1):
        h = np.empty(n2, gram.dtype)
        nt = np.empty(n2, gram.dtype)
        gp = np.empty(n2, gram.dtype)
        _start_row(h, nt, gp, i, gram, sq1, key1, key2, cols, 0, n2, P, K)
        n_bad = 0
        for lay in range(pre1.shape[0]):
            _layer(h, nt, gp, lay, i, pre1, post1, cols, 0, n2, P, K, I)
            if i_nngp >= 0:
                n_bad += _write_nngp(out[i_nngp, lay, row0 + i], h, wr2, zero)
            if i_ntk >= 0:
                o = out[i_ntk, lay, row0 + i]
                n_bad += _write_head(o, h, nt, out_h, wr2, zero, standard)
        bad[i] = n_bad


@nb.njit(error_model="numpy", cache=True, fastmath={"reassoc", "nsz", "contract"})
def _dot(a, b):
    """``sum(a * b)``, vectorised (reassociated: the order of the sum is free)."""
    acc = a[0] * b[0] * 0  # zero in the dtype of the sum (a non-finite stays so)
    for j in range(a.shape[0]):
        acc += a[j] * b[j]
    return acc


@_inline
def _mix(acc, o, w, lay):
    """Add layer ``lay``'s head row ``o`` to the row's mixes: ``acc[0, r] +=
    w[lay, r] o``."""
    for r in range(acc.shape[1]):
        a, c = acc[0, r, : o.shape[0]], w[lay, r]
        for j in range(o.shape[0]):
            a[j] += c * o[j]


@_inline
def _apply(acc, i, s, e, skip, vc, vr, rows_acc, cols_acc, per_layer, to_cols):
    """The products of row ``i``'s entries on the columns ``s:e``: into
    ``rows_acc[g, i, c]`` with ``vc`` and, with ``to_cols``, into
    ``cols_acc[g, c, s + skip : e]`` with row ``i`` of ``vr`` (``skip = 1``
    leaves out a diagonal entry, counted once in ``rows_acc``)."""
    for g in range(acc.shape[0]):
        for c in range(vc.shape[0]):
            a = acc[g, 0 if per_layer else c, : e - s]
            rows_acc[g, i, c] += _dot(a, vc[c, s:e])
            if to_cols:
                coef, dst = vr[c, i], cols_acc[g, c]
                for j in range(skip, e - s):
                    dst[s + j] += coef * a[j]


@nb.njit(error_model="numpy", cache=True, fastmath=False, parallel=True)
def head_products(gram, sq1, key1, key2, pre1, post1, cols, P, K, I, w, vc, vr,
                  rows_acc, cols_acc, flags):  # fmt: skip
    """The NTK heads of a tile multiplied by vectors, without storing the heads.

    For rows ``i < n1`` and columns ``j < n2`` of ``gram`` (``n1, n2 =
    len(sq1), len(key2)``), with heads ``T_l[i, j]``: ``rows_acc[t, g, i, c]``
    gets ``sum_j M[g, c][i, j] vc[c, j]`` and, with ``to_cols``,
    ``cols_acc[g, c, j]`` gets ``sum_i M[g, c][i, j] vr[c, i]``, where
    ``M[l, c] = T_l`` (``per_layer``) or ``M[0, c] = sum_l w[l, c] T_l``.
    ``triangle`` takes only the entries ``j >= i`` (a diagonal tile of a
    symmetric kernel; a diagonal entry reaches ``rows_acc`` only). ``t`` is the
    worker: each owns the column chunks ``chunk`` wide of its share, taken in
    pairs from both ends so a triangle's work is balanced.

    ``flags``: per_layer, to_cols, triangle, chunk.
    """
    n1, n2 = len(sq1), len(key2)
    per_layer, to_cols, triangle, chunk = flags[0], flags[1], flags[2], flags[3]
    n_par = rows_acc.shape[0]
    n_chunks = (n2 + chunk - 1) // chunk
    n_pairs = (n_chunks + 1) // 2
    wr2, width, standard = P[2], P[4], I[1]
    out_h = width if standard else wr2
    zero = K[K_ZERO]
    for t in nb.prange(n_par):
        h = np.empty(chunk, gram.dtype)
        nt = np.empty(chunk, gram.dtype)
        gp = np.empty(chunk, gram.dtype)
        o = np.empty(chunk, rows_acc.dtype)
        n_mix = 1 if per_layer else vc.shape[0]
        acc = np.empty((rows_acc.shape[1], n_mix, chunk), rows_acc.dtype)
        for p in range(t, n_pairs, n_par):
            for ci in (p, n_chunks - 1 - p):
                j0, j1 = ci * chunk, min(ci * chunk + chunk, n2)
                last = min(n1, j1) if triangle else n1
                for i in range(last):
                    s = max(j0, i) if triangle else j0
                    wd = j1 - s
                    hb, ntb, gpb, ob = h[:wd], nt[:wd], gp[:wd], o[:wd]
                    _start_row(hb, ntb, gpb, i, gram, sq1, key1, key2, cols, s,
                               j1, P, K)  # fmt: skip
                    if not per_layer:
                        acc[0] = zero
                    for lay in range(pre1.shape[0]):
                        _layer(hb, ntb, gpb, lay, i, pre1, post1, cols, s, j1, P,
                               K, I)  # fmt: skip
                        dst = acc[lay, 0, :wd] if per_layer else ob
                        _write_head(dst, hb, ntb, out_h, wr2, zero, standard)
                        if not per_layer:
                            _mix(acc, ob, w, lay)
                    skip = 1 if triangle and s == i else 0
                    _apply(acc, i, s, j1, skip, vc, vr, rows_acc[t], cols_acc,
                           per_layer, to_cols)  # fmt: skip
                if 2 * p + 1 == n_chunks:  # the middle chunk: once
                    break
