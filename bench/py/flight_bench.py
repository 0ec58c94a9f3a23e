"""Measurement client of the arrakis-proxy bench: pyarrow's Flight client (C++),
the one Arrakis users run, and the real `arrakis` client.

Usage: python flight_bench.py '<JSON config>'; prints one JSON object on stdout.

Modes (config "mode"):

- "compare": every figure on every path, the paths taken in a different order
  each round (rotated, and reversed every other round) so no path always runs
  first or on a warmer machine. Prints {"figures": {name: {path: [per-round
  values]}}}; the bench computes medians and ratios.
- "parallel": k DoGets at once, each for 1/k of the channels, on the clients
  "urls" names (one URL per stream; the same URL k times means k clients of it,
  "shared": true means one client for all k). Prints {"MBps"}: how many
  windows the streams get (one SSH channel per TCP connection).
- "first": the first GetFlightInfo (Count) on each of "paths", just started, with
  a new client: what a user's first call costs (the path's own connections are
  made then). Prints {"firstCallMs": {name: ms}}.

"tokenFiles" ("compare", "first"): {name: file or null} for paths to a deployment
that checks SciTokens. A file: the client sends the token in it itself (explicit
token= of arrakis, a header on pyarrow's calls); null: it sends none and looks for
none (token=False), so only what the path adds reaches the server. Paths not named
there are left to arrakis's own token discovery.
- "stream": one path; follows the Stream FlightInfo's locations until at least
  "bytes" have arrived (for the proxy's peak memory). Prints {"bytes", "seconds"}.
"""

import json
import math
import sys
import time

import pyarrow.flight as flight

REUSE = "arrow-flight-reuse-connection://?"


def descriptor(request, **args):
    cmd = json.dumps({"request": request, "args": args}).encode()
    return flight.FlightDescriptor.for_command(cmd)


COUNT = descriptor(
    "Count",
    pattern=".*",
    data_type=[],
    min_rate=0,
    max_rate=4294967295,
    publisher=[],
    time=None,
)


def stream_descriptor(stream, seconds):
    start = stream["start"]
    return descriptor(
        "Stream",
        channels=stream["channels"],
        start=start,
        end=start + int(seconds * 1e9),
    )


def drain(reader):
    """Reads a DoGet stream to its end; returns the bytes of its record batches."""
    total = 0
    while True:
        try:
            chunk = reader.read_chunk()
        except StopIteration:
            return total
        total += chunk.data.nbytes


def call_options(token):
    """Call options sending `token` as arrakis does (a Bearer header), or nothing."""
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    return flight.FlightCallOptions(headers=headers)


class Path:
    """One way to reach the server: a URL and the clients opened through it;
    with a token, every call sends it (an explicit-token client)."""

    def __init__(self, url, token=None):
        self.url = url
        self.client = flight.connect(url)
        self.options = call_options(token)
        self.others = {}

    def client_for(self, location):
        # What arrakis does (arrakis/flight.py): reuse the initial connection
        # for the reuse-connection location, else connect to locations[0].
        uri = location.uri.decode()
        if uri == REUSE:
            return self.client
        if uri not in self.others:
            self.others[uri] = flight.connect(uri)
        return self.others[uri]

    def follow(self, stream, seconds):
        """GetFlightInfo for a Stream, then DoGet every endpoint at locations[0]."""
        info = self.client.get_flight_info(stream_descriptor(stream, seconds), self.options)
        total = 0
        for endpoint in info.endpoints:
            client = self.client_for(endpoint.locations[0])
            total += drain(client.do_get(endpoint.ticket, self.options))
        return total

    def close(self):
        for client in [self.client, *self.others.values()]:
            client.close()


def quantile(values, q):
    """Nearest rank, as bench/stats.ts."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def rotated(names, round_):
    """The paths' order in a round: rotated each round, reversed every other one."""
    shift = round_ % len(names)
    order = names[shift:] + names[:shift]
    return order[::-1] if round_ % 2 else order


def timed(run):
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def latency(path, calls):
    ms = []
    for _ in range(calls):
        seconds, _ = timed(lambda: path.client.get_flight_info(COUNT, path.options))
        ms.append(seconds * 1000)
    return quantile(ms, 0.5), quantile(ms, 0.9)


