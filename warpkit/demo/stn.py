"""The spatial-transformer experiment of Jaderberg et al. (2015), Table 1, on real handwritten digits.

Digits (scikit-learn's 8x8 set, or an MNIST IDX file) are placed on a square canvas (16x16 for the 8x8
digits, to fit the CPU budget; MNIST's 28x28 for IDX data) and distorted with warpkit itself the way the
paper does: R (rotation), RTS (rotation, scale, translation on a canvas 1.5 times larger, the paper's
42 for 28), P (projective) and E (elastic, a thin-plate spline). Distortion sizes in pixels are the
paper's, scaled by canvas / 28. A CNN baseline and ST-CNNs (affine, projective, TPS
localisation) are trained per distortion and seed; the result is a table of test error and a figure of
what each spatial transformer made of the distorted inputs.
"""

from __future__ import annotations

import gzip
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

import warpkit as wk

__all__ = ["DISTORTIONS", "MODELS", "StnDemoResult", "load_digits", "distort", "run_stn_demo"]

DISTORTIONS = ("R", "RTS", "P", "E")
MODELS = ("cnn", "affine", "projective", "tps")
DIGITS_CANVAS = 16  # canvas for scikit-learn's 8x8 digits: the digit fills 12x12, as MNIST's 20x20 in 28x28
MNIST_CANVAS = 28


@dataclass
class StnDemoResult:
    """``errors[distortion][model]``: test error (%) per seed; ``table``: the printed table."""

    errors: dict[str, dict[str, list[float]]]
    table: str
    figure: Path | None
    seconds: float


