"""``run_stn_demo``: every (distortion, model, seed) training, in worker processes, then the table and figure."""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .data import load_digits, stratified_split
from .distortions import DISTORTIONS, distort
from .models import MODELS, build_model, count_parameters, predict, transformer_of
from .report import format_table, pick_examples, save_figure
from .training import TrainConfig, test_error, train

__all__ = ["PRESETS", "StnDemoResult", "run_stn_demo"]

# (seeds, epochs, test digits per class, test copies, digit limit); see run_stn_demo
PRESETS: dict[str, dict[str, Any]] = {
    "quick": dict(seeds=1, epochs=1, test_per_class=5, test_copies=1, limit=200),
    "default": dict(seeds=1, epochs=10, test_per_class=50, test_copies=4, limit=None),
    "full": dict(seeds=3, epochs=12, test_per_class=50, test_copies=4, limit=None),
}


@dataclass
class StnDemoResult:
    """``errors[distortion][model]``: test error (%) per seed; ``parameters[distortion][model]``: counts."""

    errors: dict[str, dict[str, list[float]]]
    parameters: dict[str, dict[str, int]]
    table: str
    figure: Path | None
    seconds: float
    settings: dict = field(default_factory=dict)


def run_stn_demo(
    data: str | Path = "mnist",
    *,
    preset: str = "default",
    seeds: int | None = None,
    epochs: int | None = None,
    jobs: int = 2,
    localization_lr_factor: float = 0.1,
    out: str | Path | None = "stn_demo.png",
    distortions: tuple[str, ...] = DISTORTIONS,
    models: tuple[str, ...] = MODELS,
    progress: bool = True,
) -> StnDemoResult:
    """Train the CNN and the ST-CNNs on each distortion for each seed; print and return the table.

    The train / test split is fixed (``test_per_class`` digits of each class held out). Training digits
    are distorted afresh every epoch; the test digits are distorted once (``test_copies`` fixed
    distortions each), the same for every model and seed. ``preset``: ``quick`` (a smoke test: its
    numbers mean nothing), ``default`` (1 seed) or ``full`` (3 seeds, more epochs: the README's table).
    ``jobs`` trainings run at once, each in its own process on one thread. The localisation network
    learns at ``localization_lr_factor`` times the classifier's rate. ``out``: the figure's path
    (None: no figure); the results go to the same path with ``.json`` as they arrive.
    """
    if preset not in PRESETS:
        raise ValueError(f"preset: expected one of {', '.join(PRESETS)}, got {preset!r}")
    from tqdm.auto import tqdm

    begin = time.perf_counter()
    settings = dict(PRESETS[preset], data=str(data), preset=preset, jobs=jobs)
    settings["localization_lr_factor"] = localization_lr_factor
    settings.update({k: v for k, v in dict(seeds=seeds, epochs=epochs).items() if v is not None})
    tasks = [(kind, model, seed) for seed in range(settings["seeds"]) for kind in distortions for model in models]
    errors: dict[str, dict[str, list[float]]] = {kind: {model: [] for model in models} for kind in distortions}
    parameters: dict[str, dict[str, int]] = {kind: {} for kind in distortions}
    timings: dict[str, dict[str, list[float]]] = {kind: {model: [] for model in models} for kind in distortions}
    states: dict[tuple[str, str], dict] = {}
    log = None if out is None else Path(out).with_suffix(".json")
    bar = tqdm(
        total=len(tasks) * settings["epochs"], desc="stn demo", unit="epoch", disable=not progress, dynamic_ncols=True
    )
    finished: dict[tuple[str, str, int], dict] = {}
    for (kind, model, seed), result in _run_all(tasks, settings, jobs, bar):
        finished[(kind, model, seed)] = result
        # in seed order, whatever order the workers finish in
        done = [finished[(kind, model, s)] for s in range(settings["seeds"]) if (kind, model, s) in finished]
        errors[kind][model] = [r["error"] for r in done]
        timings[kind][model] = [round(r["seconds"], 1) for r in done]
        parameters[kind][model] = result["parameters"]
        if seed == 0:
            states[(kind, model)] = result["state"]
        bar.set_postfix_str(f"{kind} {model} s{seed}: {result['error']:.2f}%", refresh=False)
        if log is not None:
            _write_log(log, errors, parameters, timings, settings, time.perf_counter() - begin)
    bar.close()
    table = format_table(errors)
    seconds = time.perf_counter() - begin
    print(f"Test error (%), mean ± std over {settings['seeds']} seed(s) (the paper's Table 1 in brackets):")
    print(table)
    if preset == "quick":
        print("(--quick: 1 epoch on 200 digits, a smoke test; these numbers mean nothing)")
    figure = None
    if out is not None and log is not None:
        figure = _figure(Path(out), states, settings, distortions, models)
        _write_log(log, errors, parameters, timings, settings, seconds)
        print(f"figure: {figure}; results: {log}")
    return StnDemoResult(errors, parameters, table, figure, seconds, settings)


