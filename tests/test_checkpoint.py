import time

import numpy as np
import optax
import pytest
from mkl_cases import synthetic_problem

from nftk_jax import CheckpointError, fit_mkl_kernels

from helpers import assert_close

N_STEPS = 8


@pytest.fixture(scope="module")
def problem():
    return synthetic_problem(n=40, m=20, d=3, seed=2)


def _fit(problem, **kw):
    theta, theta_val, y, y_val = problem
    kw.setdefault("tol", 1e-14)  # run every step
    return fit_mkl_kernels(theta, y, theta_val=theta_val, y_val=y_val, ridge=0.1, **kw)


def _same_run(a, b):
    assert a.n_steps == b.n_steps
    assert_close(a.omega, b.omega, rtol=1e-12, atol=1e-13)
    assert_close(a.alpha, b.alpha, rtol=1e-12, atol=1e-13)
    assert_close(a.history.omega, b.history.omega, rtol=1e-12, atol=1e-13)
    assert_close(a.history.objective, b.history.objective, rtol=1e-12)
    assert_close(a.history.step_size, b.history.step_size, rtol=1e-12)


@pytest.fixture(scope="module")
def reference(problem):
    return _fit(problem, steps=N_STEPS)


def test_resume_with_more_steps(problem, reference, tmp_path):
    ck = tmp_path / "omega.npz"
    first = _fit(problem, steps=3, checkpoint=ck)
    assert first.n_steps == 3 and ck.is_file()
    resumed = _fit(problem, steps=N_STEPS, checkpoint=ck)
    _same_run(resumed, reference)


def test_resume_after_keyboard_interrupt(problem, reference, tmp_path):
    ck = tmp_path / "omega.npz"

    def interrupt(info):
        if info.step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _fit(problem, steps=N_STEPS, checkpoint=ck, callback=interrupt)
    with np.load(ck, allow_pickle=False) as z:
        assert int(z["step"]) == 4 and not bool(z["finished"])
    _same_run(_fit(problem, steps=N_STEPS, checkpoint=ck), reference)


def test_checkpoint_every_keeps_last_saved_step(problem, reference, tmp_path):
    ck = tmp_path / "omega.npz"

    def interrupt(info):
        if info.step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _fit(
            problem,
            steps=N_STEPS,
            checkpoint=ck,
            checkpoint_every=2,
            callback=interrupt,
        )
    with np.load(ck, allow_pickle=False) as z:
        assert int(z["step"]) == 4
    _same_run(_fit(problem, steps=N_STEPS, checkpoint=ck), reference)


def test_resume_with_optax_state(problem, tmp_path):
    ck = tmp_path / "adam.npz"
    ref = _fit(problem, steps=6, optimizer=optax.adam(0.05))
    _fit(problem, steps=2, optimizer=optax.adam(0.05), checkpoint=ck)
    _same_run(_fit(problem, steps=6, optimizer=optax.adam(0.05), checkpoint=ck), ref)


def test_finished_checkpoint_returns_instantly(problem, tmp_path):
    ck = tmp_path / "done.npz"
    done = _fit(problem, steps=300, tol=1e-4, checkpoint=ck)
    assert done.converged

    def never(info):
        raise AssertionError("a finished fit must not take steps")

    t0 = time.perf_counter()
    again = _fit(problem, steps=300, tol=1e-4, checkpoint=ck, callback=never)
    assert time.perf_counter() - t0 < 5.0
    _same_run(again, done)
    assert again.converged and again.stop_reason == done.stop_reason
    with np.load(ck, allow_pickle=False) as z:
        assert bool(z["finished"])


def test_foreign_checkpoint_is_rejected(problem, tmp_path):
    ck = tmp_path / "omega.npz"
    _fit(problem, steps=2, checkpoint=ck)
    theta, theta_val, y, y_val = problem
    with pytest.raises(CheckpointError, match="different problem"):
        fit_mkl_kernels(
            theta,
            (y + 1) % 3,
            theta_val=theta_val,
            y_val=y_val,
            ridge=0.1,
            checkpoint=ck,
        )
    with pytest.raises(CheckpointError, match="delete it"):
        _fit(problem, steps=2, checkpoint=ck, objective="train_mse")
    with pytest.raises(ValueError):  # CheckpointError is a ValueError
        _fit(problem, steps=2, checkpoint=ck, constraint="l1_ball")


@pytest.mark.parametrize("content", [b"", b"not a zip file", b"PK\x03\x04garbage"])
def test_corrupt_checkpoint(problem, tmp_path, content):
    ck = tmp_path / "bad.npz"
    ck.write_bytes(content)
    with pytest.raises(CheckpointError, match="checkpoint"):
        _fit(problem, steps=2, checkpoint=ck)


def test_no_temporary_files_left(problem, tmp_path):
    ck = tmp_path / "omega.npz"
    _fit(problem, steps=3, checkpoint=ck)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["omega.npz"]


@pytest.mark.parametrize(
    "other",
    [optax.adam(5.0), optax.adam(0.05, b1=0.5), optax.sgd(0.05)],
    ids=["learning_rate", "b1", "algorithm"],
)
def test_other_optimizer_hyperparameters_are_refused(problem, tmp_path, other):
    """The checkpoint identity holds the optimiser's hyperparameters, not its type."""
    ck = tmp_path / "adam.npz"
    _fit(problem, steps=2, optimizer=optax.adam(0.05), checkpoint=ck)
    with pytest.raises(CheckpointError, match=r"other settings: optimizer\)"):
        _fit(problem, steps=4, optimizer=other, checkpoint=ck)
    resumed = _fit(problem, steps=4, optimizer=optax.adam(0.05), checkpoint=ck)
    assert resumed.n_steps == 4


def test_mismatch_names_the_changed_settings(problem, tmp_path):
    ck = tmp_path / "omega.npz"
    _fit(problem, steps=2, checkpoint=ck)
    with pytest.raises(CheckpointError, match=r"other settings: max_backtracks\)"):
        _fit(problem, steps=2, checkpoint=ck, max_backtracks=3)
