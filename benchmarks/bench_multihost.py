"""Stand-alone workers on several hosts: failover time and two-host throughput (issue 20).

Hosts are Linux network namespaces on this machine (``pipeline.testing.netns``; needs root,
else plain processes here - printed), each running ONE ``churn stream-worker`` process
with its own temporary data dir, against librdkafka's mock cluster (in this process) and
the PostgreSQL server on 127.0.0.1:5432 (a fresh database per run), reached from the
namespaces through TCP forwarders (``HostNetwork.mirror_loopback``). The champion is a toy
20-tree XGBoost model registered in an MLflow registry (SQLite) and fetched by the workers.

* ``multihost_failover_seconds``: two hosts share a 4-partition topic mid-stream (throttled
  so it is still running); one host is SIGKILLed; seconds until the survivor owns the dead
  host's partitions **and** has committed progress on them (scoring again). Bounded by the
  lease TTL (``--lease-ttl``, default 15 s; quick: 4 s) plus a heartbeat and a checkpoint
  (batches of 100 here, so the throttle's sleeps stay short).
* ``multihost_stream_eps``: two hosts, one worker each, joined and idle on an empty topic;
  the simulated history is produced, and events/s is wall clock from the first produce to
  every partition's offset committed at its end. ``multihost_stream_eps_1_host``: the same
  with one host (the fair baseline: same forwarders, same settings, same run);
  ``multihost_stream_ratio`` = two / one. On a 2-core machine shared with the broker, the
  forwarders and PostgreSQL, the ratio is bounded well below 2.

    python -m benchmarks.bench_multihost [--quick]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

PARTITIONS = 4
CHURN = str(Path(sys.executable).with_name("churn"))
PG_URL = os.environ.get("CHURN_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg() -> str | None:
    from sqlalchemy import create_engine, text

    for url in dict.fromkeys((PG_URL, PG_URL.replace("//postgres@", "//root@"))):
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return url
        except Exception:  # noqa: BLE001 - try the next one
            continue
        finally:
            engine.dispose()
    return None


class Database:
    """A fresh database on the server (dropped on exit)."""

    def __init__(self, server: str) -> None:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        self.server, self.name = server, f"bench_mh_{uuid.uuid4().hex[:8]}"
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        admin.dispose()
        self.url = make_url(server).set(database=self.name).render_as_string(hide_password=False)

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        from sqlalchemy import create_engine, text

        admin = create_engine(self.server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        admin.dispose()


class Hosts:
    """``n`` hosts: namespaces when possible, else this machine; one worker per host."""

    def __init__(self, stack: ExitStack, n: int, ports: list[int], tmp: Path) -> None:
        from pipeline.testing.netns import HostNetwork, unavailable

        self.why_not = unavailable()
        self.net = None
        if self.why_not is None:
            self.net = stack.enter_context(HostNetwork(hosts=n))
            self.net.mirror_loopback(ports)
        self.tmp = tmp
        self.procs: list[subprocess.Popen[Any] | None] = [None] * n

    @property
    def kind(self) -> str:
        return "network namespaces" if self.net else f"processes on this machine ({self.why_not})"

    def start(self, i: int, argv: list[str], env: dict[str, str]) -> None:
        out = open(self.tmp / f"host{i}.log", "ab")  # noqa: SIM115 - the temp dir goes with it
        if self.net is not None:
            self.procs[i] = self.net.hosts[i].popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        else:
            self.procs[i] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                             start_new_session=True)  # fmt: skip

    def kill(self, i: int) -> None:
        if self.net is not None:
            self.net.hosts[i].kill()
        elif (p := self.procs[i]) is not None:
            os.killpg(p.pid, 9)
            p.wait(timeout=30)

    def stop_all(self) -> None:
        import signal

        for p in self.procs:
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            if p is not None:
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, 9)
                    p.wait(timeout=10)


def _argv(tmp: Path, name: str, topic: str, group: str, bootstrap: str, db: str, registry: str,
          ttl: float, rate: float | None, batch: int = 1_000) -> list[str]:  # fmt: skip
    argv = [CHURN, "--data-dir", str(tmp / name / "data"), "--topic", topic, "stream-worker",
            "--kafka-bootstrap", bootstrap, "--store-url", db, "--tracking-uri", registry, "--group", group,
            "--member", name, "--cache-dir", str(tmp / name / "cache"), "--lease-ttl", str(ttl),
            "--checkpoint-interval", "1", "--batch-size", str(batch)]  # fmt: skip
    return argv + (["--max-events-per-s", str(rate)] if rate else [])


def _owners(state: Any) -> dict[int, str | None]:
    with state.engine.connect() as conn:
        now = state.now(conn)
    return {p: (o if o is not None and exp > now else None) for p, (o, _e, exp) in state.owners().items()}


def _wait(cond: Any, limit_s: float, what: str, hosts: Hosts) -> None:
    deadline = time.monotonic() + limit_s
    while not cond():
        if time.monotonic() > deadline:
            logs = "\n".join(p.read_text()[-2000:] for p in sorted(hosts.tmp.glob("host*.log")))
            raise RuntimeError(f"benchmark: {what} did not happen within {limit_s:.0f} s\n{logs}")
        time.sleep(0.05)


def _topic(mock: Any, values: dict[int, list[bytes]] | None) -> str:
    from pipeline.log.kafka import KafkaLog

    topic = f"mh-{uuid.uuid4().hex[:8]}"
    mock.create_topic(topic, PARTITIONS)
    mock.create_topic(f"{topic}.dlq", PARTITIONS)
    if values:
        with KafkaLog(mock.bootstrap, topic, PARTITIONS, create=False) as log:
            _append(log, values)
    return topic


def _append(log: Any, values: dict[int, list[bytes]]) -> None:
    for p, vals in values.items():
        for i in range(0, len(vals), 5_000):
            log.append(p, vals[i : i + 5_000])


def throughput(n_hosts: int, ctx: dict[str, Any]) -> float:
    """Events/s, wall clock from the first produce to every offset committed at the end."""
    from pipeline.log.kafka import KafkaLog
    from pipeline.stream.state_pg import PgStateBackend

    mock, values, ends = ctx["mock"], ctx["values"], ctx["ends"]
    topic = _topic(mock, None)
    with ExitStack() as stack, Database(ctx["server"]) as db:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        hosts = Hosts(stack, n_hosts, ctx["ports"], tmp)
        ctx["kind"] = hosts.kind
        state = PgStateBackend(db.url, topic, "bench", owner="observer")
        stack.callback(state.close)
        log = stack.enter_context(KafkaLog(mock.bootstrap, topic, PARTITIONS, create=False))
        try:
            for i in range(n_hosts):
                hosts.start(i, _argv(tmp, f"h{i}", topic, "bench", mock.bootstrap, db.url, ctx["registry"],
                                     ctx["ttl"], None), ctx["env"])  # fmt: skip
            fair = sorted(f"h{i}" for i in range(n_hosts) for _ in range(PARTITIONS // n_hosts))
            _wait(lambda: sorted(map(str, _owners(state).values())) == fair, 120, "joining", hosts)
            time.sleep(1.0)  # the workers loaded the champion and idle on the empty topic
            t = time.perf_counter()
            _append(log, values)
            _wait(lambda: log.committed("bench") == ends, 600, "catching up", hosts)
            dt = time.perf_counter() - t
        finally:
            hosts.stop_all()
    return sum(ends.values()) / dt


def failover(ctx: dict[str, Any], ttl: float) -> float:
    """Seconds from SIGKILL of one of two hosts to the survivor scoring its partitions."""
    from pipeline.log.kafka import KafkaLog
    from pipeline.stream.state_pg import PgStateBackend

    mock, values, ends = ctx["mock"], ctx["values"], ctx["ends"]
    topic = _topic(mock, values)
    rate = sum(ends.values()) / 2 / (3 * ttl + 20)  # still running well after the takeover
    with ExitStack() as stack, Database(ctx["server"]) as db:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        hosts = Hosts(stack, 2, ctx["ports"], tmp)
        state = PgStateBackend(db.url, topic, "bench", owner="observer")
        stack.callback(state.close)
        log = stack.enter_context(KafkaLog(mock.bootstrap, topic, PARTITIONS, create=False))
        try:
            for i in range(2):
                hosts.start(i, _argv(tmp, f"h{i}", topic, "bench", mock.bootstrap, db.url, ctx["registry"], ttl, rate,
                                     batch=100),
                            ctx["env"])  # fmt: skip

            def sharing() -> bool:
                own, committed = _owners(state), log.committed("bench")
                mine = [p for p, o in own.items() if o == "h1"]
                return len(mine) == 2 and sorted(map(str, own.values())) == ["h0", "h0", "h1", "h1"] and all(
                    0 < committed.get(p, 0) < ends[p] for p in mine)

            _wait(sharing, 120, "two hosts sharing the group mid-stream", hosts)
            mine = [p for p, o in _owners(state).items() if o == "h1"]
            at_kill = log.committed("bench")
            t = time.perf_counter()
            hosts.kill(1)

            def taken() -> bool:
                own, committed = _owners(state), log.committed("bench")
                return all(own.get(p) == "h0" and committed.get(p, 0) > at_kill.get(p, 0) for p in mine)

            _wait(taken, 120, "the takeover", hosts)
            return time.perf_counter() - t
        finally:
            hosts.stop_all()


def run(quick: bool = False) -> dict[str, float]:
    from pipeline.testing.kafka import MockCluster
    from pipeline.testing.registry import register_tiny_champion
    from pipeline.testing.stream import simulated_log

    server = _pg()
    if server is None:
        print(f"multihost: skipped - no PostgreSQL server answers at {PG_URL} (set CHURN_BENCH_PG_URL)")
        return {}
    users, days = (600, 30) if quick else (2_000, 45)
    ttl = 4.0 if quick else 15.0  # quick: a short TTL; full: the default users get
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURN_")} | {
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", "MLFLOW_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as tmp, MockCluster() as mock:
        root = Path(tmp)
        sim = simulated_log(root / "sim" / "log", users=users, days=days, partitions=PARTITIONS, seed=11)
        values = {p: [r.value for r in sim.iter_records(p, 0)] for p in range(PARTITIONS)}
        sim.close()
        registry = f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
        register_tiny_champion(registry)
        ports = sorted({int(server.rsplit(":", 1)[1].split("/")[0]),
                        *(int(b.rsplit(":", 1)[1]) for b in mock.bootstrap.split(","))})  # fmt: skip
        ctx = {"mock": mock, "values": values, "ends": {p: len(v) for p, v in values.items()}, "server": server,
               "registry": registry, "ports": ports, "env": env, "ttl": ttl}  # fmt: skip
        n = sum(ctx["ends"].values())
        one = throughput(1, ctx)
        two = throughput(2, ctx)
        fail = failover(ctx, ttl)
    print(f"multihost: {n:,} simulated events in {PARTITIONS} partitions; hosts = {ctx['kind']}; one "
          "`churn stream-worker` per host (batches of 1,000, toy XGBoost champion from the MLflow registry, "
          "PostgreSQL store + state, Kafka mock in this process); shared 2-core machine: noisy")  # fmt: skip
    print(f"  multihost_stream_eps (2 hosts)   {two:>10,.0f} ev/s   1 host {one:>10,.0f} ev/s   "
          f"ratio {two / one:.2f} (target >= 1.3; wall clock, first produce -> all offsets committed)")
    print(f"  multihost_failover_seconds       {fail:>10.1f} s      (lease TTL {ttl:g} s; target <= 30 s; "
          "SIGKILL -> survivor owns the partitions and committed progress on them)")
    return {"multihost_stream_eps": two, "multihost_stream_eps_1_host": one, "multihost_stream_ratio": two / one,
            "multihost_failover_seconds": fail, "multihost_lease_ttl_s": ttl}  # fmt: skip


if __name__ == "__main__":
    out = run(quick="--quick" in sys.argv)
    for k, v in sorted(out.items()):
        print(f"{k:40s} {v:,.3f}")
