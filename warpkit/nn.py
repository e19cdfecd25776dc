"""Spatial transformers as ``torch.nn`` modules (Jaderberg et al., 2015).

:class:`SpatialTransformer` = localisation network -> family parameters -> sampling grid -> sampler,
initialised to the identity transform. :class:`Warp` is the last two steps alone, for parameters that
come from elsewhere.

Convention: STN parameters are ``Family.from_params`` vectors: the normalised ``[-1, 1]`` destination ->
source map (for ``affine`` exactly ``F.affine_grid``'s ``theta``), with the same ``align_corners``
meaning as torch. For the built-in families the grid is computed in closed form from the parameters
(a matmul; no matrix inverse or linear solve per forward), which is what makes the modules traceable,
``torch.compile``-able without graph breaks and exportable to ONNX. Any other registered family goes
through ``Family.from_params(...).grid(size)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ._base import Transform
from ._checks import check_size
from ._errors import ShapeError, WarpkitError
from ._modes import Interpolation, Padding, parse_mode
from ._registry import get_family
from ._sampler import sample
from .families.affine import Affine
from .families.projective import Projective
from .families.tps import ThinPlateSpline, _control_grid, _kernel

__all__ = ["SpatialTransformer", "Warp"]


class Warp(nn.Module):
    """Warp a feature map by STN parameters of a transform family.

    Args:
        family: a registered family name (``"affine"``, ``"projective"``, ``"tps"``, plugins) or class.
        output_size: ``(H_out, W_out)``; None keeps the input's size.
        align_corners: the meaning of the normalised frame, as in ``F.affine_grid``.
        interpolation, padding: as in :func:`warpkit.sample`.

    Shapes: ``forward(image (B, C, H, W), params (B, P)) -> (B, C, H_out, W_out)`` with
    ``P = family.num_params`` (TPS also takes any ``2 k^2``).
    """

    def __init__(
        self,
        family: str | type[Transform] = "affine",
        output_size: tuple[int, int] | None = None,
        *,
        align_corners: bool = False,
        interpolation: str | Interpolation = "bilinear",
        padding: str | Padding = "zeros",
    ):
        super().__init__()
        self.family = _stn_family(family, type(self).__name__)
        self.output_size = None if output_size is None else check_size(output_size, "output_size")
        self.align_corners = bool(align_corners)
        self.interpolation = parse_mode(Interpolation, interpolation, "interpolation")
        self.padding = parse_mode(Padding, padding, "padding")
        if self.family is ThinPlateSpline:
            # The spline's system matrix depends only on the fixed control grid: invert it once here so
            # that every forward is a matmul (and stays exportable: ONNX has no linear solve).
            self.tps_side = _grid_side(self.family.num_params, type(self).__name__)
            self.register_buffer("tps_system_inverse", _tps_system_inverse(self.tps_side), persistent=False)

    def forward(self, image: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """Warp ``(B, C, H, W)`` ``image`` by ``(B, P)`` ``params``; returns ``(B, C, H_out, W_out)``."""
        name = type(self).__name__
        if not isinstance(image, torch.Tensor) or image.ndim != 4:
            got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise ShapeError(f"{name}: input: expected shape (B, C, H, W), got {got}")
        if not isinstance(params, torch.Tensor) or params.ndim != 2 or params.shape[0] != image.shape[0]:
            got = tuple(params.shape) if isinstance(params, torch.Tensor) else type(params).__name__
            raise ShapeError(f"{name}: params: expected shape ({image.shape[0]}, {self.family.num_params}), got {got}")
        # Plain ints: a traced or exported model has a fixed input size (sizes would become tensors).
        grid = self.grid(params, (int(image.shape[-2]), int(image.shape[-1])))
        return sample(image, grid.to(image.dtype), interpolation=self.interpolation, padding=self.padding)

    def grid(self, params: torch.Tensor, input_size: tuple[int, int]) -> torch.Tensor:
        """``(B, H_out, W_out, 2)`` source pixel points read for ``(B, P)`` ``params``."""
        dst_size = self.output_size or input_size
        closed_form = _CLOSED_FORM.get(self.family)
        if closed_form is None:
            return self.transform(params, input_size).grid(dst_size)
        return closed_form(self, params, input_size, dst_size)

    def transform(self, params: torch.Tensor, input_size: tuple[int, int]) -> Transform:
        """The warpkit transform (source -> destination pixels) that ``params`` stand for."""
        dst_size = self.output_size or input_size
        return self.family.from_params(params, input_size, dst_size, align_corners=self.align_corners)

    def extra_repr(self) -> str:
        return (
            f"family={self.family.name!r}, output_size={self.output_size}, align_corners={self.align_corners}, "
            f"interpolation={self.interpolation.value!r}, padding={self.padding.value!r}"
        )


class SpatialTransformer(nn.Module):
    """Localisation network -> family parameters -> grid -> sampler, trained end to end.

    The final layer (``head``, a ``Linear``) starts with zero weights and the family's identity
    parameters as bias, so the module starts as the identity warp (as in the paper).

    Args:
        in_channels: ``C`` of the ``(B, C, H, W)`` input.
        input_size: ``(H, W)`` of the input.
        family: a registered family name or class with STN parameters.
        output_size: ``(H_out, W_out)``; None keeps ``input_size``.
        localization: a module mapping ``(B, C, H, W)`` to ``(B, F)`` features; None builds a small
            CNN (two 5x5 convolutions with max pooling, then a 32-unit layer). ``F`` is found by running
            it once on zeros.
        align_corners, interpolation, padding: as in :class:`Warp`.

    Shapes: ``forward(x (B, C, H, W)) -> (B, C, H_out, W_out)``, or ``(output, transform)`` with
    ``return_transform=True``.
    """

    def __init__(
        self,
        in_channels: int,
        input_size: tuple[int, int],
        family: str | type[Transform] = "affine",
        output_size: tuple[int, int] | None = None,
        *,
        localization: nn.Module | None = None,
        align_corners: bool = False,
        interpolation: str | Interpolation = "bilinear",
        padding: str | Padding = "zeros",
    ):
        super().__init__()
        name = type(self).__name__
        if not (isinstance(in_channels, int) and not isinstance(in_channels, bool) and in_channels >= 1):
            raise WarpkitError(f"{name}: in_channels: expected a positive int, got {in_channels!r}")
        self.in_channels = in_channels
        self.input_size = check_size(input_size, "input_size")
        self.warp = Warp(family, output_size, align_corners=align_corners, interpolation=interpolation, padding=padding)
        if localization is None:
            localization = default_localization(in_channels, self.input_size)
        elif not isinstance(localization, nn.Module):
            raise WarpkitError(f"{name}: localization: expected an nn.Module or None, got {type(localization).__name__}")
        self.localization = localization
        features = _feature_count(localization, in_channels, self.input_size, name)
        num_params = self.warp.family.num_params
        self.head = nn.Linear(features, num_params)
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.bias.copy_(self.warp.family.identity_params(1)[0])

    @property
    def family(self) -> type[Transform]:
        return self.warp.family

    def forward(self, x: torch.Tensor, return_transform: bool = False):
        """Warp ``(B, C, H, W)`` ``x`` into ``(B, C, H_out, W_out)`` (and return the transform on request)."""
        expected = (self.in_channels, *self.input_size)
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != expected:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ShapeError(f"{type(self).__name__}: input: expected shape (B, {', '.join(map(str, expected))}), got {got}")
        params = self.params(x)
        out = self.warp(x, params)
        return (out, self.warp.transform(params, self.input_size)) if return_transform else out

    def params(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, P)`` family parameters predicted for ``(B, C, H, W)`` ``x``."""
        return self.head(self.localization(x))

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, input_size={self.input_size}"


