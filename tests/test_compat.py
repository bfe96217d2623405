"""The neural-tangents compatibility layer: every patch present, nt usable, TF lazy."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import types

import jax
import jax.core
import jax.extend.core
import numpy as np
import pytest
from jax import random
from jax.interpreters import ad

from nftk_jax.model import _compat
from nftk_jax.model._compat import PATCHES, check, nt, stax

from helpers import assert_close, random_inputs

IMPLEMENTATIONS = (
    nt.NtkImplementation.JACOBIAN_CONTRACTION,
    nt.NtkImplementation.NTK_VECTOR_PRODUCTS,
    nt.NtkImplementation.STRUCTURED_DERIVATIVES,
)


def _small_net(width: int = 32):
    return stax.serial(
        stax.Dense(width, W_std=1.5, b_std=0.1),
        stax.Relu(),
        stax.Dense(width, W_std=1.3, b_std=0.2),
        stax.Erf(),
        stax.Dense(3, W_std=0.8),
    )


def test_check_passes():
    check()


def test_check_fails_loudly_when_a_name_is_missing(monkeypatch):
    monkeypatch.delattr(ad, "zeros_like_p")
    with pytest.raises(_compat.CompatError, match="zeros_like_p"):
        check()


def _patch_is_present(entry: str) -> bool:
    """Verify one PATCHES entry against the live objects it describes."""
    target, _, source = (s.strip() for s in entry.partition("<-"))
    if target.startswith("jax.core.") and source.startswith("jax.extend.core."):
        name = target.removeprefix("jax.core.")
        return getattr(jax.core, name) is getattr(jax.extend.core, name)
    if target == "jax.core.DShapedArray":
        cls = jax.core.DShapedArray
        return isinstance(cls, type) and not isinstance(np.zeros(1), cls)
    if target == "jax.util":
        util = sys.modules["jax.util"]
        return jax.util is util and {"safe_map", "safe_zip"} <= set(vars(util))
    if target == "jax.interpreters.ad.zeros_like_p":
        return isinstance(ad.zeros_like_p, jax.extend.core.Primitive)
    if target == "jax.interpreters.ad.source_info_util":
        import jax.extend.source_info_util as siu

        return ad.source_info_util is siu
    if target == "jax.interpreters.ad.config":
        return ad.config is jax.config
    if target == "jax.interpreters.ad.reducing_transposes":
        return isinstance(ad.reducing_transposes, dict)
    if target.startswith("Primitive."):
        attr = target.removeprefix("Primitive.")
        return getattr(jax.extend.core.Primitive, attr) is False
    if target == "nt empirical pullback":
        from neural_tangents._src import empirical

        fn = empirical._get_primals_out_and_pullback
        return (
            "_make_pullback_helper" in fn.__qualname__
            and "_get_primals_out_and_pullback" in empirical._nftk_patched
        )
    raise AssertionError(f"PATCHES entry {entry!r} is not covered by this test")


def test_every_listed_patch_is_present():
    assert len(PATCHES) == len(set(PATCHES)), "a patch was applied twice"
    for entry in PATCHES:
        assert _patch_is_present(entry), entry


def test_patches_are_idempotent():
    before = list(PATCHES)
    _compat._patch_jax()
    assert PATCHES == before


def test_safe_zip_and_safe_map_check_lengths():
    from jax.util import safe_map, safe_zip

    assert list(safe_zip([1, 2], "ab")) == [(1, "a"), (2, "b")]
    assert list(safe_map(lambda a, b: a + b, [1, 2], [3, 4])) == [4, 6]
    with pytest.raises((ValueError, AssertionError)):
        safe_zip([1, 2], [1])
    with pytest.raises((ValueError, AssertionError)):
        safe_map(lambda a, b: a, [1, 2, 3], [1])
    # The layer's own helpers, whichever jax.util is in use.
    with pytest.raises(ValueError, match="length mismatch"):
        _compat._safe_zip([1, 2], [1])
    with pytest.raises(ValueError, match="length mismatch"):
        _compat._safe_map(lambda a, b: a, [1], [1, 2])


_IMPORT_PROBE = textwrap.dedent(
    """
    import json, sys, time
    t0 = time.perf_counter()
    import nftk_jax
    dt = time.perf_counter() - t0
    exp = sys.modules.get("neural_tangents.experimental")
    print(json.dumps({
        "seconds": dt,
        "tensorflow": "tensorflow" in sys.modules,
        "tf2jax": "tf2jax" in sys.modules,
        "heavy": [m for m in ("sklearn", "pandas", "matplotlib") if m in sys.modules],
        "experimental_type": type(exp).__name__ if exp is not None else None,
        "experimental_name": exp.__name__ if exp is not None else None,
        "tensorflow_after_dunder": "tensorflow" in sys.modules,
    }))
    """
)


def test_import_does_not_load_tensorflow():
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not info["tensorflow"], "import nftk_jax loaded TensorFlow"
    assert not info["tf2jax"], "import nftk_jax loaded tf2jax"
    assert not info["heavy"], f"import nftk_jax loaded {info['heavy']}: load lazily"
    # Registered but not executed; reading a dunder does not execute it either.
    assert info["experimental_type"] == "_LazyModule"
    assert info["experimental_name"] == "neural_tangents.experimental"
    assert not info["tensorflow_after_dunder"]
    # The import time is a benchmark (benchmarks/bench_import.py), not a test.


def test_lazy_module_runs_code_once_on_first_attribute(tmp_path):
    src = tmp_path / "lazy_probe_mod.py"
    src.write_text("import builtins\nbuiltins._lazy_probe_runs += 1\nVALUE = 7\n")
    import builtins

    builtins._lazy_probe_runs = 0
    try:
        spec = importlib.util.spec_from_file_location("lazy_probe_mod", src)
        module = _compat._LazyModule("lazy_probe_mod")
        module.__spec__ = spec
        assert builtins._lazy_probe_runs == 0
        assert module.__spec__ is spec  # dunder access does not execute
        assert builtins._lazy_probe_runs == 0
        assert module.VALUE == 7
        assert builtins._lazy_probe_runs == 1
        assert module.VALUE == 7
        assert builtins._lazy_probe_runs == 1
        assert type(module) is types.ModuleType
    finally:
        del builtins._lazy_probe_runs


def test_experimental_is_lazy_in_this_process():
    exp = sys.modules["neural_tangents.experimental"]
    if "tensorflow" not in sys.modules:
        # Still unexecuted unless something in this process touched it.
        assert type(exp).__name__ == "_LazyModule"


def test_empirical_ntk_implementations_agree():
    init_fn, apply_fn, _ = _small_net()
    x1, x2 = random_inputs(6, 5, seed=0), random_inputs(4, 5, seed=1)
    _, params = init_fn(random.PRNGKey(0), x1.shape)
    kernels = [
        np.asarray(
            nt.empirical_ntk_fn(apply_fn, trace_axes=(), implementation=impl)(
                x1, x2, params
            )
        )
        for impl in IMPLEMENTATIONS
    ]
    assert kernels[0].shape == (6, 4, 3, 3)
    assert kernels[0].dtype == np.float64
    scale = np.abs(kernels[0]).max()
    for impl, k in zip(IMPLEMENTATIONS, kernels, strict=True):
        assert_close(k, kernels[0], rtol=0, atol=1e-12 * scale, msg=str(impl))
    # Independent reference: the explicit Jacobian contraction J(x1) J(x2)^T.
    flat, unravel = jax.flatten_util.ravel_pytree(params)

    def jac(x):
        return jax.jacobian(lambda p: apply_fn(unravel(p), x))(flat)  # (n, 3, P)

    ref = np.einsum("iap,jbp->ijab", jac(x1), jac(x2))
    assert_close(kernels[2], ref, rtol=0, atol=1e-12 * scale)


def test_structured_derivatives_under_jit():
    init_fn, apply_fn, _ = _small_net()
    x1 = random_inputs(5, 5, seed=2)
    _, params = init_fn(random.PRNGKey(1), x1.shape)
    kw = dict(trace_axes=(-1,), implementation=IMPLEMENTATIONS[2])
    eager = nt.empirical_ntk_fn(apply_fn, **kw)(x1, None, params)
    jitted = jax.jit(nt.empirical_ntk_fn(apply_fn, **kw))(x1, None, params)
    ref = nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), implementation=1)(
        x1, None, params
    )
    scale = float(np.abs(ref).max())
    assert_close(eager, ref, rtol=0, atol=1e-12 * scale)
    assert_close(jitted, ref, rtol=0, atol=1e-12 * scale)


@pytest.mark.parametrize("device_count", (0, -1))
def test_nt_batch_matches_unbatched(device_count):
    _, _, kernel_fn = _small_net()
    x1, x2 = random_inputs(8, 5, seed=3), random_inputs(4, 5, seed=4)
    batched = nt.batch(kernel_fn, batch_size=2, device_count=device_count)
    got = batched(x1, x2, ("nngp", "ntk"))
    ref = kernel_fn(x1, x2, ("nngp", "ntk"))
    # Off-diagonal cross-kernel only (x1 != x2), so the tight tolerance applies.
    for g, r in zip(got, ref, strict=True):
        assert_close(g, r, rtol=1e-12, atol=0)


def test_monte_carlo_kernel_fn_matches_empirical_and_analytic():
    init_fn, apply_fn, kernel_fn = _small_net(width=512)
    x1, x2 = random_inputs(4, 5, seed=5), random_inputs(4, 5, seed=6)
    key = random.PRNGKey(7)
    n_samples = 4
    mc = nt.monte_carlo_kernel_fn(
        init_fn, apply_fn, key, n_samples, batch_size=2, device_count=-1
    )
    got = np.asarray(mc(x1, x2, "ntk"))
    # Exact: the average of the empirical NTKs at the parameters nt samples
    # (its documented key schedule: split off one key per sample, then split
    # that into init and dropout keys).
    emp = nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,))
    total, k = 0.0, key
    for _ in range(n_samples):
        k, sample_key = random.split(k)
        init_key, _ = random.split(sample_key)
        _, params = init_fn(init_key, x1.shape)
        total = total + np.asarray(emp(x1, x2, params))
    assert_close(got, total / n_samples, rtol=1e-12, atol=0)
    # Meaningful only statistically: width 512 x 4 samples is near the limit.
    analytic = np.asarray(kernel_fn(x1, x2, "ntk"))
    err = np.linalg.norm(got - analytic) / np.linalg.norm(analytic)
    assert err < 0.1, err
