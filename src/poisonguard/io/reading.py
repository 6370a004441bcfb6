"""Reading inputs, and refusing the ones that cannot be used, with one clear message each.

A PATH is a CSV file, a Parquet file, or a directory of Parquet files (read in sorted name
order). Rows keep the order they were read in: row positions in the verdict refer to it. A CSV
file's separator and decimal mark are detected unless a :class:`CsvFormat` gives them.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from poisonguard.errors import InputError, UsageError

CSV_SUFFIXES = {".csv", ".tsv", ".txt"}
PARQUET_SUFFIXES = {".parquet", ".pq"}


_SEPARATORS = ",;\t|"
_SEP_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
DECIMALS = (".", ",")


@dataclass(frozen=True)
class CsvFormat:
    """How CSV inputs are split: ``sep``, the field separator (one character), and ``decimal``,
    the decimal mark (``.`` or ``,``). ``None`` (the default) detects it from the file."""

    sep: str | None = None
    decimal: str | None = None

    def __post_init__(self) -> None:
        if self.sep is not None and (len(self.sep) != 1 or self.sep in "\r\n\"" or self.sep.isalnum()):
            raise UsageError(f"--csv-sep {self.sep!r} is not a field separator. Give one character such as "
                             "',' ';' '|' or 'tab'.")
        if self.decimal is not None and self.decimal not in DECIMALS:
            raise UsageError(f"--csv-decimal {self.decimal!r} is not a decimal mark. Give '.' or ','.")
        if self.sep is not None and self.sep == self.decimal:
            raise UsageError(f"--csv-sep and --csv-decimal are both {self.sep!r}; a number's decimal mark cannot "
                             "also separate fields.")

    @classmethod
    def from_options(cls, sep: str | None, decimal: str | None) -> CsvFormat:
        """From the command line's ``--csv-sep`` (also ``tab``, ``\\t``, ``comma``, ``semicolon``,
        ``pipe``) and ``--csv-decimal``."""
        return cls(_SEP_NAMES.get(sep.lower(), sep) if sep is not None else None, decimal)

    @classmethod
    def from_dict(cls, d: dict[str, str] | None) -> CsvFormat:
        return cls(**(d or {}))

    def to_dict(self) -> dict[str, str]:
        """The fields given (empty when everything is detected)."""
        return {k: v for k, v in (("sep", self.sep), ("decimal", self.decimal)) if v is not None}


DETECT = CsvFormat()


@dataclass(frozen=True)
class Table:
    """A read input: the frame and the files it came from (for provenance)."""

    frame: pd.DataFrame
    files: tuple[Path, ...]
    role: str


def input_files(path: Path, role: str) -> tuple[Path, ...]:
    """The files a PATH stands for, or an :class:`InputError` saying why there are none."""
    if not path.exists():
        raise InputError(f"{role} {path} does not exist. Check the path passed as --{role}.")
    if path.is_dir():
        files = tuple(sorted(p for p in path.iterdir() if p.suffix.lower() in PARQUET_SUFFIXES and p.is_file()))
        if not files:
            raise InputError(f"{role} directory {path} holds no .parquet files. Point --{role} at a "
                             "CSV or Parquet file, or a directory of Parquet files.")
        return files
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES | PARQUET_SUFFIXES:
        raise InputError(f"{role} {path} has an unsupported type '{suffix or '(none)'}'. "
                         "Use a .csv or .parquet file, or a directory of .parquet files.")
    return (path,)


def read_table(path: str | Path, *, role: str, csv_format: CsvFormat = DETECT) -> Table:
    """Read one input. ``role`` (reference, incoming, holdout) names it in error messages;
    ``csv_format`` says how to split a CSV file (default: detected)."""
    path = Path(path)
    files = input_files(path, role)
    frames = [_read_file(f, role, csv_format) for f in files]
    frame = frames[0] if len(frames) == 1 else _concat(frames, files, role)
    if len(frame) == 0:
        raise InputError(f"{role} {path} has a header but no rows. A batch needs at least one row.")
    return Table(frame.reset_index(drop=True), files, role)


def _concat(frames: list[pd.DataFrame], files: tuple[Path, ...], role: str) -> pd.DataFrame:
    first = list(frames[0].columns)
    for f, p in zip(frames[1:], files[1:], strict=True):
        if list(f.columns) != first:
            raise InputError(f"{role} file {p} has columns {list(f.columns)}, but {files[0]} has {first}. "
                             "Every file of a directory input must have the same columns.")
    return pd.concat(frames, ignore_index=True)


def _read_file(path: Path, role: str, csv_format: CsvFormat) -> pd.DataFrame:
    if path.stat().st_size == 0:
        raise InputError(f"{role} {path} is empty (0 bytes). Re-export the file.")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return _read_parquet(path, role)
    return _read_csv(path, role, csv_format)


def _read_parquet(path: Path, role: str) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"{role} {path} is not a readable Parquet file ({_first_line(e)}). "
                         "The file is corrupt or truncated; re-export it.") from None
    _refuse_duplicate_columns(table.schema.names, path, role)
    _refuse_nested_columns(table.schema, path, role)
    return table.to_pandas()


def _read_csv(path: Path, role: str, csv_format: CsvFormat = DETECT) -> pd.DataFrame:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise InputError(f"{role} {path} is not UTF-8 (invalid byte 0x{raw[e.start]:02x} on line {line}). "
                         "Re-save it as UTF-8.") from None
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise InputError(f"{role} {path} has no header and no rows. Re-export the file.")
    sep, decimal = _dialect(lines, path, csv_format)
    header = next(csv.reader([lines[0]], delimiter=sep))
    if csv_format.sep is not None and len(header) == 1:
        found = [s for s in _SEPARATORS if s in header[0]]
        likely = f" It looks {_shown(found[0])}-separated: pass --csv-sep {_shown(found[0])}, or leave " \
                 "--csv-sep out to detect it." if found else ""
        raise InputError(f"{role} {path} splits into one column with --csv-sep {_shown(sep)} (header "
                         f"{lines[0][:80]!r}); a gate input needs a label and features.{likely}")
    _refuse_duplicate_columns(header, path, role)
    if not text.endswith(("\n", "\r")) and len(lines) > 1:
        last = next(csv.reader([lines[-1]], delimiter=sep), [])
        if len(last) != len(header):
            raise InputError(f"{role} {path} looks truncated: its last line ({len(lines)}) has {len(last)} "
                             f"field(s) where the header has {len(header)}, and no line end. Re-export the file.")
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, decimal=decimal, on_bad_lines="error", low_memory=False)
    except pd.errors.ParserError as e:
        raise InputError(f"{role} {path} is not valid CSV ({_first_line(e)}). Fix or re-export the file.") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{role} {path} has no header and no rows. Re-export the file.") from None
    return frame


_DECIMAL_COMMA = re.compile(r"^-?\d+,\d+$")


def _shown(sep: str) -> str:
    return "tab" if sep == "\t" else f"'{sep}'"


def _dialect(lines: list[str], path: Path, given: CsvFormat = DETECT) -> tuple[str, str]:
    """The field separator and decimal mark of a CSV file: the ones ``given``, else from its first
    lines: ``,`` ``;`` tab or ``|`` (a ``.tsv`` file is tab-separated), and a decimal comma when
    fields separated by something else look like ``1,5``."""
    if given.sep is not None:
        sep = given.sep
    elif path.suffix.lower() == ".tsv":
        sep = "\t"
    else:
        try:
            sep = csv.Sniffer().sniff("\n".join(lines[:50]), delimiters=_SEPARATORS).delimiter
        except csv.Error:
            sep = ","
    if given.decimal is not None:
        return sep, given.decimal
    if sep == ",":
        return sep, "."
    fields = [f.strip().strip('"') for row in csv.reader(lines[1:50], delimiter=sep) for f in row]
    return sep, "," if any(_DECIMAL_COMMA.match(f) for f in fields) else "."


def _refuse_duplicate_columns(names: list[str], path: Path, role: str) -> None:
    seen: set[str] = set()
    dups = sorted({n for n in names if n in seen or seen.add(n)})  # type: ignore[func-returns-value]
    if dups:
        raise InputError(f"{role} {path} has duplicate column name(s) {dups}. Column names must be unique.")


def _refuse_nested_columns(schema, path: Path, role: str) -> None:
    """Lists, structs and maps are not features: refuse them by name instead of failing later."""
    import pyarrow.types as pat

    nested = [f"{f.name} ({f.type})" for f in schema
              if pat.is_nested(f.type) or (pat.is_dictionary(f.type) and pat.is_nested(f.type.value_type))]
    if nested:
        raise InputError(f"{role} {path} has nested column(s) {nested}: lists, structs and maps cannot be "
                         "features or labels. Flatten them into one column per value, or drop them.")


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def check_columns(columns: list[str], reference_columns: list[str], role: str, where: Path | str,
                  label: str, id_column: str | None) -> None:
    """Refuse a batch or holdout whose columns are not exactly the reference's."""
    if label not in columns:
        raise InputError(f"label column '{label}' is not in the {role} data {where} (columns: "
                         f"{_preview(pd.Index(columns))}). {_fix_for_missing_label(columns)}")
    if id_column is not None and id_column not in columns:
        raise InputError(f"id column '{id_column}' is not in the {role} data {where}. Pass the right --id-column.")
    missing = [c for c in reference_columns if c not in columns]
    extra = [c for c in columns if c not in reference_columns]
    if missing or extra:
        raise InputError(f"{role} {where} columns do not match the reference: missing {missing}, extra {extra}. "
                         "A batch must have exactly the reference's columns.")