# --- data -------------------------------------------------------------------------------------------
def load_digits(data: str | Path | None = None, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Digits as ``(N, 1, S, S)`` float32 in [0, 1] and ``(N,)`` int64 labels.

    ``data`` None: scikit-learn's 1,797 8x8 digits, scaled with warpkit to a 12x12 box centred in 16x16
    (``S = 16``, MNIST's layout at a smaller size). Otherwise an MNIST images IDX file (``.gz`` allowed,
    ``S = 28``); its labels file is found by replacing ``images-idx3`` with ``labels-idx1`` in the name.
    """
    if data is None:
        from sklearn.datasets import load_digits as sklearn_digits

        bunch = sklearn_digits()
        small = torch.from_numpy(bunch.images).float().unsqueeze(1) / 16
        box, canvas = 12, DIGITS_CANVAS
        scale = box / 8
        # pixel centre x of the 8x8 image lands at scale * (x + 0.5) - 0.5 inside the box
        offset = 0.5 * scale - 0.5 + (canvas - box) / 2
        fit = wk.Affine([[scale, 0.0, offset], [0.0, scale, offset]])
        images = wk.warp(small, fit, (canvas, canvas)).clamp(0, 1)
        labels = torch.from_numpy(bunch.target).long()
    else:
        path = Path(data)
        images = torch.from_numpy(_read_idx(path)).float().unsqueeze(1) / 255
        labels = torch.from_numpy(_read_idx(_labels_path(path))).long()
        if tuple(images.shape[-2:]) != (MNIST_CANVAS, MNIST_CANVAS) or len(images) != len(labels):
            raise wk.ShapeError(
                f"data: expected 28x28 images with as many labels, got images {tuple(images.shape)}, labels {len(labels)}"
            )
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images, labels


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


# --- distortions, made with warpkit -------------------------------------------------------------------
def distort(images: torch.Tensor, kind: str, generator: torch.Generator) -> torch.Tensor:
    """Distort ``(N, 1, S, S)`` digits; returns ``(N, 1, S, S)``, or ``(N, 1, 1.5 S, 1.5 S)`` for RTS.

    In pixels of a 28x28 canvas (scaled by S / 28): R: rotation in +-90 deg. RTS: rotation in +-45 deg,
    scale 0.7..1.2, random position on the larger canvas. P: scale 0.75, each corner moved by N(0, 5 px)
    (the paper's). E: a 4x4 control grid, each point moved uniformly by +-2.5 px (a thin-plate spline),
    after a 0.9 scale for all.
    """
    n = len(images)
    canvas = images.shape[-1]
    large = canvas * 3 // 2
    px = canvas / 28
    centre = (canvas - 1) / 2

    def uniform(low, high, *shape):
        return low + (high - low) * torch.rand(n, *shape, generator=generator)

    if kind in ("R", "RTS"):
        limit = math.pi / 2 if kind == "R" else math.pi / 4
        angle = uniform(-limit, limit)
        scale = torch.ones(n) if kind == "R" else uniform(0.7, 1.2)
        size = canvas if kind == "R" else large
        room = (large - canvas * 1.0) / 2 if kind == "RTS" else 0.0
        target = (size - 1) / 2 + uniform(-room, room, 2)
        cos, sin = scale * torch.cos(angle), scale * torch.sin(angle)
        linear = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], 1)  # (N, 2, 2)
        shift = target - (linear @ torch.full((n, 2, 1), centre))[..., 0]
        return wk.warp(images, wk.Affine(torch.cat([linear, shift.unsqueeze(-1)], 2)), (size, size))
    if kind == "P":
        corners = torch.tensor([[0.0, 0.0], [canvas - 1, 0.0], [canvas - 1, canvas - 1], [0.0, canvas - 1]])
        moved = centre + 0.75 * (corners - centre) + 5 * px * torch.randn(n, 4, 2, generator=generator)
        return wk.warp(images, wk.Projective.estimate(corners, moved))
    if kind == "E":
        # A TPS from its STN parameters: where each of a 4x4 grid of destination control points reads the
        # source (normalised [-1, 1] units: 2.5 px on 28 px is 2.5 * 2 / 28 at any canvas size).
        control = wk.ThinPlateSpline.identity_params(n)
        params = control / 0.9 + uniform(-2.5, 2.5, 32) * (2 / 28)
        return wk.nn.Warp("tps")(images, params)
    raise wk.WarpkitError(f"kind: expected one of {', '.join(DISTORTIONS)}, got {kind!r}")


# --- models ---------------------------------------------------------------------------------------------
def classifier(input_size: int) -> nn.Sequential:
    """The CNN every model ends in: ``(B, 1, S, S) -> (B, 10)`` logits."""
    side = input_size // 4
    return nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2), nn.MaxPool2d(2), nn.ReLU(),
        nn.Conv2d(16, 32, 5, padding=2), nn.MaxPool2d(2), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * side * side, 64), nn.ReLU(), nn.Linear(64, 10),
    )  # fmt: skip


def build_model(name: str, input_size: int, canvas: int) -> nn.Module:
    """``cnn`` (the baseline) or an ST-CNN whose transformer outputs ``canvas`` (zooming in for RTS)."""
    if name == "cnn":
        return classifier(input_size)
    stn = wk.nn.SpatialTransformer(1, (input_size, input_size), name, output_size=(canvas, canvas))
    return nn.Sequential(stn, classifier(canvas))


def train_and_test(model, train, test, epochs: int, seed: int, progress: bool, label: str) -> float:
    """Adam, batch 64, cross entropy; returns test error in percent."""
    from tqdm.auto import tqdm

    (x_train, y_train), (x_test, y_test) = train, test
    generator = torch.Generator().manual_seed(seed)
    stn = model[0] if isinstance(model[0], wk.nn.SpatialTransformer) else None
    stn_params = list(stn.parameters()) if stn is not None else []
    other = [p for p in model.parameters() if all(p is not q for q in stn_params)]
    # The spatial transformer learns 10x slower, as is usual for STNs: a big early step can warp the digit away.
    optimizer = torch.optim.Adam([{"params": other}, {"params": stn_params}], lr=1e-3)
    steps = epochs * math.ceil(len(x_train) / 64)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[3e-3, 3e-4], total_steps=steps)
    bar = tqdm(total=steps, desc=label, leave=False, disable=not progress, dynamic_ncols=True)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order), 64):
            batch = order[start : start + 64]
            loss = nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            # A projective STN can put its horizon inside the image; clipping keeps one bad batch from blowing up.
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            schedule.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    bar.close()
    model.eval()
    with torch.no_grad():
        wrong = sum(int((model(x).argmax(1) != y).sum()) for x, y in zip(x_test.split(256), y_test.split(256)))
    return 100 * wrong / len(y_test)


# --- the experiment -----------------------------------------------------------------------------------
def run_stn_demo(
    data: str | Path | None = None,
    *,
    seeds: int = 3,
    epochs: int = 8,
    out: str | Path | None = "stn_demo.png",
    quick: bool = False,
    distortions: tuple[str, ...] = DISTORTIONS,
    models: tuple[str, ...] = MODELS,
    train_copies: int = 3,
    progress: bool = True,
) -> StnDemoResult:
    """Train the CNN baseline and the ST-CNNs on each distortion for ``seeds`` seeds; print the table.

    The split (70 % train, 30 % test) is fixed; each seed draws new distortions (``train_copies`` per
    training digit, one per test digit) and new weights. ``quick`` (for tests): 1 seed, 1 epoch, 150
    digits. Returns the errors, the table, the figure path (``out``; None skips it) and the wall time.
    """
    from tqdm.auto import tqdm

    begin = time.perf_counter()
    torch.set_flush_denormal(True)  # denormals from a diverging run would slow every later run
    if quick:
        seeds, epochs, train_copies = 1, 1, 1
    images, labels = load_digits(data, limit=150 if quick else None)
    split = torch.randperm(len(images), generator=torch.Generator().manual_seed(1234))
    cut = int(0.7 * len(images))
    train_idx, test_idx = split[:cut], split[cut:]
    errors = {d: {m: [] for m in models} for d in distortions}
    trained: dict[tuple[str, str], nn.Module] = {}
    examples: dict[str, torch.Tensor] = {}
    runs = tqdm(total=len(distortions) * len(models) * seeds, desc="stn demo", disable=not progress, dynamic_ncols=True)
    for kind in distortions:
        for seed in range(seeds):
            generator = torch.Generator().manual_seed(1000 * seed + DISTORTIONS.index(kind))
            x_train = distort(images[train_idx].repeat(train_copies, 1, 1, 1), kind, generator)
            y_train = labels[train_idx].repeat(train_copies)
            x_test = distort(images[test_idx], kind, generator)
            examples.setdefault(kind, x_test[:8])
            for name in models:
                torch.manual_seed(seed)
                model = build_model(name, x_train.shape[-1], images.shape[-1])
                error = train_and_test(
                    model, (x_train, y_train), (x_test, labels[test_idx]), epochs, seed, progress, f"{kind} {name} s{seed}"
                )
                errors[kind][name].append(error)
                trained.setdefault((kind, name), model)
                runs.update()
    runs.close()
    table = format_table(errors, seeds, epochs, len(train_idx) * train_copies, len(test_idx))
    print(table)
    figure = None
    if out is not None:
        figure = save_figure(Path(out), examples, trained, distortions, models)
        print(f"figure: {figure}")
    return StnDemoResult(errors, table, figure, time.perf_counter() - begin)


def format_table(errors, seeds: int, epochs: int, n_train: int, n_test: int) -> str:
    """Markdown table: test error in percent, mean (and std) over seeds."""
    models = list(next(iter(errors.values())))
    head = "| distortion | " + " | ".join("CNN" if m == "cnn" else f"ST-CNN {m}" for m in models) + " |"
    lines = [
        f"Test error (%), mean +- std over {seeds} seed(s); {epochs} epoch(s), {n_train} training / {n_test} test digits",
        head,
        "|" + "---|" * (len(models) + 1),
    ]
    for kind, row in errors.items():
        cells = [f"{np.mean(v):.2f} +- {np.std(v):.2f}" if len(v) > 1 else f"{v[0]:.2f}" for v in row.values()]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def save_figure(path: Path, examples, trained, distortions, models) -> Path:
    """For each distortion: a row of distorted test digits, then what each spatial transformer made of them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stns = [m for m in models if m != "cnn"]
    side = max(x.shape[-1] for x in examples.values())
    strips, names = [], []
    for kind in distortions:
        for stn in [None, *stns]:
            shown = examples[kind]
            if stn is not None:
                with torch.no_grad():
                    shown = trained[(kind, stn)][0](shown)
            # one strip per row (a single image keeps matplotlib fast), padded to the largest canvas
            pad = side - shown.shape[-1]
            shown = nn.functional.pad(shown, (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2), value=0.5)
            shown = nn.functional.pad(shown, (1, 1, 1, 1), value=1.0)
            strips.append(torch.cat(list(shown[:, 0]), dim=1))
            names.append(f"{kind}: input" if stn is None else f"{kind}: ST {stn}")
    mosaic = torch.cat(strips, dim=0).clamp(0, 1).numpy()
    fig, axis = plt.subplots(figsize=(mosaic.shape[1] / 40 + 1.2, mosaic.shape[0] / 40 + 0.4))
    axis.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    axis.set_xticks([])
    axis.set_yticks([(i + 0.5) * mosaic.shape[0] / len(names) for i in range(len(names))], names, fontsize=7)
    axis.set_title("Distorted test digits and each spatial transformer's output", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
