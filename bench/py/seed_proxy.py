"""The seed's own proxy, `arrakis.proxy.ssh_proxy` (arrakis 0.21.0), run as a user would.

Usage: python seed_proxy.py SSH_DEST ARRAKIS_SERVER; prints the proxy URL as one line on
stdout once serving, stops on stdin EOF or SIGTERM. It runs plain `ssh`: the bench puts a
wrapper carrying its ssh_config first on PATH.
"""

import signal
import sys
import threading

from arrakis.proxy import ssh_proxy


def main():
    dest, server = sys.argv[1], sys.argv[2]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    with ssh_proxy(dest, arrakis_server=server, bind_address="127.0.0.1:0") as url:
        print(url, flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