def _fix_for_missing_label(columns: list[str]) -> str:
    """What to do about a label column that is not there: a file read as one column whose name
    holds a separator was most likely split on the wrong one."""
    if len(columns) == 1:
        found = [s for s in _SEPARATORS if s in str(columns[0])]
        if found:
            shown = _shown(found[0])
            return (f"The file was read as one column whose name contains {shown}: it is probably "
                    f"{shown}-separated and was not recognised as such. Pass --csv-sep {shown} (or re-export "
                    "it with ',' as the separator).")
        return (f"The file was read as one column ('{str(columns[0])[:40]}'): if its fields are separated by "
                "another character, pass it as --csv-sep; otherwise pass the right --label.")
    return "Pass the right --label."


def check_trusted(reference: pd.DataFrame, label: str, id_column: str | None) -> None:
    """Refuse a reference the gate cannot learn from."""
    if label not in reference.columns:
        raise InputError(f"label column '{label}' is not in the reference data (columns: "
                         f"{_preview(reference.columns)}). {_fix_for_missing_label(list(reference.columns))}")
    if id_column is not None and id_column not in reference.columns:
        raise InputError(f"id column '{id_column}' is not in the reference data. Pass the right --id-column.")
    features = [c for c in reference.columns if c not in (label, id_column)]
    if not features:
        raise InputError("the reference has no feature columns besides the label. Nothing to check.")
    labels = reference[label].dropna()
    if labels.nunique() < 2:
        raise InputError(f"the reference's label '{label}' has {labels.nunique()} class(es); "
                         "the gate needs at least two classes in the trusted data.")
    if reference[label].isna().any():
        raise InputError(f"the reference's label '{label}' is missing on {int(reference[label].isna().sum())} "
                         "row(s). Trusted data must be fully labelled.")
    for c in features:
        col = reference[c]
        if col.isna().all():
            raise InputError(f"reference column '{c}' has no values (all missing). Drop the column "
                             "from every input or fix the reference.")
        if pd.api.types.is_numeric_dtype(col) and np.isinf(col.to_numpy(dtype=np.float64, na_value=np.nan)).any():
            raise InputError(f"reference column '{c}' holds infinite values. Trusted data must be finite; "
                             "clean the reference.")


