"""An emulated network link for ssh's ProxyCommand: stdin/stdout <-> TCP to HOST:PORT.

Usage: python link_relay.py [--rtt-ms MS] [--rate-mbit MBIT] HOST PORT

Each direction is a timed queue: a chunk read at time t is written at t + RTT/2 (with a
rate cap, after the bottleneck has serialised it: start = max(t, end of the previous
chunk), end = start + bytes/rate, written at end + RTT/2). Order and bytes are kept; the
queue is unbounded, so in-flight data is limited only by the peers' own windows (for ssh:
its channel windows), like a TCP connection whose window covers the path. The TCP
handshake is emulated too: nothing reaches the server before 1 RTT (the client's first
segment after SYN/SYN-ACK) and nothing comes back before 1.5 RTT (the server accepted
then). Threads and `time.sleep` (clock_nanosleep), not an event loop: asyncio's epoll
waits round to whole milliseconds.
"""

import argparse
import collections
import os
import socket
import sys
import threading
import time

# Under a rate cap a chunk is delivered whole once serialised: small chunks keep that
# lumping below 0.5 ms at 1 Gbit/s.
CHUNK = 64 * 1024
CAPPED_CHUNK = 16 * 1024


class Direction:
    """One way through the link: a reader thread stamps chunks, a writer sends them on time."""

    def __init__(self, name, read, write, finish, one_way, rate, not_before):
        self.name = name
        self.read = read
        self.write = write
        self.finish = finish
        self.one_way = one_way
        self.rate = rate  # bytes per second, or None
        self.not_before = not_before
        self.busy_until = 0.0
        self.queue = collections.deque()
        self.ready = threading.Condition()
        self.done = threading.Event()

    def start(self):
        threading.Thread(target=self._read_loop, daemon=True).start()
        threading.Thread(target=self._write_loop, daemon=True).start()

    def _due(self, size):
        now = max(time.monotonic(), self.not_before)
        if self.rate is None:
            return now + self.one_way
        start = max(now, self.busy_until)
        self.busy_until = start + size / self.rate
        return self.busy_until + self.one_way

    def _read_loop(self):
        chunk = CHUNK if self.rate is None else CAPPED_CHUNK
        while True:
            try:
                data = self.read(chunk)
            except OSError:
                data = b""
            due = self._due(len(data))
            with self.ready:
                self.queue.append((due, data))
                self.ready.notify()
            if not data:
                return

    def _write_loop(self):
        try:
            while True:
                with self.ready:
                    while not self.queue:
                        self.ready.wait()
                    due, data = self.queue.popleft()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                if not data:
                    break
                self.write(data)
        except OSError:
            pass
        finally:
            try:
                self.finish()
            except OSError:
                pass
            self.done.set()


def write_fd(fd):
    def write(data):
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]

    return write


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtt-ms", type=float, default=0.0)
    parser.add_argument("--rate-mbit", type=float, default=None)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    args = parser.parse_args()
    rtt = args.rtt_ms / 1000
    rate = args.rate_mbit * 1e6 / 8 if args.rate_mbit else None

    start = time.monotonic()
    sock = socket.create_connection((args.host, args.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    up = Direction(
        "up",
        lambda n: os.read(stdin, n),
        sock.sendall,
        lambda: sock.shutdown(socket.SHUT_WR),
        rtt / 2,
        rate,
        start + rtt,
    )
    down = Direction(
        "down",
        sock.recv,
        write_fd(stdout),
        lambda: os.close(stdout),
        rtt / 2,
        rate,
        start + 1.5 * rtt,
    )
    up.start()
    down.start()
    # ssh ends the connection by closing our stdin or our stdout's reader; the server by
    # closing the socket. Either way, once data stops one way the other soon follows.
    down.done.wait()
    up.done.wait(timeout=max(1.0, 2 * rtt))
    sock.close()


if __name__ == "__main__":
    main()
