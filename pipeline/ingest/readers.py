"""Streaming readers: CSV (plain or gzip), Parquet, JSON lines -> Arrow record batches.

A file is never loaded whole: CSV is parsed block by block (``pyarrow.csv.open_csv``),
JSON lines line by line (msgspec), Parquet row group by row group
(``ParquetFile.iter_batches``). Only the columns the mapping names are kept. Each batch
comes with the source row number of its first row (1 = the first data row; a CSV header
is not counted) and the fraction of the file consumed, for the progress bar.

CSV and JSON mapped columns are read as text, never with types guessed from the first
block: a bad value is one rejected row wherever it sits, not a refused file. Rows that
cannot be rows at all (too few or too many CSV fields, not UTF-8, not a JSON object) come
back as :class:`InvalidRow` with their row number, for the dead-letter log.

A CSV quoted field may hold line breaks (RFC 4180), so a ``"`` that is never closed makes
the parser read every following line into that one field. Such a row is split back into
its physical lines, each one rejected row (:func:`_unquoted`): the opening line as an
unterminated quote, the others as swallowed by it; whether the field ran to the end of the
file is told by an end-of-file row the reader appends (:class:`_EndRow`), which an open
quote swallows too. The rows after the quote are numbered on from its last line.
"""

from __future__ import annotations

import difflib
import gzip
import hashlib
import json
import re
import secrets
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from pipeline.ingest.errors import SourceError
from pipeline.ingest.mapping import SourceMapping

BLOCK_BYTES = 4 << 20
_ARROW_NULLS = tuple(pacsv.ConvertOptions().null_values)  # pyarrow's default missing-value markers
PARQUET_BATCH_ROWS = 65_536
JSON_BATCH_ROWS = 65_536
_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet",
             ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


@dataclass(frozen=True)
class InvalidRow:
    """A source row that is not a row of the mapped columns (dead-lettered as it is)."""

    row: int  # source row number (1 = the first data row)
    reason: str  # stable text: rejections are counted by reason
    text: str  # the row as read (undecodable bytes replaced)


@dataclass(frozen=True)
class Batch:
    data: pa.RecordBatch
    first_row: int  # source row number of data[0] (1-based)
    done: float  # fraction of the file consumed so far (0..1)
    rows: np.ndarray | None = None  # source row of each data row, when not first_row + i
    invalid: list[InvalidRow] = field(default_factory=list)  # rows of this stretch that are not rows

    @property
    def source_rows(self) -> int:
        """Source rows this batch accounts for (valid and invalid)."""
        return self.data.num_rows + len(self.invalid)


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


def check_file(path: Path) -> None:
    """Raise a :class:`SourceError` that says what ``path`` is, if it is not a readable file."""
    if path.is_dir():
        raise SourceError(f"{path}: is a directory, not a file; pass the files in it (e.g. {path}/*.csv)")
    if not path.exists():
        raise SourceError(f"{path}: no such file")
    if not path.is_file():
        raise SourceError(f"{path}: not a regular file (a pipe or device?); copy it to a file first")


def file_key(path: Path, chunk: int = 1 << 20) -> str:
    """Content hash (sha256, 16 hex chars): the file's identity for event ids and the ledger.
    A gzip file's content is its decompressed bytes: the same rows compressed again (another
    header time or level) are the same file, not a second copy of every event. A gzip file
    that does not decompress whole is hashed as bytes (reading it reports the damage)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
        f.seek(0)
        src: Any = gzip.GzipFile(fileobj=f) if gz else f
        try:
            while block := src.read(chunk):
                h.update(block)
        except (OSError, EOFError, zlib.error):
            return bytes_key(path, chunk)
    return h.hexdigest()[:16]


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def bytes_key(path: Path, chunk: int = 1 << 20) -> str:
    """The hash of the file's bytes as they are (what :func:`file_key` was for gzip files
    before: the ledger of an older import may know a file by it)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()[:16]


