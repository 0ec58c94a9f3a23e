"""Client of bench/header_relay.ts: pyarrow's Flight client (C++) on each path,
the paths taken in a rotated order each round.

Usage: python relay_bench.py '<JSON config>'; prints one JSON object on stdout:
{"figures": {name: {path: [per-round values]}}}.

Config: "paths" {name: {"url", "token" (sent explicitly, or null)}}, "stream"
{"channels", "start"}, "seconds" per follow, "rounds", "calls" (GetFlightInfo
calls per path and round), "bytes" (stream at least this much per path and
round; 0: one follow).
"""

import json
import math
import sys
import time

import pyarrow.flight as flight

REUSE = "arrow-flight-reuse-connection://?"


def descriptor(request, **args):
    return flight.FlightDescriptor.for_command(
        json.dumps({"request": request, "args": args}).encode()
    )


COUNT = descriptor(
    "Count", pattern=".*", data_type=[], min_rate=0, max_rate=4294967295,
    publisher=[], time=None,
)


def quantile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


class Path:
    def __init__(self, url, token):
        self.client = flight.connect(url)
        headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
        self.options = flight.FlightCallOptions(headers=headers)
        self.others = {}

    def client_for(self, location):
        uri = location.uri.decode()
        if uri == REUSE:
            return self.client
        if uri not in self.others:
            self.others[uri] = flight.connect(uri)
        return self.others[uri]

    def follow(self, stream, seconds):
        start = stream["start"]
        info = self.client.get_flight_info(
            descriptor("Stream", channels=stream["channels"], start=start,
                       end=start + int(seconds * 1e9)),
            self.options,
        )
        total = 0
        for endpoint in info.endpoints:
            reader = self.client_for(endpoint.locations[0]).do_get(
                endpoint.ticket, self.options)
            while True:
                try:
                    total += reader.read_chunk().data.nbytes
                except StopIteration:
                    break
        return total

    def latency(self, calls):
        ms = []
        for _ in range(calls):
            start = time.perf_counter()
            self.client.get_flight_info(COUNT, self.options)
            ms.append((time.perf_counter() - start) * 1000)
        return quantile(ms, 0.5)

    def close(self):
        for client in [self.client, *self.others.values()]:
            client.close()


def main():
    config = json.loads(sys.argv[1])
    names = list(config["paths"])
    paths = {name: Path(**config["paths"][name]) for name in names}
    figures = {"mbps": {n: [] for n in names}, "infoP50Ms": {n: [] for n in names}}
    for path in paths.values():  # warm every connection once
        path.follow(config["stream"], 1)
    for round_ in range(config["rounds"]):
        shift = round_ % len(names)
        order = names[shift:] + names[:shift]
        if round_ % 2:
            order.reverse()
        for name in order:
            path = paths[name]
            if config["calls"]:
                figures["infoP50Ms"][name].append(path.latency(config["calls"]))
            total = 0
            start = time.perf_counter()
            while True:
                total += path.follow(config["stream"], config["seconds"])
                if total >= config["bytes"]:
                    break
            figures["mbps"][name].append(total / (time.perf_counter() - start) / 1e6)
    for path in paths.values():
        path.close()
    json.dump({"figures": figures}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
