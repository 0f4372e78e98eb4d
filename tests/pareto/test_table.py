from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from pareto import parse_objectives, read_results


def test_parse_objectives():
    objs = parse_objectives("helpfulness:max, harmlessness:MAX,verbosity:min")
    assert [(o.name, o.sense) for o in objs] == [
        ("helpfulness", "max"),
        ("harmlessness", "max"),
        ("verbosity", "min"),
    ]
    assert parse_objectives("a:b:max")[0].name == "a:b"


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("helpfulness", "NAME:max or NAME:min"),
        ("helpfulness:maximum", "unknown sense 'maximum'"),
        ("a:max,a:min", "given twice"),
        ("", "no objectives"),
    ],
)
def test_parse_objectives_errors(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_objectives(spec)


def test_csv_jsonl_and_gzip_read_the_same(tmp_path):
    rows = [{"a": 1.5, "b": 2, "name": "x"}, {"a": -1, "b": 0.25, "name": "y"}]
    (tmp_path / "r.csv").write_text("a,b,name\n1.5,2,x\n-1,0.25,y\n")
    (tmp_path / "r.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    with gzip.open(tmp_path / "r.jsonl.gz", "wt") as f:
        f.write("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "r.tsv").write_text("a\tb\tname\n1.5\t2\tx\n-1\t0.25\ty\n")
    objs = parse_objectives("a:max,b:min")
    for name in ("r.csv", "r.jsonl", "r.jsonl.gz", "r.tsv"):
        table = read_results(tmp_path / name)
        assert table.columns == ("a", "b", "name")
        np.testing.assert_allclose(table.objective_matrix(objs), [[1.5, 2], [-1, 0.25]])


def test_errors_name_file_row_and_column(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("a,b\n1,2\n3,nan\n4,\n")
    table = read_results(path)
    with pytest.raises(ValueError, match=r"no column 'c'; columns are: a, b"):
        table.numeric_column("c")
    with pytest.raises(ValueError, match=r"row 1, column 'b' is 'nan'"):
        table.numeric_column("b")
    path.write_text("a\n1\nabc\n")
    with pytest.raises(ValueError, match=r"row 1, column 'a': 'abc' is not a number"):
        read_results(path).numeric_column("a")
    bad = tmp_path / "r.jsonl"
    bad.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(ValueError, match="line 2 must be a JSON object"):
        read_results(bad)
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_results(tmp_path / "missing.csv")