def iter_batches(path: Path, mapping: SourceMapping) -> Iterator[Batch]:
    """Stream the mapped columns of ``path`` in record batches."""
    path = Path(path)
    check_file(path)
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: the file is empty (0 bytes), nothing to import; check the export that wrote it")
    fmt, gz = detect_format(path, mapping.format)
    try:
        if fmt == "parquet":
            yield from _parquet(path, mapping)
        else:
            yield from _text(path, mapping, fmt, gz)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError, EOFError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        msg = str(exc).splitlines()[0]
        if fmt == "csv":  # Arrow counts the header as row 1; our row numbers (and the dead letters') do not
            msg = re.sub(r"Row #(\d+)", lambda mt: f"row {int(mt.group(1)) - 1}", msg)
        hint = ""
        if isinstance(exc, EOFError) or "truncated" in msg.lower():  # a cut-off download or copy
            hint = "; the file is incomplete: copy or export it again (nothing was imported)"
        elif fmt == "csv" and ("straddl" in msg or "out of sync with chunker" in msg):
            msg = (f"a quoted field runs on over the lines of more than {BLOCK_BYTES:,} bytes: a double quote "
                   '(") that is never closed?')
            hint = "; find the row with the unbalanced quote and fix or remove it (nothing was imported)"
        raise SourceError(f"{path}: cannot read as {fmt}{' (gzip)' if gz else ''}: {msg}{hint}") from None


def _check_columns(path: Path, present: list[str], mapping: SourceMapping, delimiter: str | None = None) -> None:
    """Every mapped column is in the file; ``delimiter`` (CSV): the one the file was split on,
    to point at another one a one-column header is evidently separated by."""
    have = set(present)
    for col, key in mapping.column_keys().items():
        _check_once(path, col, key, present)
        if col not in have:
            hint = ""
            if delimiter is not None and len(present) == 1:
                other = [d for d in (";", "\t", "|", ",") if d != delimiter and d in present[0]]
                if other:
                    yaml = '"\\t"' if other[0] == "\t" else f"'{other[0]}'"  # YAML: a tab needs double quotes
                    hint = (f"; the header has one column split on {delimiter!r} but contains {other[0]!r}: set "
                            f"`csv: {{delimiter: {yaml}}}` in the mapping")
            raise _not_in_file(path, col, key, present, 20, hint)


def _check_once(path: Path, col: str, key: str, present: list[str]) -> None:
    """A mapped column the header names twice is ambiguous: Arrow would silently read the
    first (seen: a second ``uid`` column ignored), so the file is refused instead."""
    times = present.count(col)
    if times > 1:
        raise SourceError(f"{path}: column {col!r} (mapping key {key}) appears {times} times among the file's columns: "
                          "rename or drop the others so the mapping names one column")


def _not_in_file(path: Path, col: str, key: str, present: list[str], show: int, hint: str = "") -> SourceError:
    """The error for a mapped column the file lacks, with the file's columns and, when one
    differs from it only by case or surrounding spaces or is a close spelling, that one."""
    shown = ", ".join(present[:show]) + (" ..." if len(present) > show else "")
    if not hint:
        near = [p for p in present if p.strip().casefold() == col.strip().casefold()]
        near = near or difflib.get_close_matches(col, present, n=1, cutoff=0.75)
        if near:
            hint = f"; did you mean {near[0]!r}?"
    return SourceError(f"{path}: column {col!r} (mapping key {key}) is not in the file; its columns: {shown}{hint}")


def _open_stream(path: Path, gz: bool) -> tuple[pa.NativeFile, pa.NativeFile]:
    raw = pa.OSFile(str(path), "rb")
    return raw, (pa.CompressedInputStream(raw, "gzip") if gz else raw)


def open_csv(stream: pa.NativeFile, mapping: SourceMapping, delimiter: str, columns: list[str] | None = None,
             invalid: list[InvalidRow] | None = None) -> pacsv.CSVStreamingReader:
    """The streaming CSV reader the importer uses (also the benchmark's parse floor): the
    mapped columns as raw bytes (checked for UTF-8 per row by :func:`_utf8`); rows with too
    few or too many fields go to ``invalid`` instead of failing the file."""
    sink = [] if invalid is None else invalid

    def on_invalid(row: pacsv.InvalidRow) -> str:
        number = -1 if row.number is None else row.number - 1  # Arrow counts the header as row 1
        sink.append(InvalidRow(number, f"row: {row.actual_columns} fields, the header has {row.expected_columns}",
                               row.text))
        return "skip"

    cols = mapping.columns() if columns is None else columns
    return pacsv.open_csv(
        stream,
        read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES, use_threads=False),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=on_invalid,
                                         newlines_in_values=True),  # blocks end between rows, not in a field
        convert_options=pacsv.ConvertOptions(column_types={c: pa.binary() for c in cols},
                                             strings_can_be_null=True, include_columns=columns,
                                             null_values=null_values(mapping)),
    )


