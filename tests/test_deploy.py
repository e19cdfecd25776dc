"""Deployment paths of a model holding spatial transformers: torch.compile, ONNX, DistributedDataParallel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import warpkit as wk


class TinySTNet(nn.Module):
    """An affine STN, then a TPS STN to a smaller map, then a linear classifier: ``(B, 1, 16, 16) -> (B, 3)``."""

    def __init__(self):
        super().__init__()
        self.affine = wk.nn.SpatialTransformer(1, (16, 16), "affine")
        self.tps = wk.nn.SpatialTransformer(1, (16, 16), "tps", output_size=(12, 12))
        self.classify = nn.Sequential(nn.Flatten(), nn.Linear(144, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.tps(self.affine(x)))


def tiny_model(seed: int = 0) -> TinySTNet:
    """A TinySTNet away from the identity, so that the warps really move pixels."""
    torch.manual_seed(seed)
    model = TinySTNet()
    with torch.no_grad():
        model.affine.head.weight.normal_(0, 0.02)
        model.tps.head.weight.normal_(0, 0.02)
    return model


def inputs(batch: int = 4, seed: int = 1) -> torch.Tensor:
    return torch.rand(batch, 1, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_torch_compile_forward_and_backward_match_eager():
    model, x = tiny_model(), inputs()
    eager = model(x)
    eager.square().sum().backward()
    eager_grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    compiled = torch.compile(model, fullgraph=True)  # fullgraph: the closed-form grids leave no graph break
    out = compiled(x)
    out.square().sum().backward()
    assert (out - eager).abs().max() < 1e-5
    for name, p in model.named_parameters():
        assert (p.grad - eager_grads[name]).abs().max() < 1e-4 * max(1.0, eager_grads[name].abs().max()), name


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter is deprecated, still supported
def test_onnx_export_runs_in_onnxruntime_and_matches_torch(tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model, x = tiny_model().eval(), inputs()
    path = tmp_path / "stn.onnx"
    with pytest.warns(torch.jit.TracerWarning):  # shape checks are traced as constants: a fixed input size
        torch.onnx.export(model, (x,), str(path), opset_version=17, dynamo=False, input_names=["x"], output_names=["y"])
    assert max(o.version for o in onnx.load(str(path)).opset_import if o.domain in ("", "ai.onnx")) >= 16
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    other = inputs(seed=2)  # not the tracing input: the graph must compute, not replay
    for batch in (x, other):
        (ours,) = session.run(None, {"x": batch.numpy()})
        np.testing.assert_allclose(ours, model(batch).detach().numpy(), atol=1e-4, rtol=0)


def _ddp_worker(rank: int, world_size: int, out_dir: str) -> None:
    # A file store, not TCP: no port to race for, and no store server that dies with rank 0 while rank 1 still
    # talks to it (CI saw rank 1 abort in teardown once).
    dist.init_process_group("gloo", init_method=f"file://{out_dir}/store", rank=rank, world_size=world_size)
    try:
        torch.set_num_threads(1)
        model = nn.parallel.DistributedDataParallel(tiny_model(seed=rank))  # DDP syncs rank 0's weights
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        for step in range(3):
            x = inputs(batch=4, seed=10 * step + rank)  # each rank sees different data
            target = torch.tensor([0, 1, 2, rank])
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), target).backward()
            optimizer.step()
        torch.save(model.module.state_dict(), f"{out_dir}/rank{rank}.pt")
        dist.barrier()  # both ranks are done with gloo before either tears it down
    finally:
        dist.destroy_process_group()


def test_ddp_gloo_two_processes_keeps_replicas_identical(tmp_path):
    mp.spawn(_ddp_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    first, second = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    start = tiny_model(seed=0).state_dict()
    for name in first:
        assert torch.equal(first[name], second[name]), name
    assert not torch.equal(first["affine.head.weight"], start["affine.head.weight"])  # training did happen
    assert not torch.equal(first["tps.localization.0.weight"], start["tps.localization.0.weight"])
