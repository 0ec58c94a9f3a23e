"""What splitting costs: CPU seconds of the server and of the client per fetch.

Usage: split_cost.py '<JSON config>' with {"paths": {name: url}, "serverPid": N,
"rounds": R, "seconds": S, "stream": {"channels": [...], "start": ns}}. Each
round fetches once through every path (rotated), reading the server's
/proc/PID/stat and this process's rusage around each fetch. Prints one JSON
line: {"figures": {figure: {name: [per round]}}}.
"""

import json
import os
import resource
import sys
import time

import arrakis

TICKS = os.sysconf("SC_CLK_TCK")


def server_cpu_s(pid):
    """utime + stime of the process, in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def own_cpu_s():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main():
    config = json.loads(sys.argv[1])
    names = list(config["paths"])
    stream = config["stream"]
    start = stream["start"] / 1e9
    figures = {}

    def fetch(url, seconds):
        block = arrakis.Client(url).fetch(stream["channels"], start, start + seconds)
        return sum(series.data.nbytes for series in block.values())

    for url in config["paths"].values():
        fetch(url, 1)
    for round_ in range(config["rounds"]):
        shift = round_ % len(names)
        order = names[shift:] + names[:shift]
        if round_ % 2:
            order.reverse()
        for name in order:
            server, client, wall = server_cpu_s(config["serverPid"]), own_cpu_s(), time.perf_counter()
            total = fetch(config["paths"][name], config["seconds"])
            wall = time.perf_counter() - wall
            mib = total / (1 << 20)
            for figure, value in (
                ("MBps", total / 1e6 / wall),
                ("serverCpuMsPerMiB", (server_cpu_s(config["serverPid"]) - server) * 1e3 / mib),
                ("clientCpuMsPerMiB", (own_cpu_s() - client) * 1e3 / mib),
            ):
                figures.setdefault(figure, {}).setdefault(name, []).append(value)
    print(json.dumps({"figures": figures}))


main()
