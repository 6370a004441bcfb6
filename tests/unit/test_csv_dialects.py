"""CSV files as people export them: ';'-separated with decimal commas, tabs, pipes — read as such;
and a file read as one column says what went wrong instead of blaming the label."""

from __future__ import annotations

import pytest

from poisonguard.errors import InputError
from poisonguard.io.reading import check_columns, read_table

ROWS = [("1.5", "red", "yes"), ("2.25", "blue", "no"), ("-3.0", "red", "yes"), ("4.75", "green", "no")]


@pytest.mark.parametrize(("sep", "decimal"), [(",", "."), (";", ","), (";", "."), ("\t", "."), ("|", ".")])
def test_separator_and_decimal_mark_are_recognised(tmp_path, sep, decimal):
    lines = [sep.join(("x", "colour", "vote"))]
    lines += [sep.join((x.replace(".", decimal), c, v)) for x, c, v in ROWS]
    path = tmp_path / "data.csv"
    path.write_text("\n".join(lines) + "\n")
    frame = read_table(path, role="incoming").frame
    assert list(frame.columns) == ["x", "colour", "vote"]
    assert frame["x"].tolist() == [1.5, 2.25, -3.0, 4.75]


def test_a_one_column_read_names_the_separator_as_the_likely_cause():
    with pytest.raises(InputError, match="probably ';'-separated") as e:
        check_columns(["x;colour;vote"], ["x", "colour", "vote"], "incoming", "data.csv", "vote", None)
    assert "Pass the right --label" not in str(e.value)
    with pytest.raises(InputError, match="Pass the right --label"):
        check_columns(["x", "colour"], ["x", "colour", "vote"], "incoming", "data.csv", "vote", None)
