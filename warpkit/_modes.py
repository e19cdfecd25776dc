"""Interpolation and padding modes: small enums, parsed once at the public boundary."""

from __future__ import annotations

import enum
from typing import TypeVar

from ._errors import ModeError

_E = TypeVar("_E", bound=enum.Enum)

__all__ = ["Interpolation", "Padding", "parse_mode"]


class Interpolation(str, enum.Enum):
    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"  # cubic convolution, A = -0.75 (OpenCV, torch)


class Padding(str, enum.Enum):
    """OpenCV's border modes. ``constant`` uses ``fill``; ``zeros`` is ``constant`` with 0."""

    ZEROS = "zeros"
    CONSTANT = "constant"
    REPLICATE = "replicate"  # aaa|abcdefgh|hhh
    REFLECT = "reflect"  # fedcba|abcdefgh|hgfedcb
    REFLECT101 = "reflect101"  # gfedcb|abcdefgh|gfedcba
    WRAP = "wrap"  # cdefgh|abcdefgh|abcdefg


# Other libraries' names for the same thing. torch's "reflection" is not here: it means REFLECT with
# align_corners=False and REFLECT101 with align_corners=True, and pixel coordinates have no align_corners.
_ALIASES = {
    Interpolation: {"linear": "bilinear", "cubic": "bicubic"},
    Padding: {
        "border": "replicate",
        "fill": "constant",
        "circular": "wrap",
        "reflect_101": "reflect101",
        "reflect-101": "reflect101",
    },
}
_HINTS = {
    "reflection": " (torch's 'reflection' is 'reflect' for align_corners=False and 'reflect101' for "
    "align_corners=True)",
}


def parse_mode(enum_cls: type[_E], value: object, argument: str) -> _E:
    """Return the member of ``enum_cls`` named by ``value`` (a member or a string, aliases allowed)."""
    if isinstance(value, enum_cls):
        return value
    if isinstance(value, str):
        key = value.strip().lower()
        key = _ALIASES.get(enum_cls, {}).get(key, key)
        try:
            return enum_cls(key)
        except ValueError:
            pass
    valid = ", ".join(repr(m.value) for m in enum_cls)
    hint = _HINTS.get(value, "") if isinstance(value, str) else ""
    raise ModeError(f"{argument}: expected one of {valid}, got {value!r}{hint}")
