# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Hot path, compiled: a load connection's per-request work, in C (the twin of ``core.py``).

The same class as ``core.ConnectionCore``, line for line in behaviour, with
C-level state where the twin has Python objects:

- the requests in flight are a ring of C structs (slot, expected reply, send
  time, size), not a deque of tuples;
- the clock is ``clock_gettime(CLOCK_MONOTONIC)`` (what ``time.perf_counter_ns``
  reads on Linux), without a Python call;
- the replies of the common mix are read in place: ``END``, ``STORED``, and
  a get's hit, whose length it reads from the reply itself (so a plain get
  in flight keeps no expectation for its reply to reach for); every other
  reply goes to the codec's Python parser, as in the twin, so the slow paths
  stay in one place;
- the requests drawn wait in a C array of structs, not a list of tuples.

The counters and histograms are the recorder's C arrays (``array.array``:
counters ``q``, the phase's histograms ``Q``, the second's ``I``), shared with
the recorder and the twin and written here in place, with no Python integer
per increment; their kinds and sizes are checked once, when a phase's slots
are handed over.
"""

from cpython.array cimport array
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF
from cpython.tuple cimport PyTuple_GET_ITEM
from libc.stdlib cimport free, malloc
from libc.string cimport memchr, memcmp, memcpy, memset

from time import perf_counter_ns, thread_time_ns

from pytest_memaslap.engine.hot.recorder import CUT_OFF as _CUT_OFF
from pytest_memaslap.engine.hot.requests import COMMAND_TABLE_SIZE as _COMMAND_TABLE_SIZE
from pytest_memaslap.engine.hot.requests import OpSource
from pytest_memaslap.engine.hot.recorder import COUNTERS as _COUNTERS
from pytest_memaslap.engine.hot.recorder import LOST as _LOST
from pytest_memaslap.engine.hot.recorder import MAX_NS as _MAX_NS
from pytest_memaslap.engine.hot.recorder import MIN_NS as _MIN_NS
from pytest_memaslap.engine.hot.recorder import COUNTDOWN, STRIDE, FILL, ROOM, RUN_END, RUN_DATA
from pytest_memaslap.engine.hot.recorder import RECEIVED as _RECEIVED
from pytest_memaslap.engine.hot.recorder import SENT as _SENT
from pytest_memaslap.model.keyspace import SAMPLE_TABLE_SIZE as _SAMPLE_TABLE_SIZE
from pytest_memaslap.protocol import ascii as _ascii
from pytest_memaslap.protocol.outcomes import ERROR as _ERROR
from pytest_memaslap.protocol.outcomes import HIT as _HIT
from pytest_memaslap.protocol.outcomes import MISS as _MISS
from pytest_memaslap.stats.histogram import LAST_BUCKET as _LAST_BUCKET

cdef extern from "Python.h":
    ctypedef struct PyListObject:
        PyObject **ob_item

cdef extern from *:
    """
    #include <time.h>
    #if defined(__linux__)
    #define HOT_HAVE_CLOCK 1
    static inline long long hot_clock_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000000000LL + (long long)ts.tv_nsec;
    }
    static inline long long hot_cpu_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (long long)ts.tv_sec * 1000000000LL + (long long)ts.tv_nsec;
    }
    #else
    #define HOT_HAVE_CLOCK 0
    static inline long long hot_clock_ns(void) { return 0; }
    static inline long long hot_cpu_ns(void) { return 0; }
    #endif
    static inline int hot_bit_length(unsigned long long value) {
        return value ? 64 - __builtin_clzll(value) : 0;
    }
    static inline void hot_prefetch(const void *address) {
        __builtin_prefetch(address);
    }
    """
    int HOT_HAVE_CLOCK
    long long hot_clock_ns() nogil
    long long hot_cpu_ns() nogil
    int hot_bit_length(unsigned long long value) nogil
    void hot_prefetch(const void *address) nogil

# the twin's REFILL (core.py): the request streams must stay byte-identical
cdef enum:
    REFILL = 16

cdef Py_ssize_t SENT = _SENT
cdef Py_ssize_t RECEIVED = _RECEIVED
cdef Py_ssize_t MIN_NS = _MIN_NS
cdef Py_ssize_t LOST = _LOST
cdef Py_ssize_t COUNTERS = _COUNTERS
# the reply loop keeps runs with the recorder's layout written out (0 to 5): it must be that layout
assert (COUNTDOWN, STRIDE, FILL, ROOM, RUN_END, RUN_DATA) == (0, 1, 2, 3, 4, 5), "recorder's runs layout changed"
cdef Py_ssize_t MAX_NS = _MAX_NS
cdef Py_ssize_t ERROR = _ERROR
cdef Py_ssize_t HIT = _HIT
cdef Py_ssize_t MISS = _MISS
cdef long long LAST_BUCKET = _LAST_BUCKET
cdef object PARSE_GET = _ascii.parse_get
cdef object PARSE_SET = _ascii.parse_set
cdef object CUT_OFF = _CUT_OFF
cdef double COMMAND_TABLE_SIZE = _COMMAND_TABLE_SIZE
cdef unsigned long long SAMPLE_TABLE_SIZE = _SAMPLE_TABLE_SIZE


cdef struct Drawn:
    Py_ssize_t cmd
    PyObject *request   # the request's bytes (owned reference)
    PyObject *expect    # what its parser is told in advance (owned reference)


cdef inline void _keep(Drawn *entry, Py_ssize_t cmd, object request, object expect):
    Py_INCREF(request)
    Py_INCREF(expect)
    entry.cmd = cmd
    entry.request = <PyObject *>request
    entry.expect = <PyObject *>expect


cdef inline void _keep_tuple(Drawn *entry, tuple item):
    _keep(entry, <object>PyTuple_GET_ITEM(item, 0), <object>PyTuple_GET_ITEM(item, 1), <object>PyTuple_GET_ITEM(item, 2))


cdef enum:
    GETS_AT_ONCE = 32  # gets whose lines are fetched together (see _draw_into)


cdef enum:
    MAX_COMMANDS = 32  # (a workload has at most 12)


cdef inline Py_ssize_t _command(const Py_ssize_t *command_end, Py_ssize_t position) noexcept nogil:
    """The command at ``position`` of the source's table (``OpSource.commands``), found from where each run
    ends: a few compares of numbers in a register's reach, not a read of the table that misses the cache."""
    cdef Py_ssize_t cmd = 0
    while position >= command_end[cmd]:
        cmd += 1
    return cmd