# --- one training, in a worker or in-process ---------------------------------------------------------
_CACHE: dict = {}


def _problem(settings: dict, kind: str):
    """The split digits and ``kind``'s fixed test set, built once per process."""
    key = (settings["data"], settings["limit"], settings["test_per_class"], settings["test_copies"], kind)
    if key not in _CACHE:
        images, labels = load_digits(settings["data"])
        if settings["limit"] is not None:
            keep = stratified_split(labels, settings["limit"] // 10, seed=7)[1]
            images, labels = images[keep], labels[keep]
        train_idx, test_idx = stratified_split(labels, settings["test_per_class"])
        copies = settings["test_copies"]
        test_generator = torch.Generator().manual_seed(10_000 + DISTORTIONS.index(kind))
        x_test = distort(images[test_idx].repeat(copies, 1, 1, 1), kind, test_generator)
        _CACHE[key] = (images[train_idx], labels[train_idx], x_test, labels[test_idx].repeat(copies))
    return _CACHE[key]


def _one_thread() -> None:
    """Each training runs on one thread (torch's, which the compiled sampler follows): on a busy machine a
    kernel split over 2 threads waits for its descheduled half (an epoch took 14x longer, measured)."""
    torch.set_num_threads(1)


def _train_one(kind: str, model_name: str, seed: int, settings: dict, progress_queue=None) -> dict:
    _one_thread()
    x_train, y_train, x_test, y_test = _problem(settings, kind)
    torch.manual_seed(seed)
    model = build_model(model_name, x_test.shape[-1])
    steps = -(-len(x_train) // 64)
    counter = {"steps": 0}

    def on_step():
        counter["steps"] += 1
        if progress_queue is not None and counter["steps"] % steps == 0:
            progress_queue.put(1)

    begin = time.perf_counter()
    train(
        model,
        x_train,
        y_train,
        kind,
        TrainConfig(epochs=settings["epochs"], localization_lr_factor=settings["localization_lr_factor"]),
        seed=1000 * seed + 17,
        on_step=on_step,
    )
    return {
        "error": test_error(model, x_test, y_test),
        "parameters": count_parameters(model),
        "seconds": time.perf_counter() - begin,
        "state": model.state_dict() if seed == 0 else None,
    }


def _run_all(tasks, settings, jobs, bar):
    """Yield ``(task, result)`` as trainings finish; the bar advances per epoch."""
    if jobs <= 1:
        threads = torch.get_num_threads()
        queue = _BarQueue(bar)
        try:
            for task in tasks:
                yield task, _train_one(*task, settings, queue)
        finally:
            torch.set_num_threads(threads)
        return
    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pool
    with context.Manager() as manager, ProcessPoolExecutor(jobs, mp_context=context) as pool:
        queue = manager.Queue()
        pending = {pool.submit(_train_one, *task, settings, queue): task for task in tasks}
        while pending:
            done = [f for f in pending if f.done()]
            while not queue.empty():
                bar.update(queue.get())
            for future in done:
                yield pending.pop(future), future.result()
            if not done:
                time.sleep(0.2)
        while not queue.empty():
            bar.update(queue.get())


class _BarQueue:
    def __init__(self, bar):
        self.bar = bar

    def put(self, n: int) -> None:
        self.bar.update(n)


# --- outputs -------------------------------------------------------------------------------------------
def _figure(path: Path, states, settings, distortions, models) -> Path:
    examples, transformed, predictions, labels = {}, {}, {}, {}
    for kind in distortions:
        _, _, x_test, y_test = _problem(settings, kind)
        picked = pick_examples(y_test)
        examples[kind], labels[kind] = x_test[picked], y_test[picked]
        for name in models:
            model = build_model(name, x_test.shape[-1])
            model.load_state_dict(states[(kind, name)])
            model.eval()
            predictions[(kind, name)] = predict(model, examples[kind])
            stn = transformer_of(model)
            if stn is not None:
                with torch.no_grad():
                    transformed[(kind, name)] = stn(examples[kind])
    return save_figure(path, examples, transformed, predictions, labels, models)


def _is_cli(program: str) -> bool:
    path = Path(program)
    return path.name == "warpkit" or (path.name == "__main__.py" and path.parent.name == "warpkit")


def _write_log(path: Path, errors, parameters, timings, settings, seconds: float) -> None:
    record = {
        "command": " ".join(["warpkit", *sys.argv[1:]]) if _is_cli(sys.argv[0]) else " ".join(sys.argv),
        "settings": settings,
        "errors": errors,
        "parameters": parameters,
        "training_seconds": timings,
        "seconds": round(seconds, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1))
