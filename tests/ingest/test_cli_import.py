"""`churn import` on the command line: summary, exit codes, one-line errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from churn.cli.app import app

from .helpers import T0, rows_to_csv, sample_rows, write_mapping


def _run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_import_prints_the_summary_and_is_idempotent(tmp_path) -> None:
    src = rows_to_csv(sample_rows(users=3, days=5), tmp_path / "a.csv.gz")
    m = write_mapping(tmp_path / "m.yaml")
    r = _run("--data-dir", str(tmp_path / "d"), "import", str(src), "--mapping", str(m), "--topic", "mine")
    assert r.exit_code == 0, r.output
    for text in ("into topic mine: imported", "rows read", "session", "synthesized signup", "dropped",
                 "rejected", "users", "time span", "2026-01-01 01:00 .. 2026-01-12 00:00 UTC"):
        assert text in r.output, text
    assert (tmp_path / "d" / "log" / "mine" / "topic.json").exists()
    assert (tmp_path / "d" / "import" / "mine" / "profile.json").exists()
    again = _run("--data-dir", str(tmp_path / "d"), "--topic", "mine", "import", str(src), "-m", str(m), "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["status"] == "already imported"


def test_too_many_rejections_exit_1_with_the_summary(tmp_path) -> None:
    rows = sample_rows(users=2, days=2) + [{"uid": "", "t": T0, "kind": "play", "minutes": 1}] * 4
    src = rows_to_csv(rows, tmp_path / "a.csv")
    m = write_mapping(tmp_path / "m.yaml", max_rejected_share=0.1)
    r = _run("--data-dir", str(tmp_path / "d"), "import", str(src), "--mapping", str(m))
    assert r.exit_code == 1
    assert "refused" in r.output and "user_id: empty" in r.output
    assert "nothing was written" in r.output and "--max-rejected-share" in r.output
    ok = _run("--data-dir", str(tmp_path / "d"), "import", str(src), "--mapping", str(m),
              "--max-rejected-share", "0.5", "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["rejected"] == 4


def test_user_mistakes_are_one_line(tmp_path) -> None:
    src = rows_to_csv(sample_rows(users=2, days=2), tmp_path / "a.csv")
    bad = write_mapping(tmp_path / "bad.yaml", timestamp={"column": "t", "epoch_unit": "minutes"})
    r = _run("--data-dir", str(tmp_path / "d"), "import", str(src), "--mapping", str(bad))
    assert r.exit_code == 1 and "mapping bad.yaml: timestamp.epoch_unit: 'minutes' is not one of" in r.output
    assert "Traceback" not in r.output
    good = write_mapping(tmp_path / "good.yaml", user_id="customer")
    r = _run("--data-dir", str(tmp_path / "d"), "import", str(src), "--mapping", str(good))
    assert r.exit_code == 1 and "column 'customer' (mapping key user_id) is not in the file" in r.output
    r = _run("--data-dir", str(tmp_path / "d"), "import", str(tmp_path / "missing.csv"), "--mapping", str(good))
    assert r.exit_code == 1 and "missing.csv: no such file" in r.output


def test_a_dropped_value_that_differs_from_a_mapped_one_only_by_case_is_warned(tmp_path) -> None:
    """'Play' beside a mapped 'play' was counted under "dropped" with the deliberately
    unmapped values; the summary now warns that it is probably the same event."""
    rows = sample_rows(users=2, days=2) + [{"uid": "u0", "t": T0 + 60 * i, "kind": k, "minutes": 1}
                                           for i, k in enumerate(["Play", "Play", " play", "home"])]
    src = rows_to_csv(rows, tmp_path / "a.csv")
    r = _run("--data-dir", str(tmp_path / "d"), "import", str(src), "--mapping", str(write_mapping(tmp_path / "m.yaml")))
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "warning: 2 rows of event type 'Play' were dropped (unmapped) but 'play' is mapped" in text
    assert "1 rows of event type ' play' were dropped" in text
    assert "'home'" not in text.split("warning:", 1)[1]  # a value with no near mapped one is not warned about


def test_rows_after_a_cancel_and_a_source_without_cancels_are_warned(tmp_path) -> None:
    """A user active after their cancel (no signup after it) is not subscribed from the
    cancel on; an import of a `cancel`-churn source where no row became a cancel cannot
    train. Both used to pass without a word."""
    back = [{"uid": "u0", "t": T0 + d * 86400, "kind": k, "minutes": 3, "amount": 7.99, "plan": "b"}
            for d, k in ((14, "pay"), (15, "play"))]  # fmt: skip
    src = rows_to_csv(sample_rows(users=3, days=20) + back, tmp_path / "a.csv")
    r = _run("--data-dir", str(tmp_path / "d"), "import", str(src), "--mapping", str(write_mapping(tmp_path / "m.yaml")))
    text = " ".join(r.output.split())
    assert r.exit_code == 0, r.output
    assert "warning: 1 users have rows after their last cancel and no signup after it" in text
    assert "no row of this import became a `cancel`" not in text
    no_cancel = write_mapping(tmp_path / "n.yaml", event_type__values={  # the cancel value mapped never occurs
        "play": "session", "pay": "payment", "unsubscribed": "cancel"})  # fmt: skip
    r = _run("--data-dir", str(tmp_path / "e"), "import", str(src), "--mapping", str(no_cancel), "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["active_after_cancel"] == 0
    r = _run("--data-dir", str(tmp_path / "f"), "import", str(src), "--mapping", str(no_cancel))
    text = " ".join(r.output.split())
    assert "warning: no row of this import became a `cancel`" in text and "users have rows after" not in text


def test_a_failed_first_import_leaves_nothing_behind(tmp_path) -> None:
    """A typo'd path (or a refused import) created the data dir with an empty 4-partition
    topic, which `churn simulate` then refused as 'already holds a history'."""
    m = str(write_mapping(tmp_path / "m.yaml"))
    fresh = tmp_path / "fresh"
    r = _run("--data-dir", str(fresh), "import", str(tmp_path / "missing.csv"), "--mapping", m)
    assert r.exit_code == 1 and "no such file" in r.output and not fresh.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    rows = sample_rows(users=2, days=2) + [{"uid": "", "t": T0, "kind": "play", "minutes": 1}] * 40
    refused = _run("--data-dir", str(existing), "import", str(rows_to_csv(rows, tmp_path / "a.csv")), "--mapping", m,
                   "--max-rejected-share", "0.1")  # fmt: skip
    assert refused.exit_code == 1 and "refused" in refused.output
    assert sorted(p.name for p in existing.rglob("*")) == ["keep.txt"]
    r = _run("--data-dir", str(existing), "simulate", "--users", "20", "--days", "3")
    assert r.exit_code == 0, r.output


def test_a_ledger_left_beside_a_deleted_topic_is_one_line_with_the_way_out(tmp_path) -> None:
    """`rm -rf <data>/log/events` kept `<data>/import/events`: the re-import said "already
    imported", wrote nothing, and the new topic never got the events."""
    import shutil

    src = rows_to_csv(sample_rows(users=3, days=5), tmp_path / "a.csv")
    m = str(write_mapping(tmp_path / "m.yaml"))
    d = tmp_path / "d"
    first = _run("--data-dir", str(d), "import", str(src), "--mapping", m, "--json")
    assert first.exit_code == 0, first.output
    shutil.rmtree(d / "log" / "events")
    r = _run("--data-dir", str(d), "import", str(src), "--mapping", m)
    text = " ".join(r.output.split())
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert f"error: nothing imported: the import ledger {d / 'import' / 'events' / 'ledger.json'} records" in text
    assert f"`mv {d / 'import' / 'events'} {d / 'import' / 'events'}.old`" in text
    assert not (d / "log" / "events").exists()  # the refused import leaves no empty topic behind
    (d / "import" / "events").rename(d / "import" / "events.old")
    again = _run("--data-dir", str(d), "import", str(src), "--mapping", m, "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["written"] == json.loads(first.stdout)["written"] > 0


def test_max_future_skew_hours_option_overrides_the_mapping_and_is_validated(tmp_path) -> None:
    import time

    now = int(time.time())
    ahead = [{"uid": "u1", "t": now + 48 * 3600, "kind": "play", "minutes": 1}]  # two days after the clock
    src = rows_to_csv(sample_rows(users=2, days=2) + ahead, tmp_path / "a.csv")
    m = str(write_mapping(tmp_path / "m.yaml"))
    r = _run("--data-dir", str(tmp_path / "d"), "import", str(src), "--mapping", m, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["rejected_by_reason"] == {
        "timestamp: future (later than the clock plus max_future_skew_hours)": 1}
    m72 = str(write_mapping(tmp_path / "m72.yaml", max_future_skew_hours=72))
    r = _run("--data-dir", str(tmp_path / "e"), "import", str(src), "--mapping", m72, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["rejected"] == 0
    r = _run("--data-dir", str(tmp_path / "f"), "import", str(src), "--mapping", m72, "--max-future-skew-hours", "1",
             "--json")  # fmt: skip
    assert r.exit_code == 0 and json.loads(r.stdout)["rejected"] == 1
    assert json.loads(r.stdout)["max_future_skew_hours"] == 1
    for bad, says in (("-1", "a number of hours 0..876,000 is required"), ("nan", "got nan"),
                      ("2d", "Invalid value for '--max-future-skew-hours'")):
        r = _run("--data-dir", str(tmp_path / "g"), "import", str(src), "--mapping", m, "--max-future-skew-hours", bad)
        text = " ".join(r.output.split())
        assert r.exit_code == 2 and "--max-future-skew-hours" in text and says in text, text
        assert "Traceback" not in r.output and not (tmp_path / "g").exists()
    bad = write_mapping(tmp_path / "bad.yaml", max_future_skew_hours="2 days")
    r = _run("--data-dir", str(tmp_path / "g"), "import", str(src), "--mapping", str(bad))
    assert r.exit_code == 1 and "mapping bad.yaml: max_future_skew_hours: a number of hours" in r.output