def null_values(mapping: SourceMapping) -> list[str]:
    """The CSV cells read as missing: Arrow's markers (empty, ``NA``, ``null``, ``NaN``, ``#N/A``,
    ...) except those the mapping names as source values - a source whose region ``NA`` or
    event ``null`` is mapped explicitly means the text, not a missing cell."""
    named = mapping.source_values()
    return [v for v in _ARROW_NULLS if v not in named]


def _column_nulls(mapping: SourceMapping) -> dict[str, pa.Array]:
    """Per mapped column, the markers :func:`null_values` kept as text for *another* column:
    here they still mean a missing cell (Arrow applies its null markers file-wide)."""
    kept = set(_ARROW_NULLS) - set(null_values(mapping))
    named = mapping.source_values_by_column()
    out = {}
    for c in mapping.columns():
        extra = sorted(kept - named.get(c, frozenset()))
        if extra:
            out[c] = pa.array([v.encode() for v in extra], pa.binary())
    return out


def _null_markers(rb: pa.RecordBatch, markers: dict[str, pa.Array]) -> pa.RecordBatch:
    """Cells equal to a column's ``markers`` (see :func:`_column_nulls`) set to null."""
    if not markers:
        return rb
    cols = []
    for name, col in zip(rb.schema.names, rb.columns, strict=True):
        m = markers.get(name)
        cols.append(col if m is None else pc.if_else(pc.is_in(col, value_set=m), pa.scalar(None, col.type), col))
    return pa.RecordBatch.from_arrays(cols, names=rb.schema.names)


def _text(path: Path, mapping: SourceMapping, fmt: str, gz: bool) -> Iterator[Batch]:
    _check_text(path, fmt, gz)
    if fmt != "csv":
        yield from _jsonl(path, mapping, gz)
        return
    size = max(path.stat().st_size, 1)
    raw, stream = _open_stream(path, gz)
    # Arrow decodes a malformed row's text as UTF-8 before calling our invalid-row handler;
    # on Latin-1 bytes that fails inside Arrow, which prints "Exception ignored" with a
    # traceback and then fails the file with a parse error: keep the traceback off the
    # user's terminal and say why the row could not be set aside
    undecodable: list[BaseException] = []
    prev_hook = sys.unraisablehook

    def hook(u: sys.UnraisableHookArgs) -> None:
        if isinstance(u.exc_value, UnicodeDecodeError) and getattr(u.object, "__name__", "") == "on_invalid":
            undecodable.append(u.exc_value)
        else:
            prev_hook(u)

    sys.unraisablehook = hook
    delimiter = mapping.delimiter_for(path)
    held: tuple[pa.NativeFile, ...] = ()
    try:
        reader = open_csv(stream, mapping, delimiter)
        try:
            names = reader.schema.names
        except UnicodeDecodeError:
            raise SourceError(f"{path}: the header row is not UTF-8 text (a Latin-1 or Windows-1252 export?); "
                              f"the importer reads UTF-8: convert it, e.g. iconv -f WINDOWS-1252 -t UTF-8") from None
        _check_columns(path, names, mapping, delimiter)
        # Again, now converting only the mapped columns, through a second handle. The first
        # stays open until the file is read: its reader may still be reading ahead on Arrow's
        # I/O thread, and a closed descriptor's number goes to the next open, so a late read
        # on it could take the new handle's first bytes. (One bench_import run failed so, we
        # believe: "Column 'userId' in include_columns does not exist" on a file whose header,
        # checked just above, has it.)
        held = (stream, raw)
        raw, stream = _open_stream(path, gz)
        invalid: list[InvalidRow] = []
        end = _EndRow(stream, delimiter, len(names))
        reader = open_csv(end, mapping, delimiter, mapping.columns(), invalid)
        cols = mapping.columns()
        markers = _column_nulls(mapping)
        pending: dict[int, InvalidRow] = {}  # reported by the parser, maybe ahead of the batch yielded
        lines = 0  # physical lines of the rows an open quote ran over, beyond the first: rows after them move on
        row = 1

        def set_aside() -> None:
            nonlocal lines
            for r in invalid:
                split = _unquoted(replace(r, row=r.row + lines), end.text)
                lines += len(split) - 1
                pending.update((s.row, s) for s in split)
            invalid.clear()

        for rb in reader:
            set_aside()
            if not rb.num_rows:  # the end row's block, say: its invalid rows wait in `pending`
                continue
            batch, row = _placed(_null_markers(rb.select(cols), markers), row, min(raw.tell() / size, 1.0), pending)
            yield batch
        set_aside()
        if pending:  # invalid rows after the last parsed one
            empty = pa.RecordBatch.from_arrays([pa.array([], pa.string()) for _ in cols], names=cols)
            yield Batch(empty, row, 1.0, np.empty(0, np.int64), [pending[k] for k in sorted(pending)])
    except pa.ArrowInvalid as exc:
        if not undecodable:
            raise
        first = str(exc).splitlines()[0]
        raise pa.ArrowInvalid(f"{first}; that row is not UTF-8 text either (a Latin-1 or Windows-1252 export?), so it "
                              "could not be set aside as a rejected row: convert the file to UTF-8, e.g. iconv -f "
                              "WINDOWS-1252 -t UTF-8") from None
    finally:
        if sys.unraisablehook is hook:
            sys.unraisablehook = prev_hook
        for f in (stream, raw, *held):
            f.close()


