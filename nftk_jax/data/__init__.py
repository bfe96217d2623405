"""Data sets for NFT-K: the embedded MNIST-5k default, small and full-scale loaders.

All loaders return a `Dataset` of float32 feature rows and int64 labels (or a
`TextDataset` of raw strings), read from local files without network access unless
asked. TensorFlow is only imported inside `load_tfds`. See docs/data.md.
"""

from ._dataset import Dataset as Dataset
from ._dataset import TextDataset as TextDataset
from ._digits import load_digits as load_digits
from ._fashion import FASHION_MNIST_URL as FASHION_MNIST_URL
from ._fashion import load_fashion_mnist as load_fashion_mnist
from ._idx import DEBIAN_FASHION_MNIST_DIR as DEBIAN_FASHION_MNIST_DIR
from ._idx import FASHION_MNIST_CLASSES as FASHION_MNIST_CLASSES
from ._idx import load_idx_dataset as load_idx_dataset
from ._idx import read_idx as read_idx
from ._mnist5k import MNIST5K_SIZE as MNIST5K_SIZE
from ._mnist5k import MNIST_CLASSES as MNIST_CLASSES
from ._mnist5k import load_mnist5k as load_mnist5k
from ._mnist5k import mnist5k_path as mnist5k_path
from ._preprocess import PREPROCESS_METHODS as PREPROCESS_METHODS
from ._preprocess import preprocess as preprocess
from ._text import TokenEmbedding as TokenEmbedding
from ._text import load_gpt2_embedding as load_gpt2_embedding
from ._text import text_features as text_features
from ._tfds import TFDS_DATASETS as TFDS_DATASETS
from ._tfds import DataNotPreparedError
from ._tfds import load_tfds as load_tfds
from ._ucr import UCR_DATASETS as UCR_DATASETS
from ._ucr import SequenceDataset as SequenceDataset
from ._ucr import length_view as length_view
from ._ucr import load_ucr as load_ucr
from ._ucr import resample_sequences as resample_sequences

__all__ = [
    "DEBIAN_FASHION_MNIST_DIR",
    "DataNotPreparedError",
    "Dataset",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_URL",
    "MNIST5K_SIZE",
    "MNIST_CLASSES",
    "PREPROCESS_METHODS",
    "SequenceDataset",
    "TFDS_DATASETS",
    "TextDataset",
    "TokenEmbedding",
    "UCR_DATASETS",
    "load_digits",
    "load_fashion_mnist",
    "load_gpt2_embedding",
    "load_idx_dataset",
    "load_mnist5k",
    "length_view",
    "load_tfds",
    "load_ucr",
    "mnist5k_path",
    "preprocess",
    "read_idx",
    "resample_sequences",
    "text_features",
]
