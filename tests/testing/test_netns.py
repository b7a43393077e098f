"""Network namespaces as hosts: two namespaces reach services on the bridge address,
not each other's loopback, and nothing is left behind."""

from __future__ import annotations

import json
import socket
import sys
import threading

import pytest

from pipeline.testing.netns import HostNetwork, TcpForwarder, unavailable
from tests.store.conftest import PG_URLS, pg_url

PROBE = r"""
import json, socket, sys
import psycopg
host, pg_port, echo_port, pg_user = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
out = {}
with psycopg.connect(host=host, port=pg_port, user=pg_user, dbname="test", connect_timeout=10) as conn:
    out["pg"] = conn.execute("SELECT 41 + 1").fetchone()[0]
with socket.create_connection((host, echo_port), timeout=10) as s:
    s.sendall(b"ping")
    out["echo"] = s.recv(64).decode()
try:  # the machine's loopback is not this namespace's loopback
    socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
    out["own_loopback_pg"] = True
except OSError:
    out["own_loopback_pg"] = False
print(json.dumps(out))
"""


@pytest.fixture
def net():
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    with HostNetwork(hosts=2) as n:
        yield n
    assert n.leftovers() == []


def _echo_server(host: str) -> tuple[socket.socket, int]:
    srv = socket.create_server((host, 0))

    def serve() -> None:
        while True:
            try:
                c, addr = srv.accept()
            except OSError:
                return
            with c:
                data = c.recv(64)
                c.sendall(data + f" from {addr[0]}".encode())

    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


def test_two_namespaces_reach_postgres_and_a_port_on_the_host_address(net) -> None:
    url = pg_url()
    if url is None:
        pytest.skip(f"no PostgreSQL server answers at {PG_URLS}")
    user = url.split("//", 1)[1].split("@", 1)[0]
    srv, echo_port = _echo_server(net.host_address)  # bound on the bridge address only
    try:
        with TcpForwarder(net.host_address, ("127.0.0.1", 5432)) as pg:
            results = []
            for h in net.hosts:
                res = h.run(
                    [
                        sys.executable,
                        "-c",
                        PROBE,
                        net.host_address,
                        str(pg.port),
                        str(echo_port),
                        user,
                    ]
                )
                assert res.returncode == 0, res.stderr
                results.append(json.loads(res.stdout))
    finally:
        srv.close()
    for h, r in zip(net.hosts, results, strict=True):
        assert r["pg"] == 42
        assert r["echo"] == f"ping from {h.address}"  # seen as coming from that host
        assert r["own_loopback_pg"] is False
    assert len({h.address for h in net.hosts}) == 2


def test_kill_ends_a_hosts_processes_and_close_removes_everything() -> None:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    n = HostNetwork(hosts=2)
    try:
        p = n.hosts[0].popen([sys.executable, "-c", "import time; time.sleep(600)"])
        q = n.hosts[1].popen([sys.executable, "-c", "import time; time.sleep(600)"])
        n.hosts[0].kill()  # host 0 dies
        assert p.poll() == -9 or p.returncode == -9
        assert q.poll() is None  # host 1 lives on
        links = n.hosts[0].run(["ip", "-o", "link", "show"]).stdout.splitlines()
        names = {line.split()[1].rstrip(":").split("@")[0] for line in links}
        assert names == {"lo", f"cv{n.tag}0n"}  # its own loopback and its veth, nothing else
    finally:
        n.close()
    assert q.returncode is not None
    assert n.leftovers() == []


MIRROR_PROBE = r"""
import json, sys
import psycopg
from pipeline.log.kafka import KafkaLog
bootstrap, pg_user = sys.argv[1], sys.argv[2]
log = KafkaLog(bootstrap, "events", 2)
counts = {p: len(log.fetch_values(p, 0)[0]) for p in range(2)}
log.close()
with psycopg.connect(host="127.0.0.1", port=5432, user=pg_user, dbname="test", connect_timeout=10) as c:
    pg = c.execute("SELECT 1").fetchone()[0]
print(json.dumps({"counts": counts, "pg": pg}))
"""


def test_mirrored_loopback_gives_namespaces_the_mock_cluster_and_postgres(net) -> None:
    """Inside each namespace the same URLs work: the mock cluster's advertised
    127.0.0.1:<port> brokers and PostgreSQL on 127.0.0.1:5432."""
    from pipeline.log.kafka import KafkaLog
    from pipeline.testing import MockCluster

    url = pg_url()
    if url is None:
        pytest.skip(f"no PostgreSQL server answers at {PG_URLS}")
    user = url.split("//", 1)[1].split("@", 1)[0]
    with MockCluster() as mock:
        mock.create_topic("events", 2)
        log = KafkaLog(mock.bootstrap, "events", 2)
        written = log.produce([(f"u{i}".encode(), b'{"n": %d}' % i) for i in range(50)])
        log.close()
        expect = {str(p): end - first for p, (first, end) in written.items()}
        ports = [int(b.rsplit(":", 1)[1]) for b in mock.bootstrap.split(",")]
        net.mirror_loopback([*ports, 5432])
        for h in net.hosts:
            res = h.run([sys.executable, "-c", MIRROR_PROBE, mock.bootstrap, user], timeout=120)
            assert res.returncode == 0, res.stderr[-2000:]
            out = json.loads(res.stdout)
            assert out == {"counts": {p: expect.get(p, 0) for p in ("0", "1")}, "pg": 1}
        assert sum(expect.values()) == 50
