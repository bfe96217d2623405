import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits

from nftk_jax import MLP, NFTKClassifier, NFTKRegressor, fit_mkl, layerwise_kernels

from helpers import assert_close

SPEC = MLP(depth=3)


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(y))[:240]
    x = x[idx] / 16.0
    return x[:160], y[idx[:160]], x[160:], y[idx[160:]]


@pytest.fixture(scope="module")
def fitted(digits):
    x, y, _, _ = digits
    return fit_mkl(SPEC, x, y, ridge=1e-2, relative_ridge=True, steps=15)


def test_fit_mkl_predict_matches_kernels(digits, fitted):
    x, y, xt, yt = digits
    res = fitted
    assert res.omega.shape == (10, 3) and res.alpha.shape == (160, 10)  # refit on all
    theta_cross = layerwise_kernels(SPEC, xt, x)
    assert_close(res.predict(xt), res.predict_kernels(theta_cross), rtol=1e-10)
    acc = np.mean(res.predict_labels(xt) == yt)
    assert acc > 0.7, acc


def test_fit_mkl_refit_equals_theorem1_on_all_points(digits, fitted):
    from nftk_jax.linalg._krr import encode_targets, krr_fit

    x, y, _, _ = digits
    theta = layerwise_kernels(SPEC, x)
    Y, _ = encode_targets(y, len(y), n_classes=10)
    ref = krr_fit(theta, Y, fitted.omega, ridge=fitted.ridge)
    assert_close(fitted.alpha, ref.alpha, rtol=1e-8, atol=1e-10)
    mean_diag = np.mean(np.diagonal(np.asarray(theta), axis1=1, axis2=2))
    assert fitted.ridge != 1e-2 and fitted.ridge < 1e-2 * mean_diag  # train part


def test_fit_mkl_explicit_validation_and_no_refit(digits):
    x, y, xt, yt = digits
    res = fit_mkl(SPEC, x, y, x_val=xt, y_val=yt, ridge=0.05, steps=2)
    assert res.alpha.shape == (160, 10) and res.x_train.shape == (160, 64)
    res = fit_mkl(SPEC, x, y, ridge=0.05, steps=2, refit=False)
    assert res.alpha.shape[0] == res.x_train.shape[0] < 160


def test_classifier_on_digits(digits):
    x, y, xt, yt = digits
    labels = np.array(list("abcdefghij"))
    clf = NFTKClassifier(depth=3, steps=15).fit(x, labels[y])
    assert list(clf.classes_) == list(labels)
    pred = clf.predict(xt)
    assert pred.dtype == labels.dtype and set(pred) <= set(labels)
    score = clf.score(xt, labels[yt])
    assert score > 0.7, score  # chance is 0.1
    assert clf.omega_.shape == (10, 3) and clf.alpha_.shape == (160, 10)
    assert clf.history_.objective.ndim == 1 and clf.result_.is_classification
    assert clf.n_features_in_ == 64


def test_get_params_and_clone():
    clf = NFTKClassifier(depth=4, ridge=0.1, constraint="nonneg")
    params = clf.get_params()
    assert params["depth"] == 4 and params["constraint"] == "nonneg"
    c2 = clone(clf)
    assert c2.get_params() == params and not hasattr(c2, "result_")
    with pytest.raises(ValueError, match="not fitted"):
        clf.predict(np.zeros((2, 3)))


def test_regressor_single_output(digits):
    x, y, xt, yt = digits
    target = np.sin(x[:, 20] * 3) + x[:, 36]
    reg = NFTKRegressor(depth=3, steps=10).fit(x, target)
    pred = reg.predict(xt)
    assert pred.shape == (len(xt),)
    r2 = reg.score(xt, np.sin(xt[:, 20] * 3) + xt[:, 36])
    assert r2 > 0.3, r2
    assert reg.omega_.shape == (1, 3)
    two = NFTKRegressor(depth=3, steps=1).fit(x, np.stack([target, -target], 1))
    assert two.predict(xt).shape == (len(xt), 2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"y": np.arange(159)}, r"^y must have one entry per row of x"),
        ({"x": np.full((160, 64), np.nan)}, r"^x contains \d+ NaN"),
        ({"validation_fraction": 1.5}, "validation_fraction"),
        ({"ridge": -1}, "ridge"),
    ],
)
def test_fit_mkl_bad_inputs(digits, kwargs, match):
    x, y, _, _ = digits
    kw = {"x": x, "y": y, "ridge": 0.1, "steps": 1}
    kw.update(kwargs)
    with pytest.raises(ValueError, match=match):
        fit_mkl(SPEC, kw.pop("x"), kw.pop("y"), **kw)


def test_classifier_bad_inputs(digits):
    x, y, _, _ = digits
    with pytest.raises(ValueError, match=r"^y has 159 labels but X has 160 rows"):
        NFTKClassifier(depth=2).fit(x, y[:-1])
    with pytest.raises(ValueError, match="single class"):
        NFTKClassifier(depth=2).fit(x, np.zeros(len(x)))
