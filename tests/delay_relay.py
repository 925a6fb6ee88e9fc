"""A TCP relay that holds every chunk the client sends for a known delay, and logs how long it really held it.

The ground truth for latency tests on a kernel without ``netem``: requests
reach the server ``delay`` later than they left the client, and the relay
measures each hold with its own clock (a sleep overshoots by tens of µs).
Replies come back at once. One thread per direction per connection, so a
hold never waits for another connection's.

    python tests/delay_relay.py UPSTREAM_PORT DELAY_US

It prints its port on the first line; on SIGTERM it prints the holds as JSON
(count, p50_us, max_us) and exits.
"""

from __future__ import annotations

import collections
import json
import signal
import socket
import sys
import threading
import time

holds: list[int] = []  # ns each chunk was really held
holds_lock = threading.Lock()


def delayed(source: socket.socket, sink: socket.socket, delay_ns: int) -> None:
    """Client to server: each chunk leaves ``delay_ns`` after it arrived."""
    queue: collections.deque[tuple[int, bytes]] = collections.deque()
    ready = threading.Condition()

    def sender() -> None:
        while True:
            with ready:
                while not queue:
                    ready.wait()
                arrived, data = queue.popleft()
            if not data:
                sink.shutdown(socket.SHUT_WR)
                return
            wait_ns = arrived + delay_ns - time.perf_counter_ns()
            if wait_ns > 0:
                time.sleep(wait_ns / 1e9)
            sink.sendall(data)
            with holds_lock:
                holds.append(time.perf_counter_ns() - arrived)

    threading.Thread(target=sender, daemon=True).start()
    while True:
        try:
            data = source.recv(65536)
        except OSError:
            data = b""
        with ready:
            queue.append((time.perf_counter_ns(), data))
            ready.notify()
        if not data:
            return


def pump(source: socket.socket, sink: socket.socket) -> None:
    """Server to client: at once."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def main() -> None:
    upstream_port, delay_us = int(sys.argv[1]), int(sys.argv[2])
    if delay_us < 0:
        raise SystemExit(f"delay_relay: DELAY_US must be 0 or more, not {delay_us}")
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)

    def report(*_: object) -> None:
        with holds_lock:
            ordered = sorted(holds)
        p50 = ordered[len(ordered) // 2] / 1000 if ordered else 0.0
        print(json.dumps({"count": len(ordered), "p50_us": p50, "max_us": ordered[-1] / 1000 if ordered else 0.0}))
        sys.stdout.flush()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, report)
    while True:
        client, _ = listener.accept()
        server = socket.create_connection(("127.0.0.1", upstream_port), timeout=5)
        server.settimeout(None)
        for sock in (client, server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=delayed, args=(client, server, delay_us * 1000), daemon=True).start()
        threading.Thread(target=pump, args=(server, client), daemon=True).start()


if __name__ == "__main__":
    main()