class _EndRow:
    """``stream`` followed by one more row, :attr:`text`, which tells how the file ended: read
    outside quotes it is an invalid row of its own (``n + 2`` fields for an ``n``-column
    header), dropped by :func:`_unquoted`; read inside a quoted field the file left open, its
    first ``"`` closes that field and its delimiters give the row more fields than the header,
    so the row that swallowed the rest of the file is always an invalid row, ending in
    ``"\\n" + text``. Arrow reads it in blocks (``read(BLOCK_BYTES)``): a Python call per block."""

    closed = False

    def __init__(self, stream: pa.NativeFile, delimiter: str, columns: int) -> None:
        self._stream = stream
        more = delimiter * (columns + 1)
        self.text = f'"{more}churn_end_of_file_{secrets.token_hex(8)}"{more}'  # no real row's text
        self._tail: bytes | None = f"\n{self.text}\n".encode()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read() if size is None or size < 0 else self._stream.read(size)
        if data or self._tail is None:
            return data
        data, self._tail = self._tail, None
        return data

    def close(self) -> None:
        self.closed = True


_UNTERMINATED = "row: unterminated quote: its quoted field runs to the end of the file"
_SWALLOWED = "row: read into the unterminated quote of an earlier row"
_SPANNED = "row: read into a quoted field of an earlier row that runs over several lines (an unterminated quote?)"


def _unquoted(r: InvalidRow, end: str) -> list[InvalidRow]:
    """The invalid row ``r`` as the rejected rows it stands for: none if it is the
    end-of-file row ``end`` (the file ended outside quotes), one per non-empty physical line
    if a quoted field ran over several lines (the opening line under ``r.row``, the lines it
    swallowed under the numbers after it), else ``r`` itself. Only invalid rows come here,
    so this costs nothing on a well-formed file."""
    text = r.text
    if text == end:
        return []
    if text.endswith("\n" + end):  # the quoted field ran to the end of the file (and over the end row)
        text = text[: -len(end) - 1]
        first, rest = _UNTERMINATED, _SWALLOWED
    elif "\n" in text:  # a quoted field closed on a later line, with the wrong number of fields
        first, rest = f"{r.reason}, a quoted field runs over several lines (an unterminated quote?)", _SPANNED
    else:
        return [r]
    head, *tail = text.split("\n")
    swallowed = [t for t in (line.rstrip("\r") for line in tail) if t]  # blank lines are no rows, as elsewhere
    return [InvalidRow(r.row, first, head.rstrip("\r"))] + [
        InvalidRow(r.row + i, rest, t) for i, t in enumerate(swallowed, 1)]


