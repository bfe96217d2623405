"""The neural-tangents compatibility layer: every patch present, nt usable, TF lazy."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import jax
import jax.core
import jax.extend.core
import jax.numpy as jnp
import numpy as np
import pytest
from jax import random
from jax.interpreters import ad

from nftk_jax import MLP
from nftk_jax.finite._network import (
    combined_empirical_ntk,
    head_empirical_ntks,
    nftk_network,
)
from nftk_jax.model import _compat
from nftk_jax.model._compat import PATCHES, check, nt, stax

from helpers import assert_close, random_inputs

ROOT = Path(__file__).resolve().parents[1]
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
    from neural_tangents._src import empirical

    monkeypatch.setattr(empirical, "ad", types.ModuleType("jax.interpreters.ad"))
    with pytest.raises(_compat.CompatError, match="source_info_util"):
        check()


def _import_patch_is_in_place(target: str) -> bool:
    """An import-scope name: gone from JAX again, but bound inside nt."""
    from neural_tangents._src import empirical
    from neural_tangents._src.utils import rules

    if _compat._import_name_visible(target):
        return False
    if target == "jax.util":
        return empirical.map is _compat._safe_map and empirical.zip is _compat._safe_zip
    if target == "jax.interpreters.ad.zeros_like_p":
        keys = [
            k for k in rules.STRUCTURE_RULES if getattr(k, "name", "") == "zeros_like"
        ]
        return len(keys) == 1 and keys[0] in rules.JACOBIAN_RULES
    name = target.removeprefix("jax.core.")
    bound = getattr(empirical, name, None) or getattr(rules, name)
    return bound is getattr(jax.extend.core, name)


def _patch_is_present(patch: _compat.Patch) -> bool:
    """Verify one PATCHES entry against the live objects it describes."""
    from neural_tangents._src import empirical

    target = patch.target
    if patch.scope == "import":
        return _import_patch_is_in_place(target)
    if patch.scope == "backward pass":
        prim, attr = jax.extend.core.Primitive, target.removeprefix("Primitive.")
        with _compat._primitive_flags():
            inside = getattr(prim, attr) is False
        return inside and not hasattr(prim, attr)
    if target.startswith("nt: core."):
        name = target.removeprefix("nt: core.")
        return hasattr(empirical.core, name) and not hasattr(jax.core, name)
    if target == "nt: ad.config":
        view = empirical.ad.config
        return view.jax_enable_checks is False and view.jax_enable_x64 is True
    if target.startswith("nt: ad."):
        name = target.removeprefix("nt: ad.")
        return hasattr(empirical.ad, name) and not hasattr(ad, name)
    if target == "nt: empirical pullback":
        fn = empirical._get_primals_out_and_pullback
        return "_make_pullback_helper" in fn.__qualname__
    if target == "nt: empirical _get_flops":
        return empirical._get_flops is _compat._flops
    raise AssertionError(f"PATCHES entry {patch} is not covered by this test")


def test_every_listed_patch_is_present():
    assert len(PATCHES) == len(set(PATCHES)), "a patch was applied twice"
    assert {p.scope for p in PATCHES} <= {"import", "nt", "backward pass"}
    for patch in PATCHES:
        assert _patch_is_present(patch), patch


def test_every_listed_patch_is_documented():
    doc = (ROOT / "docs" / "compat.md").read_text()
    for patch in PATCHES:
        name = patch.target.removeprefix("nt: ")
        assert f"`{name}`" in doc, f"{name} is not listed in docs/compat.md"


def test_import_window_removes_names_even_when_the_import_fails():
    owner = types.ModuleType("probe_owner")
    names = [(owner, "added", 1, "test"), (jax, "util", types.ModuleType("x"), "t")]
    had_util = "jax.util" in sys.modules
    with pytest.raises(RuntimeError, match="boom"):
        with _compat._import_window(names):
            assert owner.added == 1 and "jax.util" in sys.modules
            raise RuntimeError("boom")
    assert not hasattr(owner, "added")
    assert ("jax.util" in sys.modules) == had_util and not hasattr(jax, "util")


def test_primitive_flags_nest_and_are_removed_on_error():
    prim = jax.extend.core.Primitive
    native = {a: a in vars(prim) for a in _compat._PRIMITIVE_FLAGS}
    with pytest.raises(RuntimeError, match="boom"):
        with _compat._primitive_flags():
            with _compat._primitive_flags():
                assert prim("probe").map_primitive in (False, True)
            assert hasattr(prim, "map_primitive")
            raise RuntimeError("boom")
    assert {a: a in vars(prim) for a in _compat._PRIMITIVE_FLAGS} == native


def test_safe_zip_and_safe_map_check_lengths():
    assert _compat._safe_zip([1, 2], "ab") == [(1, "a"), (2, "b")]
    assert _compat._safe_map(lambda a, b: a + b, [1, 2], [3, 4]) == [4, 6]
    with pytest.raises(ValueError, match="length mismatch"):
        _compat._safe_zip([1, 2], [1])
    with pytest.raises(ValueError, match="length mismatch"):
        _compat._safe_map(lambda a, b: a, [1], [1, 2])


#: What other code might feature-check on JAX; importing and using nftk_jax must
#: leave every answer as it was.
_FEATURE_PROBE = textwrap.dedent(
    """
    import importlib, json, sys, time
    import jax, jax.core, jax.extend.core
    from jax.interpreters import ad

    CORE, FLAGS, USE = json.loads(sys.argv[1])
    AD = ("zeros_like_p", "source_info_util", "config", "reducing_transposes")

    def importable(name):
        try:
            importlib.import_module(name)
        except ImportError:
            return False
        return True

    def features():
        prim = jax.extend.core.Primitive
        out = {f"jax.core.{n}": hasattr(jax.core, n) for n in CORE}
        out.update({f"ad.{n}": hasattr(ad, n) for n in AD})
        out.update({f"Primitive.{n}": hasattr(prim, n) for n in FLAGS})
        out["jax.util"] = [hasattr(jax, "util"), importable("jax.util")]
        out["enable_checks"] = bool(jax.config.jax_enable_checks)
        return out

    before = features()
    t0 = time.perf_counter()
    import nftk_jax
    seconds = time.perf_counter() - t0
    after_import = features()
    exp = sys.modules.get("neural_tangents.experimental")
    print(json.dumps({
        "seconds": seconds,
        "tensorflow": "tensorflow" in sys.modules,
        "tf2jax": "tf2jax" in sys.modules,
        "heavy": [m for m in ("sklearn", "pandas", "matplotlib") if m in sys.modules],
        "experimental_type": type(exp).__name__ if exp is not None else None,
        "experimental_name": exp.__name__ if exp is not None else None,
    }))
    if USE:  # trace and run nt's three empirical NTKs (the backward pass included)
        from nftk_jax.model._compat import nt, stax
        init_fn, apply_fn, _ = stax.serial(stax.Dense(8), stax.Relu(), stax.Dense(2))
        x = jax.numpy.ones((3, 4))
        _, params = init_fn(jax.random.PRNGKey(0), x.shape)
        for impl in (1, 2, 3):
            jax.jit(nt.empirical_ntk_fn(apply_fn, implementation=impl))(x, None, params)
    after_use = features() if USE else after_import
    print(json.dumps({"before": before, "after_import": after_import,
                      "after_use": after_use}))
    """
)


_PROBED_NAMES = (
    _compat._IMPORTED_CORE_NAMES
    + ("DShapedArray", "ClosedJaxpr", "get_aval", "lattice_join"),
    _compat._PRIMITIVE_FLAGS,
)


def _run_probe(use: bool) -> tuple[dict, dict]:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.run(
        [sys.executable, "-c", _FEATURE_PROBE, json.dumps([*_PROBED_NAMES, use])],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=True,
    )
    lines = proc.stdout.strip().splitlines()
    return json.loads(lines[-2]), json.loads(lines[-1])


def _changed(features: dict, stage: str) -> dict:
    before = features["before"]
    assert len(before) > 15
    return {
        k: (v, features[stage][k]) for k, v in before.items() if features[stage][k] != v
    }


def test_import_loads_no_tensorflow_and_leaves_jax_unchanged():
    info, features = _run_probe(use=False)
    assert not info["tensorflow"], "import nftk_jax loaded TensorFlow"
    assert not info["tf2jax"], "import nftk_jax loaded tf2jax"
    assert not info["heavy"], f"import nftk_jax loaded {info['heavy']}: load lazily"
    # Registered but not executed.
    assert info["experimental_type"] == "_LazyModule"
    assert info["experimental_name"] == "neural_tangents.experimental"
    # Feature checks other code might make on JAX answer as before the import.
    changed = _changed(features, "after_import")
    assert not changed, f"import nftk_jax changed JAX for other code: {changed}"
    # The import time is a benchmark (benchmarks/bench_import.py), not a test.


@pytest.mark.slow
def test_using_neural_tangents_leaves_jax_unchanged():
    _, features = _run_probe(use=True)
    for stage in ("after_import", "after_use"):
        changed = _changed(features, stage)
        assert not changed, f"{stage}: nftk_jax changed JAX for other code: {changed}"


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


def test_flops_reads_the_cost_analysis_of_a_matmul():
    n = 16
    a = np.ones((n, n))
    # XLA counts a dense (n, n) @ (n, n) product as 2 n^3 floating-point operations.
    assert _compat._flops(jnp.matmul, True, a, a) == 2 * n**3
    assert _compat._flops(jnp.matmul, False, a, a) == 2 * n**3


def test_flops_without_a_count_says_which_implementations_to_pass(monkeypatch):
    monkeypatch.setattr(jax.stages.Compiled, "cost_analysis", lambda self: {})
    with pytest.raises(_compat.CompatError, match="implementation=1, 2 or 3"):
        _compat._flops(jnp.sin, True, np.ones(3))


@pytest.mark.slow
def test_auto_implementation_matches_jacobian_contraction(capsys):
    """``implementation=0`` (nt's AUTO) times the three by FLOPs and agrees with 1."""
    spec = MLP(depth=2, width=8)
    x = random_inputs(3, 4, seed=8)
    params = nftk_network(spec, 2).init_fn(jax.random.key(3), 4)
    omega = np.array([[0.7, 0.3], [0.2, 0.8]])
    heads = head_empirical_ntks(spec, params, x, implementation=0)
    assert_close(heads, head_empirical_ntks(spec, params, x, implementation=1))
    comb = combined_empirical_ntk(spec, params, x, None, omega, implementation=0)
    ref = combined_empirical_ntk(spec, params, x, None, omega, implementation=1)
    assert_close(comb, ref)
    # nt reports the FLOPs of each candidate on stdout.
    assert "impl=3, flops=" in capsys.readouterr().out


def test_structured_derivatives_with_jax_enable_checks():
    """jax_enable_checks stays on for JAX; nt's own (removed-API) check is skipped."""
    init_fn, apply_fn, _ = _small_net(width=8)
    x1 = random_inputs(3, 5, seed=9)
    _, params = init_fn(random.PRNGKey(2), x1.shape)
    ref = nt.empirical_ntk_fn(apply_fn, implementation=1)(x1, None, params)
    with jax.enable_checks(True):
        assert jax.config.jax_enable_checks
        got = nt.empirical_ntk_fn(apply_fn, implementation=3)(x1, None, params)
    assert_close(got, ref, rtol=0, atol=1e-12 * float(np.abs(ref).max()))
