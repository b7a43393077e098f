"""Streaming readers: CSV (plain or gzip), Parquet, JSON lines -> Arrow record batches.

A file is never loaded whole: CSV and JSON lines are parsed block by block
(``pyarrow.csv.open_csv`` / ``pyarrow.json.open_json``), Parquet row group by row group
(``ParquetFile.iter_batches``). Only the columns the mapping names are kept. Each batch
comes with the source row number of its first row (1 = the first data row; a CSV header
is not counted) and the fraction of the file consumed, for the progress bar.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from pipeline.ingest.errors import SourceError
from pipeline.ingest.mapping import SourceMapping

BLOCK_BYTES = 4 << 20
PARQUET_BATCH_ROWS = 65_536
_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet",
             ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


@dataclass(frozen=True)
class Batch:
    data: pa.RecordBatch
    first_row: int  # source row number of data[0] (1-based)
    done: float  # fraction of the file consumed so far (0..1)


def detect_format(path: Path, declared: str = "auto") -> tuple[str, bool]:
    """(format, gzipped) from the mapping's ``format`` or the file name."""
    name = path.name.lower()
    gz = name.endswith(".gz")
    if gz:
        name = name[:-3]
    if declared != "auto":
        return declared, gz
    for suffix, fmt in _SUFFIXES.items():
        if name.endswith(suffix):
            return fmt, gz
    raise SourceError(f"{path}: cannot tell the format from the name; use .csv[.gz], .parquet or .jsonl[.gz], "
                      "or set `format:` in the mapping")


def file_key(path: Path, chunk: int = 1 << 20) -> str:
    """Content hash (sha256, 16 hex chars): the file's identity for event ids and the ledger."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()[:16]


def iter_batches(path: Path, mapping: SourceMapping) -> Iterator[Batch]:
    """Stream the mapped columns of ``path`` in record batches."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    fmt, gz = detect_format(path, mapping.format)
    try:
        if fmt == "parquet":
            yield from _parquet(path, mapping)
        else:
            yield from _text(path, mapping, fmt, gz)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, EOFError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise SourceError(f"{path}: cannot read as {fmt}{' (gzip)' if gz else ''}: {str(exc).splitlines()[0]}") from None


def _check_columns(path: Path, present: list[str], mapping: SourceMapping) -> None:
    have = set(present)
    for col, key in mapping.column_keys().items():
        if col not in have:
            shown = ", ".join(present[:20]) + (" ..." if len(present) > 20 else "")
            raise SourceError(f"{path}: column {col!r} (mapping key {key}) is not in the file; its columns: {shown}")


def _string_types(mapping: SourceMapping) -> dict[str, pa.DataType]:
    """Columns read as text whatever they look like: ids, type values, formatted times."""
    cols = {mapping.user_id: pa.string(), mapping.type_column: pa.string()}
    if mapping.ts_format is not None:
        cols[mapping.ts_column] = pa.string()
    return cols


def _open_stream(path: Path, gz: bool) -> tuple[pa.NativeFile, pa.NativeFile]:
    raw = pa.OSFile(str(path), "rb")
    return raw, (pa.CompressedInputStream(raw, "gzip") if gz else raw)


def open_csv(stream: pa.NativeFile, mapping: SourceMapping, columns: list[str] | None = None) -> pacsv.CSVStreamingReader:
    """The streaming CSV reader the importer uses (also the benchmark's parse floor)."""
    types = _string_types(mapping)
    return pacsv.open_csv(
        stream,
        read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES, use_threads=False),
        parse_options=pacsv.ParseOptions(delimiter=mapping.csv_delimiter),
        convert_options=pacsv.ConvertOptions(
            column_types=types if columns is None else {c: t for c, t in types.items() if c in columns},
            strings_can_be_null=True, include_columns=columns),
    )


def _text(path: Path, mapping: SourceMapping, fmt: str, gz: bool) -> Iterator[Batch]:
    size = max(path.stat().st_size, 1)
    raw, stream = _open_stream(path, gz)
    try:
        if fmt == "csv":
            reader = open_csv(stream, mapping)
            _check_columns(path, reader.schema.names, mapping)
            stream.close()
            raw.close()
            raw, stream = _open_stream(path, gz)  # again, now converting only the mapped columns
            reader = open_csv(stream, mapping, mapping.columns())
        else:
            reader = pajson.open_json(stream, read_options=pajson.ReadOptions(block_size=BLOCK_BYTES,
                                                                              use_threads=False),
                                      parse_options=pajson.ParseOptions(newlines_in_values=False))
            _check_columns(path, reader.schema.names, mapping)
        cols = mapping.columns()
        row = 1
        for rb in reader:
            rb = rb.select(cols)
            yield Batch(rb, row, min(raw.tell() / size, 1.0))
            row += rb.num_rows
    finally:
        stream.close()
        raw.close()


def _parquet(path: Path, mapping: SourceMapping) -> Iterator[Batch]:
    pf = pq.ParquetFile(path)
    _check_columns(path, pf.schema_arrow.names, mapping)
    total = max(pf.metadata.num_rows, 1)
    row = 1
    for rb in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=mapping.columns()):
        yield Batch(rb, row, min((row - 1 + rb.num_rows) / total, 1.0))
        row += rb.num_rows
