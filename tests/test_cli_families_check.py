"""`warpkit families` and `warpkit check`: tables, JSON, exit status."""

import json

import warpkit as wk
from warpkit import _registry
from warpkit.cli import main


def test_families_lists_builtins_and_first_party_plugins(capsys):
    assert main(["families"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["name", "origin", "capabilities", "status"]
    assert "affine      built-in" in out or "affine" in out.split()
    for line_start, origin in [
        ("similarity", "torch-warpkit-similarity"),
        ("lens", "torch-warpkit-lens"),
        ("elastic", "torch-warpkit-elastic"),
    ]:
        line = next(row for row in out.splitlines() if row.startswith(line_start + " "))
        assert origin in line and line.rstrip().endswith("loaded")


def test_families_json(capsys):
    assert main(["families", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["affine"]["origin"] == "built-in" and rows["affine"]["capabilities"] == "matrix,params=6,estimate"
    assert rows["lens"]["origin"].startswith("torch-warpkit-lens ")


def test_families_shows_a_broken_plugin_and_exits_1(tmp_path, monkeypatch, capsys):
    info = tmp_path / "badplug-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: badplug\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text("[warpkit.families]\nbad = bad_plugin_mod:Family\n")
    (tmp_path / "bad_plugin_mod.py").write_text("import no_such_module_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _registry._reset_plugins()
    try:
        assert main(["families"]) == 1
        out = capsys.readouterr().out
        line = next(row for row in out.splitlines() if row.startswith("bad "))
        assert "badplug 0.3" in line and "failed: plugin 'bad'" in line and "ModuleNotFoundError" in line
        assert main(["check", "bad", "--checks", "identity"]) == 1
        assert "bad     load   FAIL" in capsys.readouterr().out
        assert main(["check", "affine", "--checks", "identity"]) == 0  # other families unaffected
    finally:
        _registry._reset_plugins()


def test_check_passes_and_prints_every_check(capsys):
    assert main(["check", "affine", "lens", "--checks", "identity,inverse,cv2_matrix"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["family", "check", "status", "error", "tolerance", "detail"]
    assert "lens    cv2_matrix  skip" in out and "2 families, 0 failed checks" in out


def test_check_fails_with_a_table_on_a_broken_family(capsys):
    class Broken(wk.Affine):
        name = "broken_for_cli"

        def inverse(self):
            return self

    wk.register_family(Broken)
    try:
        assert main(["check", "broken_for_cli", "--checks", "identity,inverse"]) == 1
        out = capsys.readouterr().out
        assert "broken_for_cli  inverse   FAIL" in out and "1 failed checks (broken_for_cli)" in out
        assert main(["check", "broken_for_cli", "--checks", "inverse", "--json"]) == 1
        data = json.loads(capsys.readouterr().out)
        assert data[0]["passed"] is False and data[0]["checks"][0]["status"] == "FAIL"
    finally:
        _registry._records.pop("broken_for_cli", None)


def test_check_refuses_unknown_check_names(capsys):
    assert main(["check", "affine", "--checks", "nope"]) == 2
    assert "--checks: expected names from" in capsys.readouterr().err
