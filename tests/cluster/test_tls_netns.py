"""TLS for engines on other hosts (issue 11, item 8): a controller started with `--tls` binds an address on a
veth pair; an engine runs in a second network namespace (as a remote host would) with only the engine
connection file, and reaches the controller over TLS with the certificate pinned by fingerprint. A
client with a wrong pin is refused before the HMAC handshake; a plaintext peer gets nothing from the
TLS port. The namespace and veth pair are made here (root) and removed in a finalizer."""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import socket
import subprocess
import sys
import time

import pytest

from real_cluster import Client
from real_cluster.error import AuthenticationError
from real_cluster.profile import CLIENT_FILE, ENGINE_FILE, read_connection_file, write_connection_file

pytestmark = pytest.mark.timeout(180)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def netns():
    """(namespace name, host address, address inside the namespace) on a fresh veth pair; removed after."""
    if shutil.which("ip") is None or subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        pytest.skip("`ip netns` is not available here")
    tag = f"{os.getpid() % 10000:04d}{random.randrange(16**3):03x}"
    ns, host_if, ns_if = f"sl11a{tag}", f"v11a{tag}a", f"v11a{tag}b"
    net = f"10.200.{random.randrange(256)}.{4 * random.randrange(64)}"
    base = net.rsplit(".", 1)
    host_ip, ns_ip = f"{base[0]}.{int(base[1]) + 1}", f"{base[0]}.{int(base[1]) + 2}"
    _ip("netns", "add", ns)
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _ip("link", "set", ns_if, "netns", ns)
        _ip("addr", "add", f"{host_ip}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", ns, "addr", "add", f"{ns_ip}/30", "dev", ns_if)
        _ip("-n", ns, "link", "set", ns_if, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        yield ns, host_ip, ns_ip
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def test_an_engine_in_another_namespace_joins_over_tls(netns, make_cluster, tmp_path):
    # (netns first: its veth outlives the cluster, so the cluster stops over a live address, not in a 10 s timeout)
    ns, host_ip, ns_ip = netns
    cluster = make_cluster(0, controller_args=["--tls", "--ip", host_ip])
    rc = cluster.client
    einfo = read_connection_file(cluster.dir / "security" / ENGINE_FILE)
    assert einfo.host == host_ip and einfo.tls_fingerprint.startswith("sha256:")
    remote = tmp_path / "remote"                          # what an operator copies to the other host
    remote.mkdir()
    shutil.copy(cluster.dir / "security" / ENGINE_FILE, remote / ENGINE_FILE)
    log = remote / "engine.log"
    engine = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "real_cluster.engine", "--file",
                               str(remote / ENGINE_FILE), "--log", str(log)], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        rc.wait_for_engines(1, timeout=60)
        v = rc.load_balanced_view()
        assert v.map_sync(abs, range(-20, 0)) == list(range(20, 0, -1))
        ar = v.apply_async(socket.gethostname)
        ar.get(30)
        assert ar.engine_id == rc.ids[0]
        clog = (cluster.dir / "log" / "controller.log").read_text()
        assert f"authenticated engine from {ns_ip}:" in clog      # it came through the veth pair
        # a client holding a file with another pin refuses the controller before proving its key
        forged = tmp_path / "forged.json"
        info = read_connection_file(cluster.dir / "security" / CLIENT_FILE)
        write_connection_file(forged, dataclasses.replace(info, tls_fingerprint="sha256:" + "0" * 64))
        with pytest.raises(AuthenticationError, match="not the pinned"):
            Client(forged, timeout=10)
        # a plaintext peer gets no challenge from the TLS port
        s = socket.create_connection((host_ip, info.port), timeout=5)
        s.sendall(b"\x00\x00\x00\x10" + b"\x00" * 16)
        s.settimeout(10)
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b""
        assert b"hello" not in data
        s.close()
        assert v.apply_sync(abs, -7) == 7
        big = b"x" * 3_000_000                  # the client writes it over TLS one record at a time (client_link.py)
        assert v.map_sync(len, [big] * 4) == [len(big)] * 4
    finally:
        engine.terminate()
        try:
            engine.wait(15)
        except subprocess.TimeoutExpired:
            engine.kill()
            engine.wait(5)