cdef Py_ssize_t _draw_into(source, Py_ssize_t count, Drawn *out) except -1:
    """``OpSource.batch``, compiled, into C structs: the same draws from the same RNG, so the same requests.

    Only the loop is compiled: the RNG, key choosers and request builders are
    the source's own Python callables, and its rare kinds (special gets, cas)
    its own methods. No tuple per request: the core takes each from ``out``.

    A get's line sits at a random place in a large keyspace, and reaching its
    request is three dependent loads (the list's slot, the line, the request)
    that each miss the cache. So the gets of a batch are kept aside while
    the loop draws, in the same order, and their lines are then fetched in
    rounds, each prefetching what the next needs: the misses of a batch
    overlap instead of following one another.
    """
    cdef object random_draw = source.random
    cdef Py_ssize_t key_count = source.key_count
    cdef tuple ends = source.command_ends
    cdef Py_ssize_t command_end[MAX_COMMANDS]  # where each command's run in the source's table ends
    cdef tuple builders = source.builders
    cdef Py_ssize_t get_id = source.get_id
    cdef object lines = source.get_lines
    cdef Py_ssize_t special_get = source.special_get
    cdef Py_ssize_t cas_id = source.cas_id
    cdef bint sequential = source.sequential
    cdef object chooser = source.chooser
    cdef Py_ssize_t cursor = source.cursor
    cdef Py_ssize_t plain_set = source.plain_set_id
    cdef PlainSets sets
    cdef Py_ssize_t i, index, cmd, gets = 0
    cdef Py_ssize_t get_at[GETS_AT_ONCE]
    cdef Py_ssize_t get_key[GETS_AT_ONCE]
    cdef double position
    memset(&sets, 0, sizeof(PlainSets))  # (read only when sets are plain, which fills it: zeroed for the compiler)
    if lines is None or special_get >= 0:
        get_id = -1  # no prebuilt lines, or gets of a special kind: build them one by one
    if plain_set >= 0:
        sets = _plain_sets(source)
    if not 0 < len(ends) <= MAX_COMMANDS or ends[len(ends) - 1] != COMMAND_TABLE_SIZE:  # (no wraparound here)
        raise ValueError(f"a command table's ends must be 1 to {MAX_COMMANDS} positions up to the table's size")
    for i in range(len(ends)):
        command_end[i] = ends[i]
    for i in range(count):
        if chooser is not None:
            index = chooser()
            cmd = _command(command_end, <Py_ssize_t>(<double>random_draw() * COMMAND_TABLE_SIZE))
        elif sequential:
            index = cursor
            cursor = cursor + 1 if cursor + 1 < key_count else 0
            cmd = _command(command_end, <Py_ssize_t>(<double>random_draw() * COMMAND_TABLE_SIZE))
        else:
            position = <double>random_draw() * key_count
            index = <Py_ssize_t>position
            cmd = _command(command_end, <Py_ssize_t>((position - index) * COMMAND_TABLE_SIZE))
        if cmd == get_id:
            hot_prefetch(&(<PyListObject *>lines).ob_item[index])
            get_at[gets] = i
            get_key[gets] = index
            gets += 1
            if gets == GETS_AT_ONCE:
                _keep_lines(out, get_at, get_key, gets, <list>lines, get_id)
                gets = 0
        elif cmd == special_get:
            _keep_tuple(&out[i], source._special_get(cmd, index))
        elif cmd == cas_id:
            _keep_tuple(&out[i], source._cas(cmd, index))
        elif cmd == plain_set:
            _keep(&out[i], cmd, _plain_set(&sets, index), None)
        else:
            _keep(&out[i], cmd, builders[cmd](index), None)
    if gets:
        _keep_lines(out, get_at, get_key, gets, <list>lines, get_id)
    source.cursor = cursor
    return count


