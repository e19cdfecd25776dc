"""Packaging: distribution names, licence, requirement floors, the lazy ``import warpkit`` and the pytest plugin."""

from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.9 / 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = pathlib.Path(__file__).resolve().parents[1]
PLUGINS = sorted((ROOT / "plugins").glob("*/pyproject.toml"))


def _toml(path: pathlib.Path) -> dict:
    return tomllib.loads(path.read_text())


def _run(code: str, cwd=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def test_distribution_names_are_not_the_other_warpkit_on_the_index():
    # "warpkit" on the package index is an unrelated neuroimaging library (1.5.0): never depend on that name.
    project = _toml(ROOT / "pyproject.toml")["project"]
    assert project["name"] == "torch-warpkit"
    for path in PLUGINS:
        plugin = _toml(path)["project"]
        assert plugin["name"].startswith("torch-warpkit-"), path
        names = [dep.split(">")[0].split("=")[0].split("<")[0].strip() for dep in plugin["dependencies"]]
        assert "warpkit" not in names and "torch-warpkit" in names, path


def test_licence_files_exist_and_say_mit():
    for folder in [ROOT, *(p.parent for p in PLUGINS)]:
        text = (folder / "LICENSE").read_text()
        assert text.startswith("MIT License"), folder
        assert _toml(folder / "pyproject.toml")["project"]["license"] == "MIT"


def test_requirement_floors_agree_between_pyproject_readme_and_plugins():
    project = _toml(ROOT / "pyproject.toml")["project"]
    assert "torch>=2.4" in project["dependencies"]
    assert project["requires-python"] == ">=3.9"
    readme = (ROOT / "README.md").read_text()
    assert "torch>=2.4" in readme and "Python 3.9" in readme
    for path in PLUGINS:
        plugin = _toml(path)["project"]
        assert "torch>=2.4" in plugin["dependencies"] and plugin["requires-python"] == ">=3.9", path


def test_readme_install_line_uses_the_new_name():
    import re

    readme = (ROOT / "README.md").read_text()
    assert "pip install torch-warpkit" in readme
    # no install hint anywhere may name the other project (`warpkit[extra]` or `pip install warpkit`)
    sources = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "warpkit").rglob("*.py")]
    for path in sources:
        text = path.read_text()
        assert not re.search(r"(?<![-\w])warpkit\[|pip install warpkit\b", text), path


def test_public_names_agree_between_init_api_and_type_checking_block():
    """``__all__`` in ``__init__.py`` and ``_api.py`` and the names the ``TYPE_CHECKING`` block imports are one list."""
    init = ast.parse((ROOT / "warpkit" / "__init__.py").read_text())
    api = ast.parse((ROOT / "warpkit" / "_api.py").read_text())

    def all_of(tree):
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
                return sorted(ast.literal_eval(node.value))
        raise AssertionError("no __all__")

    checking = next(n for n in init.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    imported = sorted(alias.asname or alias.name for node in checking.body for alias in node.names)
    assert all_of(init) == all_of(api) == imported


def test_import_warpkit_does_not_import_torch_until_a_name_is_used():
    result = _run(
        "import sys, warpkit\n"
        "assert 'torch' not in sys.modules, 'import warpkit imported torch'\n"
        "print(warpkit.__version__)\n"
        "assert callable(warpkit.families) and warpkit.Affine.name == 'affine'\n"
        "assert 'torch' in sys.modules\n"
    )
    assert result.returncode == 0, result.stderr


def test_submodule_imports_see_the_built_in_families_and_families_stays_the_function():
    """``import warpkit`` is lazy, so a submodule used alone must still find the built-ins, and importing the
    ``warpkit.families`` subpackage first must not shadow the ``warpkit.families()`` function."""
    result = _run(
        "import warpkit.families.affine, warpkit.testing._kit as kit, warpkit\n"
        "assert kit.get_family('tps').name == 'tps'\n"
        "assert callable(warpkit.families) and 'projective' in warpkit.families()\n"
        "from warpkit.families import Projective\n"
        "assert Projective is warpkit.Projective\n"
    )
    assert result.returncode == 0, result.stderr


def test_unknown_attribute_is_an_attribute_error():
    import warpkit

    with pytest.raises(AttributeError, match="no attribute 'Afine'"):
        warpkit.Afine  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        warpkit.testing.nope  # noqa: B018


def test_the_pytest_plugin_costs_nothing_in_an_unrelated_project(tmp_path):
    """pytest loads warpkit's ``pytest11`` entry point in every session of this environment; a project that
    never asks for the fixture or the mix-in must not import torch or any of warpkit's real modules."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(
            """
            import sys

            def pytest_sessionfinish(session):
                loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith(("torch.", "warpkit")))
                with open("loaded.txt", "w") as handle:
                    handle.write(" ".join(loaded))
            """
        )
    )
    (tmp_path / "test_unrelated.py").write_text("def test_arithmetic():\n    assert 1 + 1 == 2\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    loaded = (tmp_path / "loaded.txt").read_text().split()
    # The plugin module itself (and the two lazy package shells above it) is all that may load.
    assert "warpkit.testing.pytest_plugin" in loaded, "the entry point did not load: the test proves nothing"
    assert set(loaded) <= {"warpkit", "warpkit.testing", "warpkit.testing.pytest_plugin"}, loaded
    # That the fixture still works through the same entry point: tests/test_testing_kit.py runs it.


def test_readme_layout_names_only_files_that_exist():
    import re

    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout") :]
    paths = [p for p in re.findall(r"`([\w./-]+)`", layout) if "/" in p or p.endswith(".py")]
    assert len(paths) >= 8, paths
    for path in paths:
        candidates = [ROOT / path, ROOT / "warpkit" / path]
        assert any(c.exists() for c in candidates), f"README's Layout names {path!r}, which does not exist"


def test_docs_link_only_to_files_that_exist():
    import re

    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)\)", doc.read_text()):
            if "://" in target:
                continue
            assert (doc.parent / target).exists(), f"{doc.name} links to {target}, which does not exist"


def test_no_internal_tracker_language_or_missing_references():
    import re

    texts = {p: p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]}
    texts.update({p: p.read_text() for p in sorted((ROOT / "warpkit").rglob("*.py"))})
    for path, text in texts.items():
        assert not re.search(r"\b[Ii]ssue \d+\b|\b[Ii]ssue's\b", text), f"{path}: internal tracker language"
        if "CROSS-LIBRARY.md" in text:
            assert (ROOT / "CROSS-LIBRARY.md").exists() or (ROOT / "docs" / "CROSS-LIBRARY.md").exists(), path