def default_localization(in_channels: int, input_size: tuple[int, int]) -> nn.Sequential:
    """A small CNN mapping ``(B, C, H, W)`` to ``(B, 32)`` features; needs ``H, W >= 4``."""
    height, width = input_size
    if height < 4 or width < 4:
        raise ShapeError(f"input_size: the default localization needs H and W >= 4, got {input_size}")
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, 5, padding=2),
        nn.MaxPool2d(2),
        nn.ReLU(),
        nn.Conv2d(8, 16, 5, padding=2),
        nn.MaxPool2d(2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * (height // 4) * (width // 4), 32),
        nn.ReLU(),
    )


def _stn_family(family: object, owner: str) -> type[Transform]:
    cls = get_family(family) if isinstance(family, str) else family
    if not (isinstance(cls, type) and issubclass(cls, Transform)):
        raise WarpkitError(f"{owner}: family: expected a family name or a warpkit.Transform subclass, got {family!r}")
    if cls.num_params is None:
        raise WarpkitError(
            f"{owner}: family: {cls.__name__} has no STN parameter vector (num_params is None), so a network "
            "cannot predict it; use a family that implements from_params, such as 'affine', 'projective' or 'tps'"
        )
    return cls


def _feature_count(localization: nn.Module, channels: int, size: tuple[int, int], owner: str) -> int:
    """Width ``F`` of the localisation network's ``(B, F)`` output, from one run on zeros in eval mode."""
    was_training = localization.training
    localization.eval()
    try:
        with torch.no_grad():
            param = next(localization.parameters(), None)
            probe = torch.zeros(2, channels, *size, dtype=param.dtype if param is not None else torch.float32)
            out = localization(probe.to(param.device) if param is not None else probe)
    finally:
        localization.train(was_training)
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ShapeError(f"{owner}: localization: expected an output of shape (B, F), got {got}")
    return out.shape[1]


def _grid_side(num_params: int, owner: str) -> int:
    k = int(round((num_params / 2) ** 0.5))
    if 2 * k * k != num_params or k < 2:
        raise WarpkitError(f"{owner}: family: expected 2 * k * k TPS parameters (k >= 2), got {num_params}")
    return k


# --- closed-form grids for the built-in families ------------------------------------------------------
def _normalised_points(size: tuple[int, int], align_corners: bool, like: torch.Tensor) -> torch.Tensor:
    """``(H * W, 2)`` pixel centres of an image of ``size`` in torch's normalised frame."""
    height, width = size
    if align_corners and (height < 2 or width < 2):
        raise ShapeError(f"size: align_corners=True needs H and W >= 2, got {size}")
    ys = torch.arange(height, dtype=like.dtype, device=like.device)
    xs = torch.arange(width, dtype=like.dtype, device=like.device)
    if align_corners:
        xs, ys = xs * (2 / (width - 1)) - 1, ys * (2 / (height - 1)) - 1
    else:
        xs, ys = (2 * xs + 1) / width - 1, (2 * ys + 1) / height - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1).reshape(height * width, 2)


