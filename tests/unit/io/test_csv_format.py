"""``--csv-sep`` / ``--csv-decimal``: what detection cannot know, said explicitly — and a separator
given wrong is refused naming the likely right one, not blamed on the label later."""

from __future__ import annotations

import pytest

from poisonguard.errors import InputError, UsageError
from poisonguard.io.reading import CsvFormat, read_table


def _write(path, sep: str, rows: list[tuple[str, ...]], header=("x", "colour", "vote")):
    path.write_text("\n".join(sep.join(r) for r in [header, *rows]) + "\n")
    return path


def test_a_separator_detection_does_not_know_is_read_when_given(tmp_path):
    path = _write(tmp_path / "export.csv", "^", [("1.5", "red", "yes"), ("2.5", "blue", "no")])
    assert list(read_table(path, role="incoming").frame.columns) == ["x^colour^vote"]  # detection: one column
    frame = read_table(path, role="incoming", csv_format=CsvFormat.from_options("^", None)).frame
    assert list(frame.columns) == ["x", "colour", "vote"] and frame["x"].tolist() == [1.5, 2.5]


def test_a_decimal_comma_first_seen_after_the_sampled_lines_is_read_when_given(tmp_path):
    rows = [(str(i), "red", "yes") for i in range(60)] + [("2,25", "blue", "no")]
    path = _write(tmp_path / "late.csv", ";", rows)
    assert read_table(path, role="incoming").frame["x"].dtype == object  # detected '.', so '2,25' is text
    frame = read_table(path, role="incoming", csv_format=CsvFormat(";", ",")).frame
    assert frame["x"].dtype == float and frame["x"].iloc[-1] == 2.25


def test_a_given_separator_that_yields_one_column_is_refused_naming_the_likely_one(tmp_path):
    path = _write(tmp_path / "semi.csv", ";", [("1.5", "red", "yes")])
    with pytest.raises(InputError, match="one column with --csv-sep ','") as e:
        read_table(path, role="reference", csv_format=CsvFormat.from_options("comma", None))
    assert "pass --csv-sep ';'" in str(e.value) and "reference" in str(e.value)
    tabbed = _write(tmp_path / "tabbed.csv", "\t", [("1.5", "red", "yes")])
    with pytest.raises(InputError, match="looks tab-separated: pass --csv-sep tab"):
        read_table(tabbed, role="incoming", csv_format=CsvFormat("|"))


def test_a_given_separator_wins_over_a_tsv_suffix(tmp_path):
    path = _write(tmp_path / "data.tsv", ";", [("1.5", "red", "yes")])
    assert list(read_table(path, role="incoming", csv_format=CsvFormat(";")).frame.columns) == ["x", "colour", "vote"]


@pytest.mark.parametrize(("given", "sep"), [("tab", "\t"), ("\\t", "\t"), ("\t", "\t"), ("semicolon", ";"),
                                            ("|", "|"), ("Pipe", "|")])
def test_separators_by_name(given, sep):
    assert CsvFormat.from_options(given, None).sep == sep


@pytest.mark.parametrize(("sep", "decimal", "message"), [("ab", None, "not a field separator"),
                                                          ("x", None, "not a field separator"),
                                                          ('"', None, "not a field separator"),
                                                          (None, ";", "not a decimal mark"),
                                                          (",", ",", "cannot also separate fields")])
def test_unusable_options_are_usage_errors(sep, decimal, message):
    with pytest.raises(UsageError, match=message):
        CsvFormat.from_options(sep, decimal)


def test_only_given_fields_are_recorded():
    assert CsvFormat().to_dict() == {} and CsvFormat(";", ",").to_dict() == {"sep": ";", "decimal": ","}
    assert CsvFormat.from_dict({"sep": ";"}) == CsvFormat(";") and CsvFormat.from_dict(None) == CsvFormat()
