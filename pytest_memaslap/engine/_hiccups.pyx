# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The machine's own stalls, seen by a thread that only sleeps (compiled; there is no twin).

Every latency a load generator reports includes the stalls of the machine it
runs on: timer and network interrupts, the hypervisor taking the virtual CPU
away, page reclaim. No program avoids them, but a report can tell them apart
from the engine's own work. This C thread holds no GIL and does nothing but
sleep a fixed interval (the engine's: 5 ms) to an absolute deadline, again and again, and
count how late each wake-up came, in ``stats.histogram``'s buckets. What a
thread that does nothing saw is the machine's floor: the method of
HdrHistogram's jHiccup.

A Python thread cannot measure this: it must take the GIL to wake, so it
would measure the event loop instead, and slow it down. It blocks every
signal, so Ctrl-C and SIGTERM still reach the main thread.
"""

from libc.stdlib cimport calloc, free

from pytest_memaslap.stats.histogram import BUCKET_COUNT as _BUCKET_COUNT

cdef extern from *:
    """
    #include <errno.h>
    #include <pthread.h>
    #include <signal.h>
    #include <time.h>
    #if defined(__linux__)
    #include <sys/prctl.h>
    #endif

    typedef struct {
        pthread_t thread;
        long long interval_ns;
        unsigned long long *counts;  /* dense, one per bucket of stats.histogram */
        long long last_bucket;
        int stop;  /* read and written with __atomic builtins */
        int running;
    } hiccup_meter;

    static long long hiccup_now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000000000LL + (long long)ts.tv_nsec;
    }

    /* stats.histogram.bucket_index, in C (a test pins the two together) */
    static long long hiccup_bucket(long long value, long long last_bucket) {
        int bits;
        long long index;
        if (value <= 0) return 0;
        bits = 64 - __builtin_clzll((unsigned long long)value);
        if (bits <= 8) return value;
        bits -= 8;
        index = ((long long)bits << 7) + (value >> bits);
        return index < last_bucket ? index : last_bucket;
    }

    static void hiccup_sleep_until(long long due_ns) {
    #if defined(__linux__)
        struct timespec ts;
        ts.tv_sec = due_ns / 1000000000LL;
        ts.tv_nsec = due_ns % 1000000000LL;
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
    #else
        long long left = due_ns - hiccup_now_ns();
        struct timespec ts;
        if (left <= 0) return;
        ts.tv_sec = left / 1000000000LL;
        ts.tv_nsec = left % 1000000000LL;
        nanosleep(&ts, NULL);
    #endif
    }

    static void *hiccup_main(void *arg) {
        hiccup_meter *meter = (hiccup_meter *)arg;
    #if defined(PR_SET_TIMERSLACK)
        prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);  /* wake on time: the default slack is 50 us */
    #endif
        while (!__atomic_load_n(&meter->stop, __ATOMIC_ACQUIRE)) {
            long long due = hiccup_now_ns() + meter->interval_ns;
            hiccup_sleep_until(due);
            meter->counts[hiccup_bucket(hiccup_now_ns() - due, meter->last_bucket)] += 1;
        }
        return NULL;
    }

    /* 0, or an errno; the thread starts with every signal blocked (they stay the main thread's) */
    static int hiccup_start(hiccup_meter *meter) {
        sigset_t all, old;
        int failed;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        __atomic_store_n(&meter->stop, 0, __ATOMIC_RELEASE);
        failed = pthread_create(&meter->thread, NULL, hiccup_main, meter);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        meter->running = !failed;
        return failed;
    }

    /* returns within one interval plus whatever stall the thread is in */
    static void hiccup_stop(hiccup_meter *meter) {
        if (!meter->running) return;
        __atomic_store_n(&meter->stop, 1, __ATOMIC_RELEASE);
        pthread_join(meter->thread, NULL);
        meter->running = 0;
    }
    """
    ctypedef struct hiccup_meter:
        long long interval_ns
        unsigned long long *counts
        long long last_bucket
        int running

    long long hiccup_bucket(long long value, long long last_bucket) nogil
    int hiccup_start(hiccup_meter *meter) nogil
    void hiccup_stop(hiccup_meter *meter) nogil

cdef Py_ssize_t BUCKET_COUNT = _BUCKET_COUNT


def bucket_of(long long value):
    """The bucket the meter counts a lateness in (tests pin it to ``stats.histogram.bucket_index``)."""
    return hiccup_bucket(value, BUCKET_COUNT - 1)


cdef class HiccupMeter:
    """A thread that sleeps ``interval_ns`` at a time from ``start()`` to ``stop()``, counting how late it woke."""

    cdef hiccup_meter _meter
    cdef readonly long long interval_ns

    def __cinit__(self, long long interval_ns=1_000_000):
        if interval_ns <= 0:
            raise ValueError(f"interval_ns={interval_ns}: expected a positive number of nanoseconds")
        self.interval_ns = interval_ns
        self._meter.interval_ns = interval_ns
        self._meter.last_bucket = BUCKET_COUNT - 1
        self._meter.running = 0
        self._meter.counts = <unsigned long long *>calloc(BUCKET_COUNT, sizeof(unsigned long long))
        if self._meter.counts == NULL:
            raise MemoryError()

    def start(self):
        """Start the thread (once); its counts begin at zero."""
        cdef int failed
        cdef Py_ssize_t index
        if self._meter.running:
            raise RuntimeError("the hiccup meter is already running")
        for index in range(BUCKET_COUNT):
            self._meter.counts[index] = 0
        with nogil:
            failed = hiccup_start(&self._meter)
        if failed:
            raise OSError(failed, "cannot start the hiccup meter's thread")

    def stop(self):
        """Stop and join the thread; return its counts as ``{bucket: count}``, nonzero buckets only."""
        cdef Py_ssize_t index
        cdef dict counts = {}
        with nogil:
            hiccup_stop(&self._meter)
        for index in range(BUCKET_COUNT):
            if self._meter.counts[index]:
                counts[index] = self._meter.counts[index]
        return counts

    @property
    def running(self):
        return bool(self._meter.running)

    def __dealloc__(self):
        hiccup_stop(&self._meter)
        free(self._meter.counts)
