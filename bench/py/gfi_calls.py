"""Per-call GetFlightInfo (Count) timings on several paths, alternating call by call.

Usage: python gfi_calls.py '{"paths": {name: url}, "calls": N, "warm": N}'; prints
{"ms": {name: [per-call ms]}} on stdout. Every call of every path, not a p50: for
distributions (is the added time on every call, or some calls waiting on the link).
"""

import json
import sys
import time

import pyarrow.flight as flight

from flight_bench import COUNT, rotated


def main():
    config = json.loads(sys.argv[1])
    names = list(config["paths"])
    clients = {name: flight.connect(url) for name, url in config["paths"].items()}
    for client in clients.values():
        for _ in range(config.get("warm", 20)):
            client.get_flight_info(COUNT)
    ms = {name: [] for name in names}
    gap = config.get("gapMs", 0) / 1000
    for i in range(config["calls"]):
        for name in rotated(names, i):
            start = time.perf_counter()
            clients[name].get_flight_info(COUNT)
            ms[name].append((time.perf_counter() - start) * 1000)
            if gap:
                time.sleep(gap)
    for client in clients.values():
        client.close()
    print(json.dumps({"ms": ms}))


if __name__ == "__main__":
    main()
