"""Several "hosts" on one machine: Linux network namespaces joined by a bridge.

The building block of multi-host tests (issue 20): each :class:`NetnsHost` is a network
namespace with its own loopback and one veth interface on a private /24; the other ends
of the veths sit on a bridge in the machine's own namespace, which holds the ``.1``
address (:attr:`HostNetwork.host_address`). A process started with
:meth:`NetnsHost.popen` sees only its namespace: ``127.0.0.1`` is *its* loopback, and
services of the machine are reached at ``host_address`` -- as a worker on another host
reaches a database server.

A service that listens on 127.0.0.1 only (PostgreSQL's default) is exposed on the bridge
with :class:`TcpForwarder`. Everything is torn down on :meth:`HostNetwork.close` (also
on exit of the ``with`` block, and at interpreter exit as a last resort): processes
started in the namespaces are killed, namespaces and the bridge deleted.

Needs root (``CAP_NET_ADMIN``) and iproute2's ``ip``; :func:`unavailable` says why not,
for ``pytest.skip``::

    reason = unavailable()
    if reason:
        pytest.skip(reason)
    with HostNetwork(hosts=2) as net, TcpForwarder(net.host_address, ("127.0.0.1", 5432)) as pg:
        out = net.hosts[0].run([sys.executable, "-c", "..."], timeout=60)

:meth:`HostNetwork.mirror_loopback` goes further: the machine's ``127.0.0.1:<port>`` becomes
reachable as ``127.0.0.1:<port>`` *inside* every namespace too (a forwarder process in
each namespace -> the bridge -> a forwarder here). That is what librdkafka's mock
cluster needs -- it advertises its brokers as ``127.0.0.1:<port>``, so a client in a
namespace follows the metadata to its own loopback -- and it lets a worker in a
namespace use the very same Kafka and PostgreSQL URLs as the rest of the test.

``python -m pipeline.testing.netns forward LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT``
is the forwarder process (prints ``ready <port>``, runs until stdin closes or SIGTERM).
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import ChurnError

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class NetnsError(ChurnError):
    """Creating or using the test network failed; the message names the command."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and res.returncode != 0:
        raise NetnsError(f"`ip {' '.join(args)}` failed: {res.stderr.strip() or res.returncode}")
    return res


def unavailable() -> str | None:
    """Why namespaces cannot be used here (None: they can)."""
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed (apt-get install iproute2)"
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN); run the test as root"
    probe = f"churn-probe-{uuid.uuid4().hex[:6]}"
    res = _ip("netns", "add", probe, check=False)
    if res.returncode != 0:
        return f"`ip netns add` is not permitted here: {res.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


@dataclass
class NetnsHost:
    """One namespace ("host"): its name and its address on the bridge's /24."""

    name: str
    address: str
    procs: list[subprocess.Popen[Any]] = field(default_factory=list)
    infra: list[subprocess.Popen[Any]] = field(default_factory=list)  # forwarders: survive kill()

    def argv(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside the namespace (killed by :meth:`HostNetwork.close`)."""
        kwargs.setdefault("start_new_session", True)  # its own process group, killed whole
        proc = subprocess.Popen(self.argv(argv), **kwargs)
        self.procs.append(proc)
        return proc

    def run(
        self, argv: Sequence[str], timeout: float = 60, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the namespace to completion; output captured as text."""
        return subprocess.run(
            self.argv(argv), capture_output=True, text=True, timeout=timeout, **kwargs
        )

    def kill(self) -> None:
        """SIGKILL every process started here (a host dying)."""
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, 9)
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)
        self.procs.clear()