cdef struct PlainSets:
    PyObject *keys        # the source's keys (a list; borrowed: the source holds them)
    PyObject *sizes       # the value source's size table (a list of ints)
    PyObject *labels      # its size labels ({size: bytes})
    const char *values    # its random bytes, which values are slices of
    Py_ssize_t fixed_size  # every value's size when they are all one size (then no table is read), else -1
    PyObject *fixed_label  # and its label (borrowed: the value source holds it)
    unsigned long long span
    unsigned long long key_base


cdef PlainSets _plain_sets(source):
    """What a plain set needs, read once per batch (``OpSource.plain_set_id`` says when sets are plain)."""
    cdef PlainSets sets
    values = source.values
    sets.keys = <PyObject *>source.keys
    sets.sizes = <PyObject *>values.sizes
    sets.labels = <PyObject *>values.labels
    sets.values = PyBytes_AS_STRING(values.data)
    sets.span = values.span
    sets.key_base = source.key_base
    sets.fixed_size = -1
    sets.fixed_label = NULL
    if len(values.labels) == 1:  # one size for every key: the table holds nothing else
        for size, label in values.labels.items():
            sets.fixed_size = size
            sets.fixed_label = <PyObject *>label
    return sets


cdef bytes _plain_set(PlainSets *sets, Py_ssize_t index):
    """``OpSource._set`` for a plain ASCII set, in C: ``set <key> 0 0 <size>``, CRLF, the value, CRLF.

    The key's size and value come from ``ValueSource.size_of`` and ``value``'s
    arithmetic, here in 64 bits (exact below 2**32 keys); a test compares the
    two draws request for request.
    """
    cdef unsigned long long mixed = (sets.key_base + <unsigned long long>index) * 2654435761ULL
    cdef object size
    cdef bytes label
    cdef Py_ssize_t value_size
    if sets.fixed_size >= 0:  # (no read of the size table, which misses the cache)
        value_size = sets.fixed_size
        label = <bytes>sets.fixed_label
    else:
        size = <object>PyList_GET_ITEM(<object>sets.sizes, <Py_ssize_t>((mixed >> 7) % SAMPLE_TABLE_SIZE))
        label = (<dict>sets.labels)[size]
        value_size = size
    cdef bytes key = <bytes>PyList_GET_ITEM(<object>sets.keys, index)
    cdef Py_ssize_t key_size = PyBytes_GET_SIZE(key), label_size = PyBytes_GET_SIZE(label)
    cdef Py_ssize_t total = 4 + key_size + 5 + label_size + 2 + value_size + 2
    cdef bytes request = PyBytes_FromStringAndSize(NULL, total)
    cdef char *out = PyBytes_AS_STRING(request)
    memcpy(out, b"set ", 4)
    out += 4
    memcpy(out, PyBytes_AS_STRING(key), key_size)
    out += key_size
    memcpy(out, b" 0 0 ", 5)
    out += 5
    memcpy(out, PyBytes_AS_STRING(label), label_size)
    out += label_size
    memcpy(out, b"\r\n", 2)
    out += 2
    memcpy(out, sets.values + mixed % sets.span, value_size)
    out += value_size
    memcpy(out, b"\r\n", 2)
    return request