def _to_pixels(points: torch.Tensor, size: tuple[int, int], align_corners: bool) -> torch.Tensor:
    """Normalised ``(..., 2)`` points into pixel coordinates of an image of ``size``."""
    height, width = size
    scale = points.new_tensor([width, height])
    if align_corners:
        return (points + 1) * (scale - 1) / 2
    return ((points + 1) * scale - 1) / 2


def _matrix_grid(warp: Warp, params, src_size, dst_size) -> torch.Tensor:
    """Affine (``(B, 6)``) and projective (``(B, 8)``) params: theta applied to the destination pixels."""
    batch = params.shape[0]
    expected = warp.family.num_params
    if params.shape[1] != expected:
        raise ShapeError(f"{type(warp).__name__}: params: expected shape ({batch}, {expected}), got {tuple(params.shape)}")
    points = _normalised_points(dst_size, warp.align_corners, params)
    homogeneous = torch.cat([points, torch.ones_like(points[:, :1])], dim=1)  # (N, 3)
    if warp.family is Affine:
        source = homogeneous @ params.reshape(batch, 2, 3).transpose(1, 2)
    else:
        theta = torch.cat([params, torch.ones_like(params[:, :1])], dim=1).reshape(batch, 3, 3)
        mapped = homogeneous @ theta.transpose(1, 2)
        source = mapped[..., :2] / mapped[..., 2:]
    return _to_pixels(source, src_size, warp.align_corners).reshape(batch, dst_size[0], dst_size[1], 2)


def _tps_grid(warp: Warp, params, src_size, dst_size) -> torch.Tensor:
    """TPS params (``(B, 2 k^2)`` source points of the control grid): kernel basis @ solved weights."""
    batch = params.shape[0]
    inverse = warp.tps_system_inverse.to(params.dtype)
    k2 = warp.tps_side**2
    if params.shape[1] != 2 * k2:
        raise ShapeError(f"{type(warp).__name__}: params: expected shape ({batch}, {2 * k2}), got {tuple(params.shape)}")
    points = _normalised_points(dst_size, warp.align_corners, params)
    control = _control_grid(warp.tps_side, params.device).to(params.dtype)[0]  # (K, 2)
    kernel = _kernel((points.unsqueeze(1) - control.unsqueeze(0)).square().sum(-1))  # (N, K)
    basis = torch.cat([kernel, torch.ones_like(points[:, :1]), points], dim=1)  # (N, K + 3)
    # Weights and affine part are linear in the targets: (K + 3, K) @ (B, K, 2).
    coefficients = inverse[:, :k2] @ params.reshape(batch, k2, 2)
    source = basis @ coefficients  # (B, N, 2)
    return _to_pixels(source, src_size, warp.align_corners).reshape(batch, dst_size[0], dst_size[1], 2)


def _tps_system_inverse(k: int) -> torch.Tensor:
    """``(K + 3, K + 3)`` inverse of the TPS system ``[[U, P], [P^T, 0]]`` for the ``k x k`` control grid."""
    control = _control_grid(k, None)[0]
    kernel = _kernel((control.unsqueeze(1) - control.unsqueeze(0)).square().sum(-1))
    poly = torch.cat([torch.ones_like(control[:, :1]), control], dim=1)
    system = torch.cat(
        [torch.cat([kernel, poly], dim=1), torch.cat([poly.T, poly.new_zeros(3, 3)], dim=1)], dim=0
    )
    return torch.linalg.inv(system)


# Built-in families whose from_params(...).grid(...) has a closed form; any other family uses from_params.
_CLOSED_FORM: dict[type[Transform], Callable[..., torch.Tensor]] = {
    Affine: _matrix_grid,
    Projective: _matrix_grid,
    ThinPlateSpline: _tps_grid,
}
