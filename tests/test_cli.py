"""The `churn` CLI through its real entry point (`main`) and as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from churn.cli.app import main
from pipeline import events as ev
from pipeline.log import open_log


def churn(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def all_values(data: Path) -> dict[int, list[bytes]]:
    log = open_log(data / "log", "events")
    try:
        out: dict[int, list[bytes]] = {}
        for p in range(log.num_partitions):
            vals, offset = [], 0
            while batch := log.fetch(p, offset, max_records=50_000):
                vals += [r.value for r in batch]
                offset = batch[-1].offset + 1
            out[p] = vals
        return out
    finally:
        log.close()


def test_simulate_writes_history_and_summary(tmp_path, capsys):
    data = tmp_path / "data"
    code, out, err = churn(capsys, "--data-dir", str(data), "simulate", "--users", "300", "--days", "20", "--json")
    assert code == 0, err
    summary = json.loads(out)
    values = all_values(data)
    assert len(values) == 4
    assert sum(map(len, values.values())) == summary["events"] == sum(summary["events_by_type"].values())
    assert summary["users"] == 300 and summary["events_by_type"]["signup"] == 300
    assert (data / "sim" / "state.json").exists()
    assert list((data / "sim" / "hazard").glob("part-*.parquet"))
    # every record decodes and sits in its user's murmur2 partition
    from pipeline.log.partitioner import partition_for
    for p, vals in values.items():
        for v in vals[:200]:
            assert partition_for(ev.decode(v).user_id.encode(), 4) == p


def test_simulate_refuses_to_overwrite_without_flag(tmp_path, capsys):
    data = str(tmp_path / "d")
    assert churn(capsys, "--data-dir", data, "simulate", "--users", "50", "--days", "3")[0] == 0
    code, _, err = churn(capsys, "--data-dir", data, "simulate", "--users", "50", "--days", "3")
    assert code == 1 and "--overwrite" in err and "Traceback" not in err
    code, out, _ = churn(capsys, "--data-dir", data, "simulate", "--users", "60", "--days", "3", "--overwrite", "--json")
    assert code == 0 and json.loads(out)["users"] == 60


def test_simulate_overwrite_refuses_while_a_producer_runs(tmp_path, capsys):
    data = tmp_path / "d"
    assert churn(capsys, "--data-dir", str(data), "simulate", "--users", "50", "--days", "3")[0] == 0
    before = all_values(data)
    producer = subprocess.Popen([sys.executable, "-c", (
        "import sys; from pipeline.simulator.lock import producer_lock\n"
        f"with producer_lock({str(data / 'sim')!r}):\n    print('held', flush=True); sys.stdin.readline()")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert producer.stdout.readline().strip() == "held"
        code, _, err = churn(capsys, "--data-dir", str(data), "simulate", "--users", "60", "--days", "3", "--overwrite")
        assert code == 1 and f"pid {producer.pid}" in err and "Traceback" not in err
        assert all_values(data) == before and (data / "sim" / "state.json").exists()  # nothing deleted
    finally:
        producer.kill()
        producer.wait()
    code, out, _ = churn(capsys, "--data-dir", str(data), "simulate", "--users", "60", "--days", "3", "--overwrite", "--json")
    assert code == 0 and json.loads(out)["users"] == 60


def test_produce_resumes_without_duplicates(tmp_path, capsys):
    one, two = tmp_path / "one", tmp_path / "two"
    for d in (one, two):
        assert churn(capsys, "--data-dir", str(d), "simulate", "--users", "400", "--days", "10")[0] == 0
    assert churn(capsys, "--data-dir", str(one), "produce", "--rate", "0", "--max-events", "5000")[0] == 0
    for n in ("1234", "2000", "1766"):  # stops mid-day, twice
        code, out, err = churn(capsys, "--data-dir", str(two), "produce", "--rate", "0", "--max-events", n, "--json")
        assert code == 0, err
        assert json.loads(out)["events"] == int(n)
    a, b = all_values(one), all_values(two)
    assert a == b
    ids = [ev.decode(v).event_id for vals in b.values() for v in vals]
    assert len(ids) == len(set(ids))


def test_user_mistakes_are_one_line_errors(tmp_path, capsys):
    code, _, err = churn(capsys, "simulate", "--users", "0")
    assert code == 2 and "--users" in err and len(err.strip().splitlines()) == 1
    code, _, err = churn(capsys, "--data-dir", str(tmp_path / "x"), "simulate", "--drift", "nope", "--drift-day", "3")
    assert code == 1 and "unknown drift scenario 'nope'" in err
    code, _, err = churn(capsys, "--data-dir", str(tmp_path / "x"), "simulate", "--start", "2026-13-01")
    assert code == 2 and "--start" in err
    code, _, err = churn(capsys, "--data-dir", str(tmp_path / "empty"), "produce")
    assert code == 1 and "churn simulate" in err
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, _, err = churn(capsys, "--data-dir", str(blocker / "data"), "simulate", "--users", "5", "--days", "1")
    assert code == 1 and str(blocker) in err and "Traceback" not in err
    code, _, err = churn(capsys, "--partitions", "0", "simulate")
    assert code == 1 and "partitions=0" in err and "(--partitions)" in err  # the flag the user typed, not the env


def test_ctrl_c_stops_produce_cleanly(tmp_path):
    data = tmp_path / "data"
    env = os.environ | {"CHURN_DATA_DIR": str(data)}
    cmd = [sys.executable, "-c", "from churn.cli.app import main; main()"]
    subprocess.run([*cmd, "simulate", "--users", "200", "--days", "5"], env=env, check=True, capture_output=True)
    before = sum(map(len, all_values(data).values()))
    proc = subprocess.Popen([*cmd, "produce", "--rate", "500", "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while sum(map(len, all_values(data).values())) < before + 100:
            assert time.monotonic() < deadline, "producer wrote nothing"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    produced = json.loads(out)["events"]
    assert sum(map(len, all_values(data).values())) == before + produced


def test_lag_topics_tail(tmp_path, capsys):
    from datetime import UTC, datetime

    data = tmp_path / "data"
    assert churn(capsys, "--data-dir", str(data), "simulate", "--users", "200", "--days", "10")[0] == 0
    code, out, _ = churn(capsys, "--data-dir", str(data), "lag", "--group", "g1", "--json")
    assert code == 0
    rows = json.loads(out)
    ends = {p: len(v) for p, v in all_values(data).items()}
    # a new group: every record is lag, current offset shown as "-"
    assert [(r["partition"], r["current_offset"], r["lag"], r["log_end_offset"]) for r in rows] == [
        (p, None, ends[p], ends[p]) for p in range(4)
    ]
    assert {r["group"] for r in rows} == {"g1"} and {r["topic"] for r in rows} == {"events"}
    with open_log(data / "log", "events") as log:
        log.commit("g1", {0: 5}, when=datetime.now(UTC))
    code, out, _ = churn(capsys, "--data-dir", str(data), "lag", "--group", "g1")
    assert code == 0 and "total lag" in out and f"{sum(ends.values()) - 5:,}" in out

    code, out, _ = churn(capsys, "--data-dir", str(data), "topics", "--json")
    info = json.loads(out)[0]
    assert info["topic"] == "events" and info["records"] == sum(ends.values()) and info["groups"] == ["g1"]

    code, out, _ = churn(capsys, "--data-dir", str(data), "tail", "-p", "1", "-n", "3", "--from", "earliest")
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 3 and lines[0].startswith("1:0\t")
    assert ev.decode(lines[2].split("\t", 1)[1]).type

    # a corrupt offsets file is an error naming the file and the recovery, never a reset
    (data / "log" / "events" / "groups").mkdir(exist_ok=True)
    groups = list((data / "log" / "events").rglob("g1.json"))
    assert len(groups) == 1
    groups[0].write_text('{"partitions": {"0": 5')
    code, _, err = churn(capsys, "--data-dir", str(data), "lag", "--group", "g1")
    assert code == 1 and str(groups[0]) in err and "--reset-offsets" in err
    code, out, err = churn(capsys, "--data-dir", str(data), "lag", "--group", "g1", "--reset-offsets", "latest", "--json")
    assert code == 0 and all(r["lag"] == 0 for r in json.loads(out))


def test_piped_tables_never_wrap_or_cut_cells(tmp_path):
    """Output to a file or pipe keeps every table row on one line, every cell whole."""
    topic = "a-rather-long-topic-name-that-would-not-fit-in-eighty-columns-of-a-table"
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"} | {"CHURN_DATA_DIR": str(tmp_path / "data"),
                                                                     "CHURN_TOPIC": topic}  # fmt: skip
    cmd = [sys.executable, "-c", "from churn.cli.app import main; main()"]
    out = subprocess.run([*cmd, "simulate", "--users", "300", "--days", "3"], env=env, check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    out += subprocess.run([*cmd, "topics"], env=env, check=True, capture_output=True, text=True).stdout
    assert "…" not in out
    assert any(topic in line for line in out.splitlines())


def test_help_shows_defaults_in_brackets(capsys):
    """Help texts are plain text: '[env CHURN_DATA_DIR; default ./data]' is printed, not eaten as markup."""
    code, out, _ = churn(capsys, "--help")
    assert code == 0 and "[env CHURN_DATA_DIR; default ./data]" in out
    code, out, _ = churn(capsys, "simulate", "--help")
    assert code == 0 and "[default: settings seed, 42]" in out


def test_loop_demo_refuses_a_data_dir_with_data_in_it_and_touches_nothing(capsys, tmp_path) -> None:
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "keep.txt").write_text("user data")
    code, out, err = churn(capsys, "--data-dir", str(tmp_path), "loop-demo")
    assert code == 1
    assert f"{tmp_path.resolve()} is not empty" in " ".join(err.split()) and "--data-dir" in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["keep.txt", "log"]


def test_the_default_partition_count_is_for_new_topics_only(tmp_path, capsys, monkeypatch):
    """A 2-partition topic (e.g. the quick demo's) refused `topics --create` and `import`
    because the unset --partitions meant 4; an explicit count is still held to the stored one."""
    monkeypatch.delenv("CHURN_PARTITIONS", raising=False)
    data = tmp_path / "data"
    assert churn(capsys, "--data-dir", str(data), "--partitions", "2", "simulate", "--users", "50", "--days", "5")[0] == 0
    code, out, err = churn(capsys, "--data-dir", str(data), "topics", "--create", "--json")
    assert code == 0, err
    assert json.loads(out)[0]["partitions"] == 2
    code, _, err = churn(capsys, "--data-dir", str(data), "--partitions", "3", "topics", "--create")
    assert code == 1 and "has 2 partitions, but 3 were requested" in err and "--partitions 2" in err
    monkeypatch.setenv("CHURN_PARTITIONS", "3")
    assert churn(capsys, "--data-dir", str(data), "topics", "--create")[0] == 1