cdef inline void _keep_lines(Drawn *out, Py_ssize_t *at, Py_ssize_t *keys, Py_ssize_t count, list lines, Py_ssize_t cmd):
    """The gets set aside by ``_draw_into``: each line is its request and its expect, fetched in rounds."""
    cdef PyObject **items = (<PyListObject *>lines).ob_item
    cdef PyObject *line
    cdef Py_ssize_t j
    for j in range(count):  # (the list's slots were prefetched as the keys were drawn)
        line = items[keys[j]]
        hot_prefetch(line)
        hot_prefetch(<char *>line + 32)  # (a 3-tuple's items end past the first 64 bytes when it is not aligned)
    for j in range(count):
        line = items[keys[j]]
        hot_prefetch(PyTuple_GET_ITEM(<object>line, 2))  # the request: its count is raised next
    for j in range(count):
        line = items[keys[j]]
        _keep(&out[at[j]], cmd, <object>PyTuple_GET_ITEM(<object>line, 2), <object>line)


def draw(source, Py_ssize_t count):
    """The compiled draw as a list of ``(cmd, request, expect)`` (tests compare it with ``OpSource.batch``)."""
    cdef Drawn *out = <Drawn *>malloc(max(count, 1) * sizeof(Drawn))
    cdef Py_ssize_t i, n = 0
    cdef list result = []
    if out == NULL:
        raise MemoryError()
    try:
        n = _draw_into(source, count, out)
        for i in range(n):
            result.append((out[i].cmd, <object>out[i].request, <object>out[i].expect))
    finally:
        for i in range(n):
            Py_DECREF(<object>out[i].request)
            Py_DECREF(<object>out[i].expect)
        free(out)
    return result


cdef inline long long now_ns():
    if HOT_HAVE_CLOCK:
        return hot_clock_ns()
    return perf_counter_ns()


cdef inline long long cpu_ns():
    """This thread's CPU time: what periodic work cost, without the time the machine gave the core to others."""
    if HOT_HAVE_CLOCK:
        return hot_cpu_ns()
    return thread_time_ns()


cdef inline Py_ssize_t bucket(long long latency):
    """stats.histogram.bucket_index, in C."""
    cdef int bits
    cdef long long index
    if latency <= 0:
        return 0
    bits = hot_bit_length(<unsigned long long>latency)
    if bits <= 8:
        return <Py_ssize_t>latency
    bits -= 8
    index = (<long long>bits << 7) + (latency >> bits)
    return <Py_ssize_t>(index if index < LAST_BUCKET else LAST_BUCKET)


def bucket_of(long long latency):
    """The histogram bucket the compiled core counts a latency in (tests pin it to ``bucket_index``)."""
    return bucket(latency)


def clock_ns():
    """The compiled core's clock (tests pin it to ``time.perf_counter_ns``)."""
    return now_ns()


cdef enum:
    INCOMPLETE = -2  # _value_end: the reply is not all here yet


cdef inline Py_ssize_t _value_end(const char *buf, Py_ssize_t pos, Py_ssize_t length) noexcept nogil:
    """Where a get's hit ``VALUE <key> <flags> <bytes>`` + data + ``END`` at ``pos`` ends, read from the reply.

    The parser's general path (``ascii.parse_get``) in C, for the well-formed
    case only: -1 for anything else (the Python parser then decides), and
    ``INCOMPLETE`` where it would wait for more. It reads the length from the
    reply instead of comparing the header the draw expected, which would be
    one more object to reach, and likely a cache miss, per reply.
    """
    cdef const char *eol
    cdef const char *digit
    cdef Py_ssize_t size = 0
    cdef Py_ssize_t end
    if length - pos < 6 or memcmp(buf + pos, b"VALUE ", 6) != 0:
        return -1
    eol = <const char *>memchr(buf + pos + 6, 13, length - pos - 6)  # the header's CR
    if eol == NULL or eol + 1 >= buf + length or eol[1] != 10:
        return -1  # (no CRLF yet, or a lone CR: the parser decides)
    digit = eol
    while (digit - 1)[0] != 32:  # back to the last space: the length follows it
        digit -= 1
    if digit == eol or eol - digit > 18:
        return -1
    while digit < eol:
        if digit[0] < 48 or digit[0] > 57:
            return -1
        size = size * 10 + (digit[0] - 48)
        digit += 1
    end = (eol - buf) + 2 + size + 2
    if end > length:
        return INCOMPLETE
    if memcmp(buf + end - 2, b"\r\n", 2) != 0:
        return -1
    if end + 5 > length:
        return INCOMPLETE
    if memcmp(buf + end, b"END\r\n", 5) != 0:
        return -1
    return end + 5


cdef inline long long *counts_of(object slot):
    """A slot's counters: the recorder's C array of signed 64-bit integers (checked by ``_check_slot``)."""
    return (<array>PyTuple_GET_ITEM(<tuple>slot, 1)).data.as_longlongs