def _check_text(path: Path, fmt: str, gz: bool) -> None:
    """Refuse, with what it is, a file that is not UTF-8 text at all: UTF-16 (Excel's
    "Unicode Text" export), a ZIP archive (an ``.xlsx`` workbook renamed), other binary
    data; and, given as JSON lines, one JSON array of objects. Read as CSV such a file
    failed inside Arrow with a UnicodeDecodeError traceback, or as one garbled "column";
    as JSON lines every line was a rejected row."""
    with gzip.open(path, "rb") if gz else open(path, "rb") as f:
        head = f.read(4096)
    what = "CSV" if fmt == "csv" else "JSON lines"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SourceError(f"{path}: is UTF-16 text (Excel's 'Unicode Text' export?); the importer reads UTF-8 "
                          f"{what}: convert it, e.g. iconv -f UTF-16 -t UTF-8")
    if head.startswith(b"PK\x03\x04"):
        raise SourceError(f"{path}: is a ZIP archive (an Excel .xlsx workbook?), not {what} text: export the sheet "
                          "as CSV (UTF-8)")
    first = head.lstrip(b"\xef\xbb\xbf \t\r\n").split(b"\n", 1)[0]
    if fmt != "csv" and re.match(rb"\[\s*(\{|$)", first):  # `[` alone, or `[{...` : an array of objects
        raise SourceError(f"{path}: is one JSON array, not JSON lines (one object per line): convert it, e.g. "
                          "jq -c '.[]' IN > OUT.jsonl")
    if head.count(b"\x00") > len(head) // 100:  # a stray NUL in one cell is that row's problem, not the file's
        raise SourceError(f"{path}: contains NUL bytes: a binary file (or UTF-16/32 text without a byte-order "
                          f"mark), not {what} text")


def _utf8(rb: pa.RecordBatch) -> tuple[pa.RecordBatch, list[tuple[int, str]]]:
    """Binary columns -> text; rows with bytes that are not UTF-8 leave the batch as
    ``(index in the batch, row text)``."""
    try:
        return pa.RecordBatch.from_arrays([c.cast(pa.string()) for c in rb.columns], names=rb.schema.names), []
    except (pa.ArrowInvalid, UnicodeDecodeError):
        pass
    bad: dict[int, str] = {}
    for name, col in zip(rb.schema.names, rb.columns, strict=True):
        for i, v in enumerate(col.to_pylist()):
            if v is not None and i not in bad:
                try:
                    v.decode("utf-8")
                except UnicodeDecodeError:
                    bad[i] = name
    keep = np.setdiff1d(np.arange(rb.num_rows), np.fromiter(bad, np.int64, len(bad)))
    texts = [(i, json.dumps({n: rb.column(n)[i].as_py().decode("utf-8", "replace") if rb.column(n)[i].is_valid
                             else None for n in rb.schema.names}, ensure_ascii=False)) for i in sorted(bad)]
    good = rb.take(pa.array(keep))
    return pa.RecordBatch.from_arrays([c.cast(pa.string()) for c in good.columns], names=good.schema.names), texts


def _placed(parsed: pa.RecordBatch, first: int, done: float, pending: dict[int, InvalidRow]) -> tuple[Batch, int]:
    """The batch of the ``parsed`` rows that start at source row ``first``, with the invalid
    rows (``pending``: wrong field count; found here: not UTF-8) of its stretch of the file;
    and the source row after it."""
    rb, bad = _utf8(parsed)
    if not pending and not bad:
        return Batch(rb, first, done), first + rb.num_rows
    rows: list[int] = []
    skipped: list[InvalidRow] = []
    r = first
    while len(rows) < parsed.num_rows or r in pending:  # Arrow's rows, in order, around the skipped ones
        if r in pending:
            skipped.append(pending.pop(r))
        else:
            rows.append(r)
        r += 1
    kept = np.asarray(rows, np.int64)
    skipped += [InvalidRow(int(kept[i]), "row: not valid UTF-8", t) for i, t in bad]
    valid = np.delete(kept, [i for i, _ in bad]) if bad else kept
    return Batch(rb, int(valid[0]) if len(valid) else first, done, valid, skipped), r


