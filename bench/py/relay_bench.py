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
import sys
import time

from flight_bench import Path, latency, rotated


def main():
    config = json.loads(sys.argv[1])
    names = list(config["paths"])
    paths = {name: Path(**config["paths"][name]) for name in names}
    figures = {"mbps": {n: [] for n in names}, "infoP50Ms": {n: [] for n in names}}
    for path in paths.values():  # warm every connection once
        path.follow(config["stream"], 1)
    for round_ in range(config["rounds"]):
        order = rotated(names, round_)
        for name in order:
            path = paths[name]
            if config["calls"]:
                figures["infoP50Ms"][name].append(latency(path, config["calls"])[0])
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