def _check_slot(tuple slot):
    """The arrays the reply loop writes without bounds checks must be the recorder's kinds and sizes."""
    if len(slot) != 5:  # (indexed unchecked below and in the reply loop)
        raise TypeError("a slot is (parser, counters, latencies, second, runs): the recorder's arrays (q, Q, I, q)")
    counters, latencies, second, runs = slot[1], slot[2], slot[3], slot[4]
    if not (
        isinstance(counters, array) and counters.typecode == "q" and len(counters) >= COUNTERS
        and isinstance(latencies, array) and latencies.typecode == "Q" and len(latencies) > LAST_BUCKET
        and isinstance(second, array) and second.typecode == "I" and len(second) > LAST_BUCKET
        and isinstance(runs, array) and runs.typecode == "q" and len(runs) >= RUN_DATA + runs[ROOM]
    ):
        raise TypeError("a slot's counters, latencies, second and runs must be the recorder's arrays (q, Q, I, q)")


cdef struct InFlight:
    PyObject *slot      # the slot the request was sent with (owned reference)
    PyObject *expect    # what its parser is told in advance (owned reference)
    long long sent_ns
    Py_ssize_t size


cdef class ConnectionCore:
    """The per-request state and work of one load connection (compiled)."""

    cdef public object events
    cdef public int index
    cdef object _transport
    cdef object _write
    cdef public bytearray buffer
    cdef public object source
    cdef Drawn *_batch  # the requests drawn and not yet sent: _batch[_batch_pos:_batch_len]
    cdef Py_ssize_t _batch_capacity
    cdef Py_ssize_t _batch_len
    cdef Py_ssize_t _batch_pos
    cdef bint _drawn  # the source is an OpSource: its batches come from ``_draw_into``, the compiled loop
    cdef tuple _slots
    cdef public bint stopping
    cdef public long long budget
    cdef public object idle
    cdef public Py_ssize_t depth
    cdef public bint closed
    cdef public bint reconnecting
    cdef public object restored
    cdef public bint paced
    cdef public list followups
    cdef public long long refill_max_ns  # the longest draw of a batch of requests
    cdef array _refill_blocks  # each draw's time, counted in histogram buckets (or None)
    cdef InFlight *_ring
    cdef Py_ssize_t _capacity
    cdef Py_ssize_t _head
    cdef Py_ssize_t _count

    def __cinit__(self, *args, **kwargs):
        self._capacity = 64
        self._ring = <InFlight *>malloc(self._capacity * sizeof(InFlight))
        self._batch_capacity = REFILL
        self._batch = <Drawn *>malloc(self._batch_capacity * sizeof(Drawn))
        if self._ring == NULL or self._batch == NULL:
            raise MemoryError()
        self._head = 0
        self._count = 0
        self._batch_len = 0
        self._batch_pos = 0

    def __init__(self, events, int index):
        self.events = events
        self.index = index
        self._transport = None
        self._write = None
        self.buffer = bytearray()
        self.source = None
        self._drawn = False
        self._slots = ()
        self.stopping = False
        self.budget = -1
        self.idle = None
        self.depth = 1
        self.closed = False
        self.reconnecting = False
        self.restored = None
        self.paced = False
        self.followups = []
        self.refill_max_ns = 0
        self._refill_blocks = None

    def __dealloc__(self):
        if self._ring != NULL:
            while self._count:
                self._drop_first()
            free(self._ring)
            self._ring = NULL
        if self._batch != NULL:
            self._drop_batch()
            free(self._batch)
            self._batch = NULL

    @property
    def slots(self):
        """What each command's replies are counted in: (parser, counters, latencies, second), by command."""
        return self._slots

    @slots.setter
    def slots(self, tuple value):
        # the reply loop writes these C arrays without bounds checks: their kinds and sizes are checked here, once
        for slot in value:
            _check_slot(slot)
        self._slots = value

    @property
    def refill_blocks(self):
        """Where each draw's time is counted: a histogram's dense ``Q`` array, shared by a shard's connections."""
        return self._refill_blocks

    @refill_blocks.setter
    def refill_blocks(self, value):
        # written without bounds checks: its kind and size are checked here, once
        if value is not None and not (
            isinstance(value, array) and value.typecode == "Q" and len(value) > LAST_BUCKET
        ):
            raise TypeError("refill_blocks must be a histogram's dense array of kind Q, or None")
        self._refill_blocks = value

    @property
    def transport(self):
        return self._transport

    @transport.setter
    def transport(self, value):
        self._transport = value
        self._write = value.write if value is not None else None

    # -- the ring of requests in flight ------------------------------------------
    cdef int _push(self, object slot, object expect, long long sent_ns, Py_ssize_t size) except -1:
        cdef InFlight *grown
        cdef Py_ssize_t i
        cdef InFlight *entry
        if self._count == self._capacity:
            grown = <InFlight *>malloc(2 * self._capacity * sizeof(InFlight))
            if grown == NULL:
                raise MemoryError()
            for i in range(self._count):
                grown[i] = self._ring[(self._head + i) % self._capacity]
            free(self._ring)
            self._ring = grown
            self._head = 0
            self._capacity *= 2
        entry = &self._ring[(self._head + self._count) % self._capacity]
        Py_INCREF(slot)
        Py_INCREF(expect)
        entry.slot = <PyObject *>slot
        entry.expect = <PyObject *>expect
        entry.sent_ns = sent_ns
        entry.size = size
        self._count += 1
        return 0

    cdef inline void _drop_first(self):
        cdef InFlight *entry = &self._ring[self._head]
        Py_DECREF(<object>entry.slot)
        Py_DECREF(<object>entry.expect)
        self._head = (self._head + 1) % self._capacity
        self._count -= 1

    def track(self, slot, long long sent_ns, Py_ssize_t size, expect=None):
        """Count a request as in flight, its reply to be counted in ``slot`` (the send paths do this inline)."""
        self._push(slot, expect, sent_ns, size)

    def in_flight(self):
        return self._count

    # -- the request stream --------------------------------------------------------
    def set_source(self, source):
        """Draw requests from ``source`` from now on (what is left of the last batch is dropped)."""
        self.source = source
        self._drawn = type(source) is OpSource
        self._drop_batch()

    cdef void _drop_batch(self):
        """Release the requests drawn and not sent."""
        cdef Py_ssize_t i
        for i in range(self._batch_pos, self._batch_len):
            Py_DECREF(<object>self._batch[i].request)
            Py_DECREF(<object>self._batch[i].expect)
        self._batch_len = self._batch_pos = 0

    cdef int _refill(self, Py_ssize_t count) except -1:
        """Draw the next ``count`` requests (at most one batch blocks the loop: its CPU time is kept)."""
        cdef long long started = cpu_ns()
        cdef list batch
        cdef Py_ssize_t i
        cdef Drawn *grown
        self._drop_batch()
        if count > self._batch_capacity:
            grown = <Drawn *>malloc(count * sizeof(Drawn))
            if grown == NULL:
                raise MemoryError()
            free(self._batch)
            self._batch = grown
            self._batch_capacity = count
        if self._drawn:
            self._batch_len = _draw_into(self.source, count, self._batch)
        else:
            batch = self.source.batch(count)
            for i in range(min(PyList_GET_SIZE(batch), count)):
                _keep_tuple(&self._batch[i], <tuple>PyList_GET_ITEM(batch, i))
                self._batch_len = i + 1
        cdef long long took = cpu_ns() - started
        if took > self.refill_max_ns:
            self.refill_max_ns = took
        if self._refill_blocks is not None:
            self._refill_blocks.data.as_ulonglongs[bucket(took)] += 1
        return 0

    cdef inline bytes _queue_next(self, Py_ssize_t refill, long long sent_ns):
        """Take the next request, put it in flight, return its bytes."""
        cdef Drawn *entry
        cdef bytes request
        cdef tuple slot
        if self._batch_pos >= self._batch_len:
            self._refill(refill)
            if not self._batch_len:
                raise StopIteration
        entry = &self._batch[self._batch_pos]
        self._batch_pos += 1
        if self._batch_pos < self._batch_len:  # the next one is sent a reply from now: out of the cache by then
            hot_prefetch(self._batch[self._batch_pos].request)
            hot_prefetch(self._batch[self._batch_pos].expect)
        request = <bytes>entry.request
        slot = <tuple>PyTuple_GET_ITEM(self._slots, entry.cmd)
        if PyTuple_GET_ITEM(slot, 0) is <PyObject *>PARSE_GET:
            # a plain get's hit is read from its reply (``_value_end``): the ring keeps no expectation, which
            # the reply would reach for once more, a reply's time later (the Python parser does without it)
            self._push(slot, None, sent_ns, PyBytes_GET_SIZE(request))
        else:
            self._push(slot, <object>entry.expect, sent_ns, PyBytes_GET_SIZE(request))
        Py_DECREF(<object>entry.request)  # (the batch's references pass to ``request`` and the ring)
        Py_DECREF(<object>entry.expect)
        return request

    # -- replies ---------------------------------------------------------------------
    def data_received(self, data):
        cdef object view
        cdef const char *buf
        cdef Py_ssize_t length
        cdef Py_ssize_t pos = 0
        cdef Py_ssize_t done = 0
        cdef Py_ssize_t end
        cdef Py_ssize_t outcome
        cdef Py_ssize_t index
        cdef long long now = now_ns()
        cdef long long latency
        cdef long long *counts
        cdef long long *runs
        cdef InFlight *entry
        cdef tuple slot
        cdef object expect
        cdef object parse
        cdef bytes request
        if type(data) is not bytes:
            data = bytes(data)
        if PyByteArray_GET_SIZE(self.buffer):
            self.buffer += data
            view = self.buffer
            buf = PyByteArray_AS_STRING(self.buffer)
            length = PyByteArray_GET_SIZE(self.buffer)
        else:
            view = data
            buf = PyBytes_AS_STRING(data)
            length = PyBytes_GET_SIZE(data)
        while self._count:
            entry = &self._ring[self._head]
            slot = <tuple>entry.slot
            expect = <object>entry.expect
            parse = <object>PyTuple_GET_ITEM(slot, 0)
            end = -1
            if parse is PARSE_GET:
                if length - pos >= 5 and memcmp(buf + pos, b"END\r\n", 5) == 0:
                    end, outcome = pos + 5, MISS
                else:
                    end = _value_end(buf, pos, length)
                    if end == INCOMPLETE:
                        break  # the rest of the value is still on its way
                    if end >= 0:
                        outcome = HIT
            elif parse is PARSE_SET:
                if length - pos >= 8 and memcmp(buf + pos, b"STORED\r\n", 8) == 0:
                    end, outcome = pos + 8, HIT
            if end < 0:
                end, outcome = parse(view, pos, expect)
                if end < 0:
                    break
            latency = now - entry.sent_ns
            index = bucket(latency)
            (<array>PyTuple_GET_ITEM(slot, 2)).data.as_ulonglongs[index] += 1  # (C arrays: see _check_slot)
            (<array>PyTuple_GET_ITEM(slot, 3)).data.as_uints[index] += 1
            counts = counts_of(slot)
            if outcome:  # hits are derived from the histogram's count
                counts[outcome] += 1
            counts[SENT] += entry.size
            counts[RECEIVED] += end - pos
            if latency > counts[MAX_NS]:
                counts[MAX_NS] = latency
            if latency < counts[MIN_NS]:
                counts[MIN_NS] = latency
            runs = (<array>PyTuple_GET_ITEM(slot, 4)).data.as_longlongs  # (recorder.keep_in_run, inlined)
            runs[0] -= 1
            if runs[0] <= 0:
                if runs[2] < runs[3]:
                    runs[5 + runs[2]] = latency
                    runs[2] += 1
                if runs[0] <= runs[4]:
                    runs[0] = runs[1]
            self._drop_first()
            pos = end
            done += 1
        if self.restored is not None and done:
            self._restored()
        if view is self.buffer:
            del self.buffer[:pos]
        elif pos < length:
            self.buffer += data[pos:]  # keep the incomplete rest for the next read
        if PyByteArray_GET_SIZE(self.buffer) and not self._count:
            self.events.connection_failed(self, f"unexpected data from the server: {bytes(self.buffer[:80])!r}")
            self.buffer.clear()
            return
        if self.followups:
            done -= self._send_followups(now)  # (in place of new requests: the window stays as it was)
        if self.paced:
            if not self._count and (self.stopping or self.budget == 0):
                self.give_up()
        elif done == 1 and self.budget < 0 and not self.stopping:
            # the closed loop's common case, inlined: one reply, one new request
            request = self._queue_next(REFILL, now)
            self._write(request)
        elif done:
            self.send(done, now)

    # -- sending -----------------------------------------------------------------------
    def send_scheduled(self, list due, long long now):
        """Open loop: one request per scheduled time in ``due``; returns how many were sent.

        Latency counts from the scheduled time (see the twin, ``core.py``).
        """
        cdef long long budget = self.budget
        cdef Py_ssize_t count, i
        cdef long long scheduled
        cdef list out
        if self.stopping or budget == 0 or self.closed:
            return 0
        count = len(due)
        if budget > 0:
            if count > budget:
                count = budget
            self.budget = budget - count
        out = []
        for i in range(count):
            scheduled = due[i]
            out.append(self._queue_next(max(REFILL, count), scheduled))
        self._write(b"".join(out))
        return count

    def send(self, Py_ssize_t count, long long now):
        """Send up to ``count`` requests (within the budget), or tell the runner this connection is idle."""
        cdef long long budget = self.budget
        cdef Py_ssize_t i
        cdef list out
        if self.stopping or budget == 0 or self.closed:
            if self.closed and self.reconnecting and not self.stopping:
                return  # resume() sends once the connection is back
            if not self._count and self.idle is not None and not self.idle.done():
                self.idle.set_result(None)
            return
        if budget > 0:
            if count > budget:
                count = budget
            self.budget = budget - count
        if count == 1:
            self._write(self._queue_next(REFILL, now))
            return
        out = []
        for i in range(count):
            out.append(self._queue_next(max(REFILL, count), now))
        self._write(b"".join(out))

    cdef Py_ssize_t _send_followups(self, long long now) except -1:
        """Send what replies asked for (a ``cas`` after its ``gets``); each takes one request of the budget."""
        cdef list followups = self.followups
        cdef list out
        cdef bytes request
        if self.stopping or self.closed or self.budget == 0:
            del followups[:]
            return 0
        if self.budget > 0:
            del followups[self.budget:]
            self.budget -= len(followups)
        out = []
        for slot, request in followups:
            self._push(self._slots[slot], None, now, PyBytes_GET_SIZE(request))
            out.append(request)
        del followups[:]
        self._write(b"".join(out))
        return len(out)

    def fail_pending(self, cause=CUT_OFF):
        """Count every request the server will never answer as abandoned (``cause``) and an error of its command."""
        cdef InFlight *entry
        cdef long long *counts
        cdef Py_ssize_t why = cause
        if not LOST <= why < MIN_NS:
            raise ValueError(f"not a cause of abandon: {cause!r}")
        while self._count:
            entry = &self._ring[self._head]
            counts = counts_of(<object>entry.slot)
            counts[ERROR] += 1
            counts[why] += 1
            counts[SENT] += entry.size
            self._drop_first()

    def _restored(self):
        """The first reply since a reconnect: the server is back."""
        restored = self.restored
        self.restored = None
        if restored is not None and not restored.done():  # (done: the runner stopped waiting)
            restored.set_result(True)

    def give_up(self):
        """No reconnect will come (the run is ending): this connection is idle."""
        self.reconnecting = False
        if self.idle is not None and not self.idle.done():
            self.idle.set_result(None)


