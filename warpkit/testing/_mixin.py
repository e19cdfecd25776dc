"""``FamilyTests``: the conformance kit as a pytest class, one test per check."""

from __future__ import annotations

from typing import ClassVar

from .._base import Transform
from ._kit import run_check

__all__ = ["FamilyTests"]


class FamilyTests:
    """Mix-in for a plugin's tests: set ``family`` (a class or registered name) and every check runs.

    A skipped check (no matrix form, cv2 missing...) becomes a pytest skip carrying the reason; a failed
    one an assertion error carrying the measured error, the tolerance and the detail.
    """

    family: ClassVar[type[Transform] | str | None] = None

    def _check(self, name: str) -> None:
        import pytest  # noqa: PLC0415 - the kit itself must not need pytest

        from .. import get_family  # noqa: PLC0415

        if self.family is None:
            pytest.skip("FamilyTests.family is not set")
        family = get_family(self.family) if isinstance(self.family, str) else self.family
        result = run_check(family, name)
        if result.skipped:
            pytest.skip(result.detail)
        assert result.passed, (
            f"{family.name}: check {name!r} failed: error {result.error:.3g} > tolerance {result.tolerance}"
            f" {result.detail}"
        )

    def test_contract(self):
        self._check("contract")

    def test_identity(self):
        self._check("identity")

    def test_identity_params(self):
        self._check("identity_params")

    def test_stn_direction(self):
        self._check("stn_direction")

    def test_direction(self):
        self._check("direction")

    def test_points_vs_grid(self):
        self._check("points_vs_grid")

    def test_params_grid(self):
        self._check("params_grid")

    def test_inverse(self):
        self._check("inverse")

    def test_composition(self):
        self._check("composition")

    def test_estimation(self):
        self._check("estimation")

    def test_gradients(self):
        self._check("gradients")

    def test_batch(self):
        self._check("batch")

    def test_dtype_device(self):
        self._check("dtype_device")

    def test_empty_batch(self):
        self._check("empty_batch")

    def test_compile(self):
        self._check("compile")

    def test_cv2_matrix(self):
        self._check("cv2_matrix")

    def test_cv2_remap(self):
        self._check("cv2_remap")

    def test_kornia(self):
        self._check("kornia")

    def test_antialias(self):
        self._check("antialias")
