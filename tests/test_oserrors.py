"""Disk full is one line that names the file and says to free space or move the data dir
(issue 16 item 9), not "No space left on device:  - check --data-dir"."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import typer
from typer.testing import CliRunner

from pipeline.oserrors import describe, file_of


def _write_full(path: Path) -> None:
    with open(path, "ab") as f:  # a write() fails with no file name attached, as on a full disk
        f.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_names_the_file_being_written_and_the_remedy(tmp_path) -> None:
    seg = tmp_path / "log" / "events" / "p0" / "00000000.seg"
    seg.parent.mkdir(parents=True)
    try:
        _write_full(seg)
    except OSError as exc:
        assert exc.filename is None and file_of(exc) == str(seg)
        line = describe(exc)
    assert line.startswith(f"no space left on device writing {seg}: free space on that disk")
    assert f"df -h {seg.parent}" in line and "--data-dir" in line and "\n" not in line


def test_the_cli_prints_it_as_one_error_line(tmp_path) -> None:
    from churn.cli.common import friendly

    app = typer.Typer()

    @app.command()
    def produce() -> None:
        friendly(_write_full)(tmp_path / "state.json")

    result = CliRunner().invoke(app, [])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [result.output.strip()]  # one line
    assert f"error: no space left on device writing {tmp_path / 'state.json'}" in result.output
    assert "Traceback" not in result.output
