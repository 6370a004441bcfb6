"""Crash-safe writes: a file or a directory goes to a temporary name, is fsynced and renamed, so a
crash at any moment leaves the old version or the new one, never a part."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` so that a crash leaves the old file or the new one, never a part."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write_parquet(path: Path, frame: pd.DataFrame) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    frame.to_parquet(tmp, index=False)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


# pyarrow's default (and largest) row group: what ``to_parquet`` writes a frame in.
ROW_GROUP_ROWS = 1024 * 1024


def atomic_write_parquet_parts(path: Path, frames: Iterable[pd.DataFrame]) -> None:
    """Write ``frames`` one after the other as one Parquet file, holding at most a row group and
    a frame at a time. Rows are written in row groups of ``ROW_GROUP_ROWS`` whatever the frames'
    sizes, so the file's bytes are those ``to_parquet`` writes for the frames concatenated (however
    a batch was split into files, its clean.parquet is the same). Later frames are cast to the
    first one's column types; a frame that cannot be cast is an error naming the columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tables = (pa.Table.from_pandas(f, preserve_index=False) for f in frames)
    first = next(tables, None)
    if first is None:
        raise ValueError(f"no rows to write to {path}: not even an empty frame")
    try:
        with pq.ParquetWriter(tmp, first.schema) as writer:
            pending, rows, written = [first], first.num_rows, False
            for table in tables:
                pending.append(_cast_like(table, first.schema))
                rows += table.num_rows
                if rows >= ROW_GROUP_ROWS:
                    whole = pa.concat_tables(pending).combine_chunks()
                    cut = rows - rows % ROW_GROUP_ROWS
                    for start in range(0, cut, ROW_GROUP_ROWS):
                        writer.write_table(whole.slice(start, ROW_GROUP_ROWS))
                    pending, rows, written = [whole.slice(cut)], rows - cut, True
            if rows or not written:  # the rest (to_parquet writes an empty frame as one empty row group)
                writer.write_table(pa.concat_tables(pending).combine_chunks())
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _cast_like(table: Any, schema: Any) -> Any:
    import pyarrow as pa

    if table.schema.equals(schema):
        return table
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        differ = [f.name for f, g in zip(schema, table.schema, strict=True) if f.type != g.type]
        raise ValueError(f"the batch's files give columns {differ} different types ({e}); write every file of a "
                         "batch with the same column types") from None


def fsync_tree(path: Path) -> None:
    for f in sorted(path.rglob("*")):
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    fsync_dir(path)


def replace_dir(tmp: Path, final: Path) -> None:
    """Move a fully written ``tmp`` directory to ``final`` (replacing an uncommitted leftover)."""
    fsync_tree(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    fsync_dir(final.parent)
