"""The real `arrakis` client on the Kafka bench's channels (bench/kafka.ts).

Usage: kafka_bench.py CONFIG_JSON; prints one JSON line. CONFIG holds "url",
"kafka" and "channels", and either part or both (live first):

  {"blocks", "skip"}
      a live stream of `blocks` blocks (the first `skip` dropped: a reader
      starts on a block already published); each block's latency is the GPS
      time it was received minus its end time, which is when the bench's
      publisher calls Publisher.publish (it publishes each block as soon as its
      span has passed) -> {"latencyMs": [...]}
  {"start", "end", "bytes"}
      bounded streams of [start, end) (GPS s) until `bytes` were read (at least
      one) -> {"bytes", "seconds", "reads"}

`kafka`: null, or the bootstrap servers the client reads Kafka at directly
(Client.stream's own kafka_url, the baseline), bypassing the endpoints' locations.
"""

import json
import sys
import time

import arrakis
from arrakis.block import Time
from gpstime import gpsnow


def main() -> None:
    config = json.loads(sys.argv[1])
    client = arrakis.Client(config["url"])
    kafka = config.get("kafka")
    result = {}
    if "blocks" in config:
        latencies = []
        for index, block in enumerate(client.stream(config["channels"], kafka_url=kafka)):
            received = gpsnow()
            if index >= config["skip"]:
                latencies.append((received - block.end_ns / Time.SECONDS) * 1000)
            if index + 1 >= config["blocks"]:
                break
        result["latencyMs"] = latencies
    if "start" in config:
        result.update(past(client, kafka, config))
    print(json.dumps(result))


def past(client, kafka, config) -> dict:
    total = 0
    reads = 0
    started = time.perf_counter()
    while reads == 0 or total < config["bytes"]:
        stream = client.stream(config["channels"], config["start"], config["end"], kafka_url=kafka)
        for block in stream:
            total += sum(series.data.nbytes for series in block.values())
        reads += 1
    return {"bytes": total, "seconds": time.perf_counter() - started, "reads": reads}


if __name__ == "__main__":
    main()