_json = msgspec.json.Decoder()


def _cell(v: object) -> str | None:
    """A JSON value as the text a CSV cell would hold (``12.0`` -> ``"12"``, like an id)."""
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)  # int or float: objects and arrays are rejected rows (_NOT_ONE_VALUE)


def _jsonl(path: Path, mapping: SourceMapping, gz: bool) -> Iterator[Batch]:
    """JSON lines, one object per line; a line that is not a JSON object is an invalid row. A
    mapped column ``a.b`` that is not a top-level key reads the nested field ``{"a": {"b": ...}}``."""
    size = max(path.stat().st_size, 1)
    cols = mapping.columns()
    with open(path, "rb") as raw:
        f = gzip.GzipFile(fileobj=raw) if gz else raw
        seen: set[str] = set()
        nested = [tuple(c.split(".")) if "." in c else None for c in cols]  # `user.id`: obj["user"]["id"]
        checked = False
        first, row = 1, 1
        values: list[list[str | None]] = [[] for _ in cols]
        rows: list[int] = []
        invalid: list[InvalidRow] = []
        read = 0
        for line in f:
            if row == 1 and not rows and not invalid and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]  # a UTF-8 byte-order mark before the first line, as in a CSV: not data
            if not line.strip():
                continue
            read += len(line)
            try:
                obj = _json.decode(line)
            except msgspec.DecodeError as exc:
                reason = "row: not valid UTF-8" if "UTF-8" in str(exc) else "row: not valid JSON"
                invalid.append(InvalidRow(row, reason, line.decode("utf-8", "replace").rstrip("\r\n")))
                row += 1
                continue
            if not isinstance(obj, dict):
                invalid.append(InvalidRow(row, "row: not a JSON object", line.decode("utf-8", "replace").rstrip()))
                row += 1
                continue
            if not checked:
                seen.update(obj)
            cells = []
            for k, c in enumerate(cols):
                v = obj.get(c, _ABSENT)
                if v is _ABSENT and nested[k] is not None:
                    v = _dig(obj, nested[k])
                    if v is not _ABSENT and not checked:
                        seen.add(c)
                cells.append(v)
            if any(v.__class__ in _NOT_ONE_VALUE for v in cells):
                invalid.append(InvalidRow(row, _not_one_value(cols, cells), line.decode("utf-8", "replace").rstrip()))
                row += 1
                continue
            for k, v in enumerate(cells):
                values[k].append(None if v is _ABSENT else _cell(v))
            rows.append(row)
            row += 1
            if not checked and read >= BLOCK_BYTES:
                _check_json_columns(path, seen, invalid, mapping)
                checked = True
            if len(rows) + len(invalid) >= JSON_BATCH_ROWS:
                if not checked:
                    _check_json_columns(path, seen, invalid, mapping)
                    checked = True
                yield _json_batch(cols, values, rows, invalid, first, min(raw.tell() / size, 1.0))
                first, values, rows, invalid = row, [[] for _ in cols], [], []
        if not checked:
            _check_json_columns(path, seen, invalid, mapping)
        if rows or invalid:
            yield _json_batch(cols, values, rows, invalid, first, 1.0)


_ABSENT = object()


def _check_json_columns(path: Path, seen: set[str], invalid: list[InvalidRow], mapping: SourceMapping) -> None:
    """:func:`_check_columns` on the keys seen so far; if no line so far was a JSON object
    (a pretty-printed JSON document: its lines are ``{``, ``"uid": ...``), say that rather
    than "not in the file; its columns: " with an empty list."""
    if not seen and invalid:
        raise SourceError(f"{path}: no line read is a JSON object ({len(invalid):,} lines, the first: "
                          f"{invalid[0].reason.removeprefix('row: ')}); JSON lines has one object per line: a "
                          "pretty-printed JSON document? convert it, e.g. jq -c . IN > OUT.jsonl")
    _check_columns(path, sorted(seen), mapping)


