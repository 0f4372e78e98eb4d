from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from merging.cli import main
from pareto import hypervolume, knee_point, pareto_mask, read_results

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "studies" / "examples" / "soups_sweep.csv"
OBJECTIVES = "helpfulness:max,harmlessness:max,verbosity:min"
SENSES = ["max", "max", "min"]


def run_cli(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_json_output_matches_the_core(capsys):
    status, out, err = run_cli(
        capsys, "analyze", str(EXAMPLE), "--objectives", OBJECTIVES, "--json"
    )
    assert status == 0
    assert err == ""
    result = json.loads(out)
    assert {"front", "hypervolume", "reference_point", "knee"} <= result.keys()
    points = np.array(
        [
            [float(r[c]) for c in ("helpfulness", "harmlessness", "verbosity")]
            for r in read_results(EXAMPLE).rows
        ]
    )
    assert result["front"] == np.flatnonzero(pareto_mask(points, SENSES)).tolist()
    assert result["knee"] == knee_point(points, SENSES)
    assert result["hypervolume"] == pytest.approx(
        hypervolume(points, result["reference_point"], SENSES)
    )
    assert 0 < len(result["front"]) < len(points)  # the example has dominated rows


def test_given_reference_point_is_used(capsys, tmp_path):
    # maximised h = -1, -1.5, -3 with minimised v: the minimised points (1, 3), (1.5, 1.5),
    # (3, 1) under reference (4, 4) dominate 0.5 + 3.75 + 3 = 7.25; (1.5, 1.5) is the knee
    path = tmp_path / "r.jsonl"
    lines = ['{"h": -1, "v": 3}', '{"h": -1.5, "v": 1.5}', '{"h": -3, "v": 1}', '{"h": -5, "v": 9}']
    path.write_text("\n".join(lines) + "\n")
    status, out, _ = run_cli(
        capsys, "analyze", str(path), "--objectives", "h:max,v:min", "--ref", "-4,4", "--json"
    )
    result = json.loads(out)
    assert status == 0
    assert result["front"] == [0, 1, 2]
    assert result["reference_point"] == [-4.0, 4.0]
    assert result["reference_given"] is True
    assert result["hypervolume"] == pytest.approx(7.25)
    assert result["knee"] == 1


def test_text_report(capsys):
    status, out, _ = run_cli(capsys, "analyze", str(EXAMPLE), "--objectives", OBJECTIVES)
    assert status == 0
    assert "Pareto-optimal" in out
    assert "hypervolume:" in out
    assert "reference point: helpfulness=" in out
    assert "knee: row" in out


@pytest.mark.parametrize(
    ("args", "content", "message"),
    [
        (["--objectives", "h:max,x:min"], "h,v\n1,2\n", "no column 'x'; columns are: h, v"),
        (["--objectives", "h:max,v:min"], "h,v\n1,nan\n", "row 0, column 'v' is 'nan'"),
        (["--objectives", "h:best,v:min"], "h,v\n1,2\n", "unknown sense 'best'"),
        (
            ["--objectives", "h:max,v:min", "--ref", "1,2,3"],
            "h,v\n1,2\n",
            "--ref has 3 value(s) for 2 objectives",
        ),
        (["--objectives", "h:max,v:min", "--ref", "1,abc"], "h,v\n1,2\n", "is not a number"),
        (["--objectives", "h:max"], "h,v\n1,2\n", "at least two objectives"),
        (["--objectives", "h:max,v:min"], "h,v\n", "no data rows"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, tmp_path, args, content, message):
    path = tmp_path / "r.csv"
    path.write_text(content)
    status, out, err = run_cli(capsys, "analyze", str(path), *args)
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("paretomerge analyze: error: ")
    assert message in err


def test_missing_file_exits_2(capsys, tmp_path):
    status, _, err = run_cli(
        capsys, "analyze", str(tmp_path / "nope.csv"), "--objectives", "a:max,b:min"
    )
    assert status == 2
    assert "no such file" in err


def test_console_script_is_installed_and_works():
    exe = shutil.which("paretomerge") or str(Path(sys.executable).parent / "paretomerge")
    proc = subprocess.run(
        [exe, "analyze", str(EXAMPLE), "--objectives", OBJECTIVES, "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["knee"] >= 0
    proc = subprocess.run([exe, "analyze", "--help"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0
    assert "examples:" in proc.stdout
