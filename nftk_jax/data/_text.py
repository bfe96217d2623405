"""Text features: mean GPT-2 token embeddings of each document."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ..core import NFTKDependencyError, NFTKFileNotFoundError, NFTKInputError
from ._checks import check_int

_TEXT_EXTRA = "pip install 'nftk_jax[text]'"
_GPT2_FILES = ("tokenizer.json", "model.safetensors")
# Key of the token-embedding matrix in GPT-2 safetensors checkpoints: "wte.weight"
# in the hub's `gpt2` repository, "transformer.wte.weight" in LM-head exports.
_WTE_KEYS = ("wte.weight", "transformer.wte.weight")


class TokenEmbedding(NamedTuple):
    """A tokenizer and its token-embedding matrix, as used by `text_features`.

    Attributes:
        tokenizer: A ``tokenizers.Tokenizer``.
        embedding: The token-embedding matrix; row ``i`` embeds token id ``i``.
    """

    tokenizer: Any  # tokenizers.Tokenizer
    embedding: np.ndarray  # (vocab_size, dim) float32; GPT-2 small: (50257, 768)


def text_features(
    texts: Sequence[str],
    *,
    tokenizer: Any,
    embedding: ArrayLike,
    on_empty: Literal["raise", "zero"] = "raise",
    batch_size: int = 1024,
) -> np.ndarray:
    """Embeds each text as the mean of its token embeddings.

    Each text is tokenized (without special tokens, and ignoring padding if the
    tokenizer pads), its token ids are looked up in ``embedding``, and the rows are
    averaged: the sum of the token embeddings normalised by the number of tokens.
    With GPT-2 small's tokenizer and ``wte`` matrix (`load_gpt2_embedding`) this
    gives the 768-dimensional IMDB review features of the NFT-K paper. Averaging
    accumulates in float64; the result is float32.

    A text with no tokens (for most tokenizers the empty string) has no mean. With
    ``on_empty="raise"`` (the default) that is an error; with ``on_empty="zero"`` its
    feature row is all zeros.

    Args:
        texts: The documents, a sequence of ``str`` (not a single string).
        tokenizer: A ``tokenizers.Tokenizer`` whose ids index rows of ``embedding``.
        embedding: ``(vocab_size, dim)`` token-embedding matrix.
        on_empty: ``"raise"`` or ``"zero"``: what a text without tokens gives.
        batch_size: Number of texts tokenized per ``encode_batch`` call, >= 1.

    Returns:
        ``(len(texts), dim)`` float32 features.

    Raises:
        ValueError: If ``texts`` is a single string or holds a non-string, the
            embedding is not a finite 2-D numeric array, a token id falls outside
            the embedding, or a text has no tokens and ``on_empty="raise"``.
    """
    where = "text_features"
    if isinstance(texts, (str, bytes)):
        raise NFTKInputError(
            f"{where}: `texts` must be a sequence of strings, not one string; wrap "
            "it in a list: text_features([text], ...)."
        )
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            hint = ""
            if isinstance(t, bytes):
                hint = " decode bytes with t.decode('utf-8');"
            raise NFTKInputError(
                f"{where}: `texts[{i}]` is a {type(t).__name__}, not a str;{hint} "
                "every text must be a str."
            )
    if on_empty not in ("raise", "zero"):
        raise NFTKInputError(
            f"{where}: `on_empty` must be 'raise' or 'zero', got {on_empty!r}."
        )
    batch_size = check_int(batch_size, "batch_size", minimum=1, where=where)
    if not callable(getattr(tokenizer, "encode_batch", None)):
        raise NFTKInputError(
            f"{where}: `tokenizer` must be a tokenizers.Tokenizer (with "
            f"encode_batch), got {type(tokenizer).__name__}."
        )
    emb = np.asarray(embedding)
    if emb.ndim != 2 or not (
        np.issubdtype(emb.dtype, np.floating) or np.issubdtype(emb.dtype, np.integer)
    ):
        raise NFTKInputError(
            f"{where}: `embedding` must be a numeric (vocab_size, dim) matrix, got "
            f"dtype {emb.dtype} and shape {emb.shape}."
        )
    if not np.all(np.isfinite(emb)):
        raise NFTKInputError(f"{where}: `embedding` contains NaN or infinite values.")

    vocab_size, dim = emb.shape
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        encodings = tokenizer.encode_batch(chunk, add_special_tokens=False)
        for offset, enc in enumerate(encodings):
            i = start + offset
            ids = np.asarray(enc.ids, dtype=np.int64)
            mask = np.asarray(enc.attention_mask, dtype=bool)
            if mask.shape == ids.shape:
                ids = ids[mask]  # drop padding tokens, if the tokenizer pads
            if ids.size == 0:
                if on_empty == "raise":
                    raise NFTKInputError(
                        f"{where}: `texts[{i}]` ({texts[i]!r:.40}) has no tokens, so "
                        "its mean embedding is undefined; remove it, or pass "
                        "on_empty='zero' to give it a zero feature row."
                    )
                continue
            if ids.min() < 0 or ids.max() >= vocab_size:
                raise NFTKInputError(
                    f"{where}: the tokenizer produced token id {int(ids.max())} for "
                    f"`texts[{i}]`, but `embedding` has only {vocab_size} rows; the "
                    "tokenizer and the embedding must come from the same model."
                )
            out[i] = emb[ids].mean(axis=0, dtype=np.float64)
    return out


def _import_text_packages():
    try:
        import safetensors  # noqa: F401
        import tokenizers
    except ImportError as e:
        raise NFTKDependencyError(
            "load_gpt2_embedding needs the `tokenizers` and `safetensors` packages; "
            f"install the text extra: {_TEXT_EXTRA}"
        ) from e
    return tokenizers


def _hub_files(repo_id: str) -> dict[str, pathlib.Path]:
    try:
        import huggingface_hub
    except ImportError as e:
        raise NFTKDependencyError(
            "load_gpt2_embedding(local_dir=None) downloads from the Hugging Face hub "
            f"and needs `huggingface-hub`; install the text extra: {_TEXT_EXTRA}, or "
            "pass local_dir=<folder with tokenizer.json and model.safetensors>."
        ) from e
    paths = {}
    for filename in _GPT2_FILES:
        try:
            paths[filename] = pathlib.Path(
                huggingface_hub.hf_hub_download(repo_id, filename)
            )
        except Exception as e:  # network, proxy, authentication, missing repo
            raise NFTKFileNotFoundError(
                f"load_gpt2_embedding: could not fetch {filename!r} of {repo_id!r} "
                f"from the Hugging Face hub ({type(e).__name__}: {e}). Without "
                f"network access, copy {' and '.join(_GPT2_FILES)} from "
                f"https://huggingface.co/{repo_id} into a folder and pass "
                "local_dir=<that folder>."
            ) from e
    return paths


def load_gpt2_embedding(
    *, local_dir: str | os.PathLike | None = None, repo_id: str = "gpt2"
) -> TokenEmbedding:
    """Loads GPT-2's tokenizer and token-embedding (``wte``) matrix.

    Only two files are read: ``tokenizer.json`` and, from ``model.safetensors``, the
    ``wte`` tensor (``(50257, 768)`` float32 for the smallest GPT-2); the rest of the
    model is never loaded.

    Args:
        local_dir: Folder holding ``tokenizer.json`` and ``model.safetensors`` (e.g.
            a copy of https://huggingface.co/gpt2). ``None`` downloads them from the
            Hugging Face hub (cached by ``huggingface_hub``), which needs network.
        repo_id: Hub repository used when ``local_dir`` is ``None``.

    Returns:
        A `TokenEmbedding` for `text_features`.

    Raises:
        FileNotFoundError: If a file is missing in ``local_dir``, or the hub cannot
            be reached (the message says to pass ``local_dir``).
        ValueError: If the checkpoint has no ``wte`` tensor or it does not match
            the tokenizer.
        ImportError: If the ``text`` extra is not installed.
    """
    where = "load_gpt2_embedding"
    tokenizers = _import_text_packages()
    from safetensors import safe_open

    if local_dir is None:
        if not isinstance(repo_id, str) or not repo_id:
            raise NFTKInputError(f"{where}: `repo_id` must be a non-empty string.")
        paths = _hub_files(repo_id)
    else:
        folder = pathlib.Path(local_dir).expanduser()
        if not folder.is_dir():
            raise NFTKFileNotFoundError(
                f"{where}: `local_dir` {str(folder)!r} is not an existing folder; "
                f"pass the folder holding {' and '.join(_GPT2_FILES)}."
            )
        paths = {name: folder / name for name in _GPT2_FILES}
        for name, path in paths.items():
            if not path.is_file():
                raise NFTKFileNotFoundError(
                    f"{where}: `local_dir` {str(folder)!r} has no {name}; it must "
                    f"hold {' and '.join(_GPT2_FILES)} from "
                    "https://huggingface.co/gpt2."
                )

    tokenizer = tokenizers.Tokenizer.from_file(str(paths["tokenizer.json"]))
    with safe_open(str(paths["model.safetensors"]), framework="numpy") as f:
        keys = list(f.keys())
        key = next((k for k in _WTE_KEYS if k in keys), None)
        if key is None:
            raise NFTKInputError(
                f"{where}: {paths['model.safetensors']} has no token-embedding tensor "
                f"(looked for {_WTE_KEYS}); it is not a GPT-2 checkpoint."
            )
        embedding = np.asarray(f.get_tensor(key), dtype=np.float32)
    if embedding.ndim != 2 or embedding.shape[0] < tokenizer.get_vocab_size():
        raise NFTKInputError(
            f"{where}: the {key} tensor has shape {embedding.shape}, but the "
            f"tokenizer has {tokenizer.get_vocab_size()} tokens; tokenizer.json and "
            "model.safetensors must come from the same model."
        )
    return TokenEmbedding(tokenizer=tokenizer, embedding=embedding)