def edge_counts(array latencies, tuple cuts):
    """Hot path, once a second while a live exporter runs: ``core.edge_counts`` in one C pass.

    The requests in buckets ``[0, cut)`` for each cut, and the sum of all
    latencies as their buckets' midpoints (ns, rounded down; exact below
    2**64 ns of summed latency, some 290 years).
    """
    if latencies.typecode != "Q" or len(latencies) <= LAST_BUCKET:
        raise TypeError("edge_counts reads a phase's latency histogram (an array of kind Q)")
    cdef unsigned long long *counts = latencies.data.as_ulonglongs
    cdef Py_ssize_t size = len(latencies), index, shift, sub, position = 0, cut_count = len(cuts)
    cdef unsigned long long running = 0, doubled = 0, count, low, high
    cdef list at_cuts = []
    cdef Py_ssize_t next_cut = cuts[0] if cut_count else size + 1
    for index in range(size):
        while index >= next_cut:
            at_cuts.append(running)
            position += 1
            next_cut = cuts[position] if position < cut_count else size + 1
        count = counts[index]
        if count:
            running += count
            if index < 256:
                doubled += count * (2 * <unsigned long long>index)
            else:
                shift = (index >> 7) - 1
                sub = index - (shift << 7)
                low = <unsigned long long>sub << shift
                high = ((<unsigned long long>(sub + 1)) << shift) - 1
                doubled += count * (low + high)
    while position < cut_count:
        at_cuts.append(running)
        position += 1
    return at_cuts, doubled // 2


def take_run(array second):
    """Hot path, once a second: ``recorder.take_run`` in C: the second's occupied buckets, moved out.

    Finds the first and last bucket in use, copies that run into a new
    array, zeroes it in place and adds it up: a few µs, with no Python
    object per bucket.
    """
    if second.typecode != "I" or len(second) <= LAST_BUCKET:
        raise TypeError("take_run reads a second's histogram (an array of kind I)")
    cdef unsigned int *counts = second.data.as_uints
    cdef Py_ssize_t size = len(second), first = 0, end = size, index
    cdef unsigned long long total = 0
    while first < size and counts[first] == 0:
        first += 1
    if first == size:
        return 0, array("I"), 0
    while counts[end - 1] == 0:
        end -= 1
    cdef array run = second[first:end]
    for index in range(first, end):
        total += counts[index]
    memset(&counts[first], 0, (end - first) * sizeof(unsigned int))
    return first, run, total
