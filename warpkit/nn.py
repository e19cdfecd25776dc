"""Spatial transformers as ``torch.nn`` modules (Jaderberg et al., 2015).

:class:`SpatialTransformer` = localisation network -> family parameters -> sampling grid -> sampler,
initialised to the identity transform. :class:`Warp` is the last two steps alone, for parameters that
come from elsewhere.

Convention: STN parameters are ``Family.from_params`` vectors: the normalised ``[-1, 1]`` destination ->
source map (for ``affine`` exactly ``F.affine_grid``'s ``theta``), with the same ``align_corners``
meaning as torch. The grid comes from ``Family.grid_from_params``: for the built-in families a closed
form (matmuls; no matrix inverse or linear solve per forward), which is what makes the modules traceable,
``torch.compile``-able without graph breaks and exportable to ONNX.
"""

from __future__ import annotations

import torch
from torch import nn

from ._base import Transform
from ._checks import check_output_size, check_size
from ._coords import normalization_matrix
from ._dispatch import Call, resample
from ._errors import ShapeError, WarpkitError
from ._modes import Interpolation, Padding, parse_mode
from ._registry import get_family
from ._sampler import sample

__all__ = ["SpatialTransformer", "Warp"]


class Warp(nn.Module):
    """Warp a feature map by STN parameters of a transform family.

    Args:
        family: a registered family name (``"affine"``, ``"projective"``, ``"tps"``, plugins) or class.
        output_size: ``(H_out, W_out)``; None keeps the input's size.
        align_corners: the meaning of the normalised frame, as in ``F.affine_grid``.
        interpolation, padding: as in :func:`warpkit.sample`.
        antialias: where the warp shrinks, average each output pixel's footprint (as ``wk.warp(...,
            antialias=True)``; the Jacobian from central differences of the grid).

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
        antialias: bool = False,
    ):
        super().__init__()
        self.family = _stn_family(family, type(self).__name__)
        self.output_size = None if output_size is None else check_size(output_size, "output_size")
        self.align_corners = bool(align_corners)
        self.interpolation = parse_mode(Interpolation, interpolation, "interpolation")
        self.padding = parse_mode(Padding, padding, "padding")
        self.antialias = bool(antialias)

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
        input_size = (int(image.shape[-2]), int(image.shape[-1]))
        dst_size = self.output_size or input_size
        check_output_size(image.shape[0], image.shape[1], dst_size, "output_size")
        try:
            matrix = None
            if not self.antialias:  # the anti-aliased path needs the grid (its Jacobian)
                matrix = params_matrix(self.family, params, input_size, dst_size, self.align_corners)
            if matrix is not None:  # the sampler computes the points from the matrix: no grid built here
                call = Call(
                    image,
                    matrix[0].to(image.dtype),
                    True,
                    matrix[1],
                    dst_size,
                    self.interpolation,
                    self.padding,
                    None,
                    True,
                )
                return resample(call)
            grid = self.grid(params, input_size)
        except ShapeError as exc:  # the family names the argument; add the module once
            raise ShapeError(f"{name}: {exc}") from None
        if self.antialias:
            from ._antialias import sample_antialiased  # noqa: PLC0415 - only modules that ask for it pay

            grid = grid.to(image.dtype)
            return sample_antialiased(image, grid, interpolation=self.interpolation, padding=self.padding)
        return sample(image, grid.to(image.dtype), interpolation=self.interpolation, padding=self.padding)

    def grid(self, params: torch.Tensor, input_size: tuple[int, int]) -> torch.Tensor:
        """``(B, H_out, W_out, 2)`` source pixel points read for ``(B, P)`` ``params``."""
        dst_size = self.output_size or input_size
        return self.family.grid_from_params(params, input_size, dst_size, align_corners=self.align_corners)

    def transform(self, params: torch.Tensor, input_size: tuple[int, int]) -> Transform:
        """The warpkit transform (source -> destination pixels) that ``params`` stand for."""
        dst_size = self.output_size or input_size
        return self.family.from_params(params, input_size, dst_size, align_corners=self.align_corners)

    def extra_repr(self) -> str:
        return (
            f"family={self.family.name!r}, output_size={self.output_size}, align_corners={self.align_corners}, "
            f"interpolation={self.interpolation.value!r}, padding={self.padding.value!r}, antialias={self.antialias}"
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
        align_corners, interpolation, padding, antialias: as in :class:`Warp`.

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
        antialias: bool = False,
    ):
        super().__init__()
        name = type(self).__name__
        if not (isinstance(in_channels, int) and not isinstance(in_channels, bool) and in_channels >= 1):
            raise WarpkitError(f"{name}: in_channels: expected a positive int, got {in_channels!r}")
        self.in_channels = in_channels
        self.input_size = check_size(input_size, "input_size")
        # The probe run below allocates (2, C, H, W) and the default head is sized by H * W: check first.
        check_output_size(2, in_channels, self.input_size, "input_size")
        if output_size is not None:
            check_output_size(1, in_channels, check_size(output_size, "output_size"), "output_size")
        self.warp = Warp(
            family,
            output_size,
            align_corners=align_corners,
            interpolation=interpolation,
            padding=padding,
            antialias=antialias,
        )
        if localization is None:
            localization = default_localization(in_channels, self.input_size)
        elif not isinstance(localization, nn.Module):
            raise WarpkitError(
                f"{name}: localization: expected an nn.Module or None, got {type(localization).__name__}"
            )
        self.localization = localization
        features = _feature_count(localization, in_channels, self.input_size, name)
        num_params = self.warp.family.num_params
        if num_params is None:  # Warp has refused such a family already; this keeps the type checker informed
            raise WarpkitError(f"{name}: family: expected a family with STN parameters, got num_params None")
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
            raise ShapeError(
                f"{type(self).__name__}: input: expected shape (B, {', '.join(map(str, expected))}), got {got}"
            )
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


def params_matrix(family, params, src_size, dst_size, align_corners) -> tuple[torch.Tensor, bool] | None:
    """The ``(B, 3, 3)`` destination -> source pixel matrix of a matrix family's STN ``params`` in closed form
    (``N_src^-1 theta N_dst``: no inverse), and whether it is affine; None for other families (and for
    subclasses with parameters of their own)."""
    from .families import affine, projective

    for owner, to_theta, is_affine in (
        (affine.Affine, affine._theta, True),
        (projective.Projective, projective._theta, False),
    ):
        if isinstance(family, type) and issubclass(family, owner):
            if getattr(family.from_params, "__func__", None) is not getattr(owner.from_params, "__func__", None):
                return None
            theta = to_theta(params)
            to_pixels = normalization_matrix(
                src_size, align_corners, theta.dtype, theta.device, "src_size", inverse=True
            )
            to_norm = normalization_matrix(dst_size, align_corners, theta.dtype, theta.device, "dst_size")
            return to_pixels @ theta @ to_norm, is_affine
    return None


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
