"""The conformance kit: the checks every transform family must pass, for plugin authors and the CLI.

``check_family(FamilyOrName)`` runs every check and returns a :class:`Report`; :class:`FamilyTests` is a
pytest mix-in where each check is its own test::

    from warpkit.testing import FamilyTests

    class TestMyFamily(FamilyTests):
        family = MyFamily          # or its registered name

cv2 and kornia are optional: their parity checks are skipped, with the reason, when they are missing.
"""

from ._kit import CHECKS, CheckResult, Report, check_family, example, example_params, format_table
from ._mixin import FamilyTests

__all__ = ["CHECKS", "CheckResult", "FamilyTests", "Report", "check_family", "example", "example_params", "format_table"]
