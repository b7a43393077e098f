"""The PostgreSQL ``COPY`` payload (``bulk.copy_text``): every value written as the
server reads it back, whichever fast path (distinct-value lookup or not) built
it."""

from __future__ import annotations

from pipeline.store import schema as s
from pipeline.store.bulk import copy_text


def _row(
    user: str, risk: float | None, revenue: float | None, part: int | None, active: bool
) -> list:
    return [user, risk, "3", "2026-01-01T00:00:00.000000Z", None, "std", revenue, part,
            "2026-01-01T00:00:00.000000Z", active]  # fmt: skip


def _columns(rows: list[list]) -> dict[str, list]:
    names = ("user_id", "risk", "model_version", "features_time", "reasons", "plan",
             "monthly_revenue", "partition", "updated_at", "active")  # fmt: skip
    return {n: [r[i] for r in rows] for i, n in enumerate(names)}


def _expected(rows: list[list]) -> str:
    def text(v: object) -> str:
        if v is None:
            return r"\N"
        if isinstance(v, bool):
            return "t" if v else "f"
        if isinstance(v, float):
            return repr(v)
        return str(v).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")

    return "".join("\t".join(map(text, r)) + "\n" for r in rows)


def test_copy_text_writes_nulls_escapes_floats_and_repeated_values() -> None:
    # 600 rows: revenue/partition/active take few values (the lookup path), risk is
    # distinct per row; some NULLs and ids needing escapes.
    rows = [
        _row(f"u{i}" if i % 97 else f"u\t{i}\\x", None if i % 50 == 0 else i / 601,
             None if i % 7 == 0 else (13.99, 9.5)[i % 2], i % 4, i % 3 != 0)
        for i in range(600)
    ]  # fmt: skip
    assert copy_text(s.scores, _columns(rows)) == _expected(rows)


def test_copy_text_of_no_rows_is_empty() -> None:
    assert copy_text(s.scores, _columns([])) == ""