class HostNetwork:
    """``hosts`` namespaces on a fresh bridge with a private /24 (context manager)."""

    def __init__(self, hosts: int = 2, *, seed: int | None = None) -> None:
        if not (isinstance(hosts, int) and 1 <= hosts <= 200):
            raise ValueError(f"hosts={hosts!r}: between 1 and 200 namespaces")
        self.tag = uuid.uuid4().hex[:6]
        self.bridge = f"chb{self.tag}"  # interface names are at most 15 characters
        self.subnet = _free_subnet(random.Random(seed if seed is not None else self.tag))
        net = list(self.subnet.hosts())
        self.host_address = str(net[0])
        self.hosts = [NetnsHost(f"churn-{self.tag}-{i}", str(net[i + 1])) for i in range(hosts)]
        self._veths: list[str] = []
        self._forwarders: list[TcpForwarder] = []
        self._closed = False
        self._atexit = atexit.register(self.close)
        try:
            self._create()
        except BaseException:
            self.close()
            raise

    def _create(self) -> None:
        prefix = self.subnet.prefixlen
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.host_address}/{prefix}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i, h in enumerate(self.hosts):
            outer, inner = f"cv{self.tag}{i}h", f"cv{self.tag}{i}n"
            _ip("netns", "add", h.name)
            _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
            self._veths.append(outer)
            _ip("link", "set", outer, "master", self.bridge)
            _ip("link", "set", outer, "up")
            _ip("link", "set", inner, "netns", h.name)
            _ip("-n", h.name, "addr", "add", f"{h.address}/{prefix}", "dev", inner)
            _ip("-n", h.name, "link", "set", inner, "up")
            _ip("-n", h.name, "link", "set", "lo", "up")

    def mirror_loopback(self, ports: Sequence[int]) -> None:
        """Make the machine's ``127.0.0.1:<port>`` answer at ``127.0.0.1:<port>`` inside every
        namespace, for each of ``ports`` (PostgreSQL, the mock cluster's brokers)."""
        for port in ports:
            fwd = TcpForwarder(self.host_address, ("127.0.0.1", int(port)))
            self._forwarders.append(fwd)
            for h in self.hosts:
                proc = subprocess.Popen(
                    h.argv([sys.executable, "-m", "pipeline.testing.netns", "forward",
                            "127.0.0.1", str(port), self.host_address, str(fwd.port)]),
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                    start_new_session=True, cwd=_ROOT,
                )  # fmt: skip
                h.infra.append(proc)
                line = proc.stdout.readline() if proc.stdout else ""
                if not line.startswith("ready"):
                    raise NetnsError(
                        f"the forwarder of port {port} in namespace {h.name} did not start "
                        f"(exit {proc.poll()}): is port {port} free there?"
                    )

    def __enter__(self) -> HostNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill the namespaces' processes, delete namespaces, veths and the bridge."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        for h in self.hosts:
            h.kill()
            h.procs, h.infra = h.infra, []
            h.kill()
            _ip("netns", "del", h.name, check=False)  # takes its veth end (and the peer) along
        for v in self._veths:
            _ip("link", "del", v, check=False)  # already gone unless the move failed
        _ip("link", "del", self.bridge, check=False)
        for f in self._forwarders:
            f.close()

    def leftovers(self) -> list[str]:
        """Namespaces or links of this network that still exist (for tests)."""
        names = _ip("netns", "list", check=False).stdout
        links = _ip("-o", "link", "show", check=False).stdout
        out = [h.name for h in self.hosts if h.name in names]
        return out + [
            n for n in (self.bridge, *self._veths) if f" {n}:" in links or f" {n}@" in links
        ]


def _free_subnet(rng: random.Random) -> ipaddress.IPv4Network:
    """A 10.x.y.0/24 not overlapping any address on this machine."""
    used = [
        ipaddress.ip_interface(word).network
        for line in _ip("-o", "-4", "addr", "show", check=False).stdout.splitlines()
        for word in line.split()
        if "/" in word and word[0].isdigit()
    ]
    for _ in range(200):
        net = ipaddress.ip_network(f"10.{rng.randrange(200, 255)}.{rng.randrange(0, 256)}.0/24")
        if not any(net.overlaps(u) for u in used):
            return net
    raise NetnsError("no free 10.x.y.0/24 found for the test network")


class TcpForwarder:
    """Accepts on ``(listen_host, listen_port)`` and relays each connection to ``target``.

    Exposes a service bound to 127.0.0.1 (PostgreSQL's default) on the bridge address.
    ``listen_port=0`` picks a free port (:attr:`port`). Threads, not speed: test traffic."""

    def __init__(self, listen_host: str, target: tuple[str, int], listen_port: int = 0) -> None:
        self.target = target
        self._sock = socket.create_server((listen_host, listen_port), reuse_port=False)
        self.host, self.port = self._sock.getsockname()[:2]
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True, name="fwd-accept")]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                t = threading.Thread(target=_pump, args=(a, b), daemon=True, name="fwd-pump")
                t.start()
                self._threads.append(t)

    def __enter__(self) -> TcpForwarder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()
        for t in self._threads:
            t.join(timeout=5)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def main(argv: Sequence[str] | None = None) -> int:
    """``forward LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT``: relay until stdin closes."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 5 or args[0] != "forward":
        print(__doc__.splitlines()[0], file=sys.stderr)
        print(
            "usage: python -m pipeline.testing.netns forward LHOST LPORT THOST TPORT",
            file=sys.stderr,
        )
        return 2
    fwd = TcpForwarder(args[1], (args[3], int(args[4])), listen_port=int(args[2]))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print(f"ready {fwd.port}", flush=True)
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    done.wait()
    fwd.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
