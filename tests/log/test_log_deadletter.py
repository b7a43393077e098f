"""Invalid events go to <topic>.dlq with the original bytes and reason; consumption goes on."""

from __future__ import annotations

import base64

from pipeline.events import Session
from pipeline.log import (
    DeadLetters,
    dead_letter_log,
    decode_batch,
    decode_values,
    parse_dead_letter,
)

BAD_JSON = b'{"type":"session",'
BAD_FIELD = b'{"type":"payment","event_id":"e","user_id":"u","ts":"2026-01-01T00:00:00Z","schema_version":1,"amount":-3,"plan":"basic"}'
NOT_UTF8 = b"\xff\xfe{oops"


def test_decode_batch_routes_failures_and_keeps_going(make_log, make_event, clock):
    log = make_log(num_partitions=2)
    good = [make_event(i) for i in range(4)]
    log.append(1, [good[0], BAD_JSON, good[1], BAD_FIELD, good[2], NOT_UTF8, good[3]])
    dlq_log = dead_letter_log(log)
    assert dlq_log.name == "events.dlq" and dlq_log.num_partitions == 2
    dlq = DeadLetters(dlq_log, clock, source_topic=log.name)

    events, n_dead = decode_batch(log.fetch(1, 0), dlq)
    assert n_dead == 3 and dlq.count == 3
    assert [e.event_id for e in events] == ["e0", "e1", "e2", "e3"]
    assert all(isinstance(e, Session) or e.type == "payment" for e in events)

    letters = [parse_dead_letter(r.value) for r in dlq_log.fetch(1, 0)]  # same partition
    assert [(d.source_partition, d.source_offset) for d in letters] == [(1, 1), (1, 3), (1, 5)]
    assert [d.original() for d in letters] == [BAD_JSON, BAD_FIELD, NOT_UTF8]
    assert letters[0].value_encoding == "utf-8" and letters[0].value == BAD_JSON.decode()
    assert (
        letters[2].value_encoding == "base64"
        and letters[2].value == base64.b64encode(NOT_UTF8).decode()
    )
    assert letters[1].field == "$.amount" and letters[1].source_topic == "events"
    assert all(d.at == clock.now() for d in letters)
    assert sum(dlq.by_reason.values()) == 3
    assert dlq_log.end_offset(0) == 0


def test_decode_values_fast_path_matches(make_log, make_event, clock):
    log = make_log(num_partitions=1)
    log.append(0, [make_event(0), BAD_FIELD, make_event(2)])
    dlq = DeadLetters(dead_letter_log(log), clock, log.name)
    values, nxt = log.fetch_values(0, 0)
    events, n_dead = decode_values(0, 0, values, dlq)
    assert (len(events), n_dead, nxt) == (2, 1, 3)
    assert parse_dead_letter(dlq.log.fetch(0, 0)[0].value).source_offset == 1
    clean, none_dead = decode_values(0, 0, [make_event(5)], dlq)
    assert none_dead == 0 and clean[0].event_id == "e5" and dlq.count == 1