def arrakis_fetch(url, stream, seconds, token=None):
    """The real client end to end: arrakis.Client.fetch; returns bytes of the arrays."""
    import arrakis

    start = stream["start"] / 1e9
    block = arrakis.Client(url, token=token).fetch(stream["channels"], start, start + seconds)
    return sum(series.data.nbytes for series in block.values())


def tokens_of(config):
    """{name: token} for "tokenFiles": the token read from its file, or False for none."""
    tokens = {}
    for name, file in config.get("tokenFiles", {}).items():
        if file is None:
            tokens[name] = False
        else:
            with open(file) as f:
                tokens[name] = f.read().strip()
    return tokens


def compare(config):
    names = list(config["paths"])
    tokens = tokens_of(config)
    paths = {name: Path(url, tokens.get(name) or None) for name, url in config["paths"].items()}
    mock = {name: Path(url) for name, url in config.get("mockPaths", {}).items()}
    stream = config["stream"]
    ticket = flight.Ticket(config["mockTicket"].encode()) if mock else None
    figures = {}

    def record(figure, name, value):
        figures.setdefault(figure, {}).setdefault(name, []).append(value)

    # Warm every path: connections, the proxies' forwards and code paths.
    for name, path in paths.items():
        for _ in range(20):
            path.client.get_flight_info(COUNT, path.options)
        path.follow(stream, config["warmSeconds"])
        if config.get("fetchSeconds"):
            arrakis_fetch(path.url, stream, 1, tokens.get(name))
    for path in mock.values():
        drain(path.client.do_get(ticket))

    for round_ in range(config["rounds"]):
        order = rotated(names, round_)
        for name in order:
            path = paths[name]
            p50, p90 = latency(path, config["latencyCalls"])
            record("getFlightInfoP50Ms", name, p50)
            record("getFlightInfoP90Ms", name, p90)
        if config.get("followSeconds"):
            for name in order:
                seconds, total = timed(
                    lambda: paths[name].follow(stream, config["followSeconds"])
                )
                record("followMBps", name, total / 1e6 / seconds)
        if config.get("fetchSeconds"):
            for name in order:
                seconds, total = timed(
                    lambda: arrakis_fetch(
                        paths[name].url, stream, config["fetchSeconds"], tokens.get(name)
                    )
                )
                record("arrakisFetchMBps", name, total / 1e6 / seconds)
        mock_order = [name for name in order if name in mock]
        for name in mock_order:
            seconds, total = timed(lambda: drain(mock[name].client.do_get(ticket)))
            record("doGet1MiBMBps", name, total / 1e6 / seconds)

    for path in [*paths.values(), *mock.values()]:
        path.close()
    return {"figures": figures}


def stream_bytes(config):
    path = Path(config["url"])
    total = 0
    start = time.perf_counter()
    while total < config["bytes"]:
        total += path.follow(config["stream"], config["seconds"])
    elapsed = time.perf_counter() - start
    path.close()
    return {"bytes": total, "seconds": elapsed}


def parallel(config):
    import threading

    urls, stream = config["urls"], config["stream"]
    k = len(urls)
    clients = [flight.connect(urls[0])] if config.get("shared") else [
        flight.connect(url) for url in urls
    ]
    groups = [stream["channels"][i::k] for i in range(k)]
    tickets = []
    for i, channels in enumerate(groups):
        client = clients[i % len(clients)]
        info = client.get_flight_info(
            stream_descriptor({**stream, "channels": channels}, config["seconds"])
        )
        tickets.append((client, [endpoint.ticket for endpoint in info.endpoints]))
    totals = [0] * k

    def pull(i):
        client, ticket_list = tickets[i]
        for ticket in ticket_list:
            totals[i] += drain(client.do_get(ticket))

    threads = [threading.Thread(target=pull, args=(i,)) for i in range(k)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    for client in clients:
        client.close()
    return {"MBps": sum(totals) / 1e6 / seconds}


def first_calls(config):
    figures = {}
    tokens = tokens_of(config)
    for name, url in config["paths"].items():
        options = call_options(tokens.get(name) or None)
        seconds, _ = timed(lambda: flight.connect(url).get_flight_info(COUNT, options))
        figures[name] = seconds * 1000
    return {"firstCallMs": figures}


MODES = {"first": first_calls, "compare": compare, "stream": stream_bytes, "parallel": parallel}


def main():
    config = json.loads(sys.argv[1])
    mode = config["mode"]
    result = MODES[mode](config)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