_NOT_ONE_VALUE = (dict, list)  # what msgspec decodes a JSON object / array to


def _not_one_value(cols: list[str], cells: list[object]) -> str:
    """The reason for a row whose mapped column holds a JSON object or array: not a value
    to map (its JSON text as a user id or a plan would be imported as if it were one);
    the same mapping on a Parquet struct column is refused before any row is read."""
    col, v = next((c, v) for c, v in zip(cols, cells, strict=True) if v.__class__ in _NOT_ONE_VALUE)
    if isinstance(v, dict):
        return f"row: column {col!r} is a JSON object, not one value (map one of its keys as {col}.<key>)"
    return f"row: column {col!r} is a JSON array, not one value"


def _dig(obj: dict, path: tuple[str, ...]) -> object:
    """``obj["a"]["b"]`` for the path ``("a", "b")``; ``_ABSENT`` if a level is missing or not an object."""
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return _ABSENT
        obj = obj[key]
    return obj


def _json_batch(cols: list[str], values: list[list[str | None]], rows: list[int], invalid: list[InvalidRow],
                first: int, done: float) -> Batch:
    rb = pa.RecordBatch.from_arrays([pa.array(v, pa.string()) for v in values], names=cols)
    contiguous = not invalid
    return Batch(rb, rows[0] if rows else first, done, None if contiguous else np.asarray(rows, np.int64), invalid)


def _parquet(path: Path, mapping: SourceMapping) -> Iterator[Batch]:
    """Parquet, a row group at a time. As in JSON lines, a mapped column ``a.b`` that is not
    a top-level column reads field ``b`` of the struct column ``a`` (null where ``a`` is);
    a mapped column that is itself a struct, list or map is refused before any row is read
    (it holds no one value: the error names its fields)."""
    pf = pq.ParquetFile(path)
    fields = _parquet_fields(path, pf.schema_arrow, mapping)
    total = max(pf.metadata.num_rows, 1)
    row = 1
    roots = list(dict.fromkeys(root for root, _ in fields.values()))
    flat = all(not sub for _, sub in fields.values())
    for rb in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=mapping.columns() if flat else roots):
        if not flat:
            arrays = [rb.column(root) if not sub else pc.struct_field(rb.column(root), list(sub))
                      for root, sub in fields.values()]  # fmt: skip
            rb = pa.RecordBatch.from_arrays(arrays, names=list(fields))
        yield Batch(rb, row, min((row - 1 + rb.num_rows) / total, 1.0))
        row += rb.num_rows


def _parquet_fields(path: Path, schema: pa.Schema, mapping: SourceMapping) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Each mapped column -> (the file's top-level column, the struct fields below it)."""
    top = set(schema.names)
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for col, key in mapping.column_keys().items():
        steps = (col,) if col in top else tuple(col.split("."))  # a top-level `a.b` wins, as in JSON lines
        _check_once(path, steps[0], key, schema.names)
        kind = schema.field(steps[0]).type if steps[0] in top else None
        for step in steps[1:]:
            if kind is None or not pa.types.is_struct(kind) or kind.get_field_index(step) < 0:
                kind = None
                break
            kind = kind.field(step).type
        if kind is None:
            raise _not_in_file(path, col, key, _parquet_names(schema), 30)
        if pa.types.is_nested(kind):
            inner = ", ".join(f"{col}.{f.name}" for f in kind) if pa.types.is_struct(kind) else ""
            what = f"a struct column (its fields: {inner}): map one of its fields" if inner else \
                f"a {kind} column, not one value per row: map a column of text, numbers or times"
            raise SourceError(f"{path}: column {col!r} (mapping key {key}) is {what}")
        out[col] = (steps[0], steps[1:])
    return out


def _parquet_names(schema: pa.Schema) -> list[str]:
    """The file's columns, each struct's fields as ``a.b`` after it (what a mapping can name)."""
    names: list[str] = []

    def walk(prefix: str, kind: pa.DataType) -> None:
        if pa.types.is_struct(kind):
            for f in kind:
                names.append(f"{prefix}.{f.name}")
                walk(f"{prefix}.{f.name}", f.type)

    for f in schema:
        names.append(f.name)
        walk(f.name, f.type)
    return names
