"""How faithful link_relay.py is: its round trip and its throughput, on loopback.

Usage: python link_check.py '<JSON config>'; prints one JSON object on stdout.
Config: {"rttMs": [...], "rateMbit": null or a number, "pings": N, "bytes": N}.

For each round trip: `pings` one-byte round trips through the relay to an echo server
(p50/p99 of their time), and `bytes` streamed from a server through the relay to us
(MB/s from the first byte to the last, the data direction of the bench).
"""

import json
import math
import os
import socket
import subprocess
import sys
import threading
import time

RELAY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "link_relay.py")


def quantile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def serve_once(handle):
    """A loopback server for one connection, handled by `handle(conn)` in a thread."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def run():
        conn, _ = listener.accept()
        listener.close()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            handle(conn)

    threading.Thread(target=run, daemon=True).start()
    return port


def echo(conn):
    while data := conn.recv(65536):
        conn.sendall(data)


def relay(port, rtt_ms, rate_mbit):
    args = [sys.executable, RELAY, "--rtt-ms", str(rtt_ms)]
    if rate_mbit:
        args += ["--rate-mbit", str(rate_mbit)]
    return subprocess.Popen(
        [*args, "127.0.0.1", str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
    )


def pings(rtt_ms, rate_mbit, count):
    child = relay(serve_once(echo), rtt_ms, rate_mbit)
    times = []
    for _ in range(count + 1):
        start = time.perf_counter()
        child.stdin.write(b"x")
        child.stdout.read(1)
        times.append((time.perf_counter() - start) * 1000)
    child.stdin.close()
    child.wait()
    times = times[1:]  # the first one waits out the emulated handshake
    return {"p50Ms": quantile(times, 0.5), "p99Ms": quantile(times, 0.99), "maxMs": max(times)}


def stream(rtt_ms, rate_mbit, total):
    block = b"\0" * 65536

    def send(conn):
        conn.recv(2)  # closing with unread bytes would reset the connection
        sent = 0
        while sent < total:
            conn.sendall(block)
            sent += len(block)

    child = relay(serve_once(send), rtt_ms, rate_mbit)
    child.stdin.write(b"go")
    received = len(child.stdout.read(1))
    start = time.perf_counter()
    while received < total:
        data = child.stdout.read(1 << 20)
        if not data:
            break
        received += len(data)
    seconds = time.perf_counter() - start
    child.stdin.close()
    child.wait()
    return {"MBps": received / 1e6 / seconds, "bytes": received}


def main():
    config = json.loads(sys.argv[1])
    results = {}
    for rtt in config["rttMs"]:
        results[str(rtt)] = {
            "ping": pings(rtt, config.get("rateMbit"), config["pings"]),
            "stream": stream(rtt, config.get("rateMbit"), config["bytes"]),
        }
    json.dump(results, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
