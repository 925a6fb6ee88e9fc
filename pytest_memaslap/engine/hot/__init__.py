"""The hot path: everything that runs once per request, behind one small seam.

Four parts, and the only ways the rest of the engine touches them:

- ``connection.Connection`` (an asyncio Protocol; ``udp.UdpEndpoint`` is its
  datagram sibling). The runner drives it: ``begin(source, budget, depth,
  paced)`` starts a phase's sending and returns a future that resolves when
  the connection is idle; ``enter_phase(slots)``, ``stop()``,
  ``set_budget(n)``, ``await_reconnect()``/``resume()`` (whose future says
  whether the reopened connection answered), ``fail_pending()``
  and ``close()`` push the runner's state in. The connection never reads the
  runner; it reports only events (``ConnectionEvents.connection_failed`` /
  ``connection_lost``). The pacer of an open loop calls ``send_scheduled``.
  Its per-request work is a ``ConnectionCore``: compiled (``_core.pyx``,
  Cython) or the pure-Python twin (``core.py``), the same behaviour; the
  runner asks ``connection.connection_class()`` which one to use
  (``pytest_memaslap.hotpath``: the compiled one unless it is not built or
  ``PYTEST_MEMASLAP_NO_EXTENSIONS`` is set).
- A *slot* ``(parser, counters, latencies, second)``, one per command id of
  the phase: the codec's reply parser, dispatched by the integer command id,
  and the recorder's lists the reply is counted into.
- ``recorder.PhaseRecorder``: counters indexed by outcome code
  (``protocol.outcomes``), a dense latency histogram per command for the
  phase, and one dense histogram of the current second for all commands;
  the bucket maths is ``stats.histogram.bucket_index`` (inlined in the
  connection; a test pins the copy). A second closes in one step whatever
  the number of commands: the core's ``take_run`` moves the second's
  occupied buckets out (compiled: about 3 µs). With a live exporter, the
  core's ``edge_counts`` cuts each command's histogram to Prometheus's edges
  once a second (compiled: about 4 µs a command).
- ``requests``: the batch builders (``OpSource``, ``PreloadSource``,
  ``CleanupSource``) that draw ``(command id, request bytes, expect)`` from
  the workload's distributions, a batch at a time.

Rare, side-effecting replies (verified gets, gets of expired keys) go through
``slow``; a ``cas``'s follow-up request is queued by the codec's ``gets``
parser and sent by the connection in place of a new request.
"""