def check_usable(reference: pd.DataFrame, incoming: pd.DataFrame, holdout: pd.DataFrame | None,
                 label: str, id_column: str | None) -> pd.DataFrame:
    """Refuse inputs the gate cannot evaluate; return ``incoming`` with the reference's column order.

    Bad *data* in the batch (nulls, out-of-range values, unknown labels) is not refused here:
    the checks report it. What is refused is what no check could judge.
    """
    check_trusted(reference, label, id_column)
    for role, frame in (("incoming", incoming), ("holdout", holdout)):
        if frame is not None:
            check_columns(list(frame.columns), list(reference.columns), role, "", label, id_column)
    return incoming[list(reference.columns)]


@dataclass(frozen=True)
class Part:
    """One file of the incoming batch: where it is, its rows, columns and SHA-256."""

    path: Path
    rows: int
    columns: tuple[str, ...]
    sha256: str


def parquet_part(path: Path, role: str) -> Part:
    """Describe a Parquet file from its footer alone (its pages are read, and checked, when scored)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from poisonguard.kernel.hashing import hash_file

    if path.stat().st_size == 0:
        raise InputError(f"{role} {path} is empty (0 bytes). Re-export the file.")
    try:
        meta = pq.ParquetFile(path).metadata
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"{role} {path} is not a readable Parquet file ({_first_line(e)}). "
                         "The file is corrupt or truncated; re-export it.") from None
    schema = meta.schema.to_arrow_schema()
    names = list(schema.names)
    _refuse_duplicate_columns(names, path, role)
    _refuse_nested_columns(schema, path, role)
    return Part(path, int(meta.num_rows), tuple(names), hash_file(path))


def read_part(part: Part, role: str, keep_as: Path | None = None) -> pd.DataFrame:
    """Read one file of the batch, refusing it when its bytes are not the ones first hashed.

    The file is memory-mapped once: the hash and the Parquet reader see the same bytes (no
    window for a swap between them) and neither copies them. ``keep_as``: also write the rows
    read as an Arrow IPC file there, which :func:`read_kept` reads back column by column without
    decoding or hashing the Parquet file again."""
    import hashlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    with pa.memory_map(str(part.path), "r") as source:
        data = source.read_buffer()
        if hashlib.sha256(memoryview(data)).hexdigest() != part.sha256:
            raise InputError(f"{role} file {part.path} changed after the gate started (sha256 differs). "
                             "Re-run the gate on data that is no longer being written.")
        try:
            table = pq.read_table(pa.BufferReader(data))
        except (pa.ArrowException, OSError) as e:
            raise InputError(f"{role} {part.path} is not a readable Parquet file ({_first_line(e)}). "
                             "The file is corrupt or truncated; re-export it.") from None
    if keep_as is not None:
        _write_ipc(table, keep_as)
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    if len(frame) != part.rows:
        raise InputError(f"{role} {part.path} holds {len(frame)} rows but its footer says {part.rows}. "
                         "The file is corrupt; re-export it.")
    return frame


def _write_ipc(table: Any, path: Path) -> None:
    import pyarrow as pa

    tmp = path.with_name(f".{path.name}.tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    tmp.replace(path)


def read_kept(path: Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """``columns`` (None: all) of a part kept by :func:`read_part`: the file is memory-mapped and
    only those columns are converted, so reading one column of a 1M-row part costs milliseconds."""
    import pyarrow as pa

    with pa.memory_map(str(path), "r") as source:
        table = pa.ipc.open_file(source).read_all()
        if columns is not None:
            table = table.select(list(columns))
        return table.to_pandas()


def _preview(columns: pd.Index, n: int = 8) -> str:
    names = [str(c) for c in columns]
    return ", ".join(names[:n]) + (f", … ({len(names)} in all)" if len(names) > n else "")
