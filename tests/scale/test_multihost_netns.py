"""Proof with several hosts on one machine (issue 20): `churn stream-worker` processes in two
network namespaces (pipeline.testing.netns), each with its OWN temporary data dir, against
librdkafka's mock cluster and the PostgreSQL server of this machine; one namespace's worker
is SIGKILLed mid-stream; the survivor takes its partitions over (after the lease TTL) and the
final scores and offsets equal an uninterrupted single-host run, row for row.

Reaching the machine's services from a namespace: PostgreSQL (127.0.0.1:5432) and the mock
brokers listen on this machine's loopback only, and the brokers advertise 127.0.0.1:<port>,
so :meth:`HostNetwork.mirror_loopback` runs a TCP forwarder on the bridge address here plus
one on 127.0.0.1:<port> inside each namespace: the workers use the very same URLs as a host
would, and their traffic crosses the veth/bridge. The MLflow registry is a SQLite file the
test writes (a tracking server would be an http:// URI; starting one costs ~30 s and 750 MB).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from pipeline.log.kafka import KafkaLog
from pipeline.store import Store
from pipeline.stream.state_pg import PgStateBackend
from pipeline.testing.netns import HostNetwork, unavailable
from tests.needs import unavailable as need
from tests.stream.helpers import scores

from .conftest import PARTITIONS, kafka_topic

CHURN = str(Path(sys.executable).with_name("churn"))
LEASE_TTL_S = 4.0


def worker_argv(tmp: Path, name: str, topic: str, bootstrap: str, store_url: str, registry_uri: str,
                rate: float) -> list[str]:  # fmt: skip
    return [CHURN, "--data-dir", str(tmp / name / "data"), "--topic", topic, "stream-worker",
            "--kafka-bootstrap", bootstrap, "--store-url", store_url, "--tracking-uri", registry_uri,
            "--group", "test", "--member", name, "--cache-dir", str(tmp / name / "cache"),
            "--lease-ttl", str(LEASE_TTL_S), "--heartbeat-interval", "0.5", "--checkpoint-interval", "0.5",
            "--batch-size", "100", "--max-events-per-s", str(rate)]  # fmt: skip


def owners(state: PgStateBackend) -> dict[int, str | None]:
    with state.engine.connect() as conn:
        now = state.now(conn)
    return {p: (o if o is not None and exp > now else None) for p, (o, _e, exp) in state.owners().items()}


@pytest.mark.slow
def test_sigkill_one_host_the_survivor_takes_over_and_ends_equal_to_one_host(tmp_path, mock, pg_db, registry_uri,
                                                                            history):
    reason = unavailable()
    if reason:
        need(f"network namespaces are unavailable ({reason})", "run the multi-host test as root with iproute2")
    values, want, ends = history
    topic = kafka_topic(mock, values)
    ports = sorted({5432, *(int(b.rsplit(":", 1)[1]) for b in mock.bootstrap.split(","))})
    rate = sum(ends.values()) / 2 / 20.0  # each worker alone would need ~20 s for its half
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURN_")} | {
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    state = PgStateBackend(pg_db, topic, "test", owner="observer")
    with HostNetwork(hosts=2) as net, KafkaLog(mock.bootstrap, topic, PARTITIONS, create=False) as log:
        net.mirror_loopback(ports)
        names = ["host0", "host1"]
        procs = {}
        for h, name in zip(net.hosts, names, strict=True):
            (tmp_path / name).mkdir()
            out = open(tmp_path / name / "worker.log", "wb")  # noqa: SIM115 - closed with the test dir
            procs[name] = h.popen(worker_argv(tmp_path, name, topic, mock.bootstrap, pg_db, registry_uri, rate),
                                  stdout=out, stderr=subprocess.STDOUT, env=env)

        def logs() -> str:
            return "\n".join(f"--- {n}\n" + (tmp_path / n / "worker.log").read_text()[-3000:] for n in names)

        # both hosts joined and own their fair share, and the doomed one has made progress
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            own = owners(state)
            mine = [p for p, o in own.items() if o == "host1"]
            committed = log.committed("test")
            if (sorted(own.values(), key=str) == ["host0", "host0", "host1", "host1"]
                    and all(0 < committed.get(p, 0) < ends[p] for p in mine)):  # fmt: skip
                break
            assert all(p.poll() is None for p in procs.values()), logs()
            time.sleep(0.2)
        else:
            pytest.fail(f"the hosts never shared the group mid-stream: {owners(state)}\n{logs()}")

        at_kill = log.committed("test")
        t_kill = time.monotonic()
        net.hosts[1].kill()  # SIGKILL every process of that namespace: the host died
        failover = None
        while time.monotonic() - t_kill < 90:
            own, committed = owners(state), log.committed("test")
            if all(own.get(p) == "host0" for p in mine) and all(
                committed.get(p, 0) > at_kill.get(p, 0) or committed.get(p, 0) == ends[p] for p in mine
            ):
                failover = time.monotonic() - t_kill
                break
            time.sleep(0.1)
        assert failover is not None, f"host0 never took over {mine}: {owners(state)}\n{logs()}"
        print(f"multihost_failover_seconds={failover:.2f} (lease TTL {LEASE_TTL_S:g} s)")

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and log.committed("test") != ends:
            assert procs["host0"].poll() is None, logs()
            time.sleep(0.3)
        assert log.committed("test") == ends, logs()
        procs["host0"].send_signal(signal.SIGTERM)  # a clean stop: checkpoint, release, leave
        assert procs["host0"].wait(timeout=60) == 0, logs()
        final = owners(state)
    assert all(o is None for o in final.values()), final  # the survivor released every lease
    assert {p: state.read(p).meta.next_offset for p in range(PARTITIONS)} == ends
    state.close()
    with Store(pg_db) as store:
        pd.testing.assert_frame_equal(scores(store), want)  # row for row, as one uninterrupted host
    for name in names:  # separate private dirs: nothing of the state was kept in files
        assert not list((tmp_path / name).rglob("*.ckpt")) and not list((tmp_path / name).rglob("*.lock"))
