"""The family registry: built-ins, register_family, and entry-point plugins from fake distributions."""

import textwrap
import threading
import types

import pytest

import warpkit as wk
from warpkit import _registry


@pytest.fixture
def plugin_env(tmp_path, monkeypatch):
    """Make fake distributions in tmp_path: ``make(dist, {name: "module:Attr"}, {module: source})``."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("WARPKIT_DISABLE_PLUGINS", raising=False)

    def make(dist, entry_points, modules):
        info = tmp_path / f"{dist}-1.2.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2\n")
        lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
        (info / "entry_points.txt").write_text(f"[warpkit.families]\n{lines}\n")
        for module, source in modules.items():
            (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))

    _registry._reset_plugins()
    yield make
    _registry._reset_plugins()


GOOD = """
    import warpkit as wk

    class Shift(wk.Affine):
        name = "shift"
"""


def test_builtins_are_registered_and_read_only():
    registry = wk.families()
    assert {"affine", "projective", "tps"} <= set(registry)
    assert isinstance(registry, types.MappingProxyType)
    with pytest.raises(TypeError):
        registry["x"] = wk.Affine


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(wk.UnknownFamilyError, match=r"name: expected one of .*affine.*got 'nope'") as info:
        wk.get_family("nope")
    assert isinstance(info.value, KeyError)


def test_duplicate_in_process_name_names_both_owners():
    class Other(wk.Affine):
        name = "affine"

    with pytest.raises(
        wk.WarpkitError,
        match=r"'affine' is already registered to built-in warpkit.families.affine.Affine; "
        r"cannot register .*Other",
    ):
        wk.register_family(Other)


def test_replace_true_allows_a_duplicate_and_can_be_undone():
    class Mine(wk.Affine):
        name = "mine_for_test"

    class Yours(wk.Affine):
        name = "mine_for_test"

    try:
        wk.register_family(Mine)
        wk.register_family(Yours, replace=True)
        assert wk.get_family("mine_for_test") is Yours
    finally:
        _registry._records.pop("mine_for_test", None)


def test_register_refuses_non_transforms():
    with pytest.raises(wk.WarpkitError, match="family: expected a subclass of warpkit.Transform"):
        wk.register_family(int)


def test_plugin_is_discovered_lazily(plugin_env):
    plugin_env("shiftdist", {"shift": "lazy_shift_mod:Shift"}, {"lazy_shift_mod": GOOD})
    import sys

    records = {r.name: r for r in _registry.family_records()}
    assert records["shift"].status == "not loaded" and "lazy_shift_mod" not in sys.modules
    family = wk.get_family("shift")
    assert family.__module__ == "lazy_shift_mod" and family.name == "shift"
    record = {r.name: r for r in _registry.family_records()}["shift"]
    assert (record.origin, record.distribution, record.version, record.status) == (
        "plugin",
        "shiftdist",
        "1.2",
        "loaded",
    )
    assert "shift" in wk.families()


def test_failing_plugin_is_contained_warned_once_and_chained(plugin_env):
    plugin_env("brokendist", {"broken": "broken_mod:Family"}, {"broken_mod": "raise RuntimeError('boom at import')\n"})
    with pytest.warns(RuntimeWarning, match="brokendist"):
        registry = wk.families()
    assert "broken" not in registry and "affine" in registry
    for _ in range(2):  # asked again: raises again, warns no more
        with pytest.raises(wk.PluginLoadError, match=r"'broken' from distribution brokendist 1.2") as info:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("error")
                wk.get_family("broken")
        assert isinstance(info.value.__cause__, RuntimeError) and "boom at import" in str(info.value.__cause__)


def test_entry_point_that_is_not_a_transform_fails_to_load(plugin_env):
    plugin_env("notdist", {"notone": "not_a_family_mod:thing"}, {"not_a_family_mod": "thing = 42\n"})
    with pytest.warns(RuntimeWarning), pytest.raises(wk.PluginLoadError, match="not a warpkit.Transform subclass"):
        wk.get_family("notone")


def test_plugin_taking_a_builtin_name_is_refused_naming_both(plugin_env):
    plugin_env("squatter", {"affine": "squat_mod:Shift"}, {"squat_mod": GOOD})
    with pytest.warns(
        RuntimeWarning, match=r"distribution squatter 1.2 refused.*built-in warpkit.families.affine.Affine"
    ):
        records = _registry.family_records()
    assert wk.get_family("affine") is wk.Affine
    assert any(r.status == "refused" and r.distribution == "squatter" for r in records)


def test_register_family_refuses_a_plugins_name(plugin_env):
    plugin_env("shiftdist", {"shift": "claimed_mod:Shift"}, {"claimed_mod": GOOD})
    wk.families()

    class Impostor(wk.Affine):
        name = "shift"

    with pytest.raises(wk.WarpkitError, match="already registered to distribution shiftdist 1.2"):
        wk.register_family(Impostor)


def test_disable_variable_turns_discovery_off(plugin_env, monkeypatch):
    plugin_env("shiftdist", {"shift": "disabled_mod:Shift"}, {"disabled_mod": GOOD})
    monkeypatch.setenv("WARPKIT_DISABLE_PLUGINS", "1")
    _registry._reset_plugins()
    assert "shift" not in wk.families()
    with pytest.raises(wk.UnknownFamilyError):
        wk.get_family("shift")


def test_concurrent_first_use_loads_once(plugin_env):
    plugin_env(
        "countdist",
        {"counted": "counted_mod:Shift"},
        {
            "counted_mod": GOOD
            + "\n    import builtins\n    builtins._warpkit_loads = getattr(builtins, '_warpkit_loads', 0) + 1\n"
        },
    )
    import builtins

    builtins._warpkit_loads = 0
    results = []
    threads = [threading.Thread(target=lambda: results.append(wk.get_family("counted"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 8 and builtins._warpkit_loads == 1
    del builtins._warpkit_loads


def test_first_party_plugins_are_found_without_warpkit_importing_them():
    import subprocess
    import sys

    code = "import sys, warpkit; assert 'warpkit_lens' not in sys.modules; print(sorted(warpkit.families()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for name in ("similarity", "rigid", "attention", "lens", "elastic"):
        assert name in out
