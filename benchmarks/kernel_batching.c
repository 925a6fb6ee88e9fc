/* Prototype for issue "batch the kernel work": one closed-loop memcached client, two ways to reach the kernel.
 *
 *   epoll:    one read() per readable connection, one write() per refill, epoll_wait for readiness
 *             (the pattern of every event-loop client: ours on uvloop, memcaslap, memtier on libevent);
 *   io_uring: each connection keeps one receive armed in a ring; the sends and receives of every connection
 *             that completed are submitted, and the next completions reaped, in one io_uring_enter
 *             (registered files, single issuer, task work deferred to that call);
 *   epoll-coalesce: epoll, but once woken it waits 30 us (busy) before reading, so that more replies arrive
 *             in each read and the server rarely finds the client asleep (the pipelined gap's experiment).
 *
 * Everything else is the same code: the request stream (90 % gets, 10 % sets, uniform keys, 64-byte keys,
 * 1024-byte values), the reply parser, the window refill. So the difference in CPU per request between the
 * two modes is what batching the system calls saves, measured before any of it is built into the engine.
 * It measures; it is not a load tool: benchmarks/kernel_batching.py runs it beside the real tools.
 *
 *   kernel_batching HOST PORT MODE(epoll|epoll-coalesce|uring) CONNECTIONS WINDOW SECONDS KEYS PREFIX
 *
 * prints one JSON line: ops, seconds, user and system CPU seconds of the measured phase, gets, hits, and the
 * system calls it made for the load (reads, writes, epoll_wait; or io_uring_enter).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define KEY_SIZE 64
#define VALUE_SIZE 1024
#define READ_ROOM (1 << 18)
#define SEND_ROOM (1 << 16)

struct conn {
    int fd;
    char *in;          /* replies read, not yet parsed */
    size_t have;
    char *out;         /* requests built, not yet handed to the kernel */
    size_t out_len;
    char *sending;     /* io_uring: the buffer a send in flight owns */
    size_t sending_len;
    int send_busy;
    unsigned char *kinds; /* a ring of the kinds of requests in flight: 1 get, 0 set */
    unsigned head, tail, window;
};

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static unsigned long keys;
static const char *prefix;
static char value[VALUE_SIZE];
static unsigned long long ops, gets, hits, syscalls; /* syscalls: of the measured phase */

static uint64_t next_random(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static size_t write_key(char *at, unsigned long index) {
    int n = snprintf(at, KEY_SIZE + 1, "%s%0*lu", prefix, (int)(KEY_SIZE - strlen(prefix)), index);
    return (size_t)n;
}

/* Append the next request of the stream to c->out and remember its kind. */
static void build_request(struct conn *c, int force_set, unsigned long index) {
    char *at = c->out + c->out_len;
    int is_set = force_set || next_random() % 10 == 0;
    if (!force_set) index = next_random() % keys;
    if (is_set) {
        memcpy(at, "set ", 4);
        size_t n = 4 + write_key(at + 4, index);
        n += (size_t)sprintf(at + n, " 0 0 %d\r\n", VALUE_SIZE);
        memcpy(at + n, value, VALUE_SIZE);
        memcpy(at + n + VALUE_SIZE, "\r\n", 2);
        c->out_len += n + VALUE_SIZE + 2;
    } else {
        memcpy(at, "get ", 4);
        size_t n = 4 + write_key(at + 4, index);
        memcpy(at + n, "\r\n", 2);
        c->out_len += n + 2;
    }
    c->kinds[c->tail++ % c->window] = (unsigned char)!is_set;
}

/* Consume the complete replies at the front of c->in; return how many. */
static unsigned parse_replies(struct conn *c) {
    unsigned done = 0;
    size_t at = 0;
    while (c->head != c->tail) {
        char *start = c->in + at;
        size_t left = c->have - at;
        char *eol = memmem(start, left, "\r\n", 2);
        if (!eol) break;
        if (c->kinds[c->head % c->window]) { /* get: VALUE k f n\r\n<n>\r\nEND\r\n, or END\r\n */
            if (left >= 5 && memcmp(start, "END\r\n", 5) == 0) {
                at += 5;
            } else if (left >= 6 && memcmp(start, "VALUE ", 6) == 0) {
                char *space = memrchr(start, ' ', (size_t)(eol - start));
                size_t bytes = strtoul(space + 1, NULL, 10);
                size_t need = (size_t)(eol - start) + 2 + bytes + 2 + 5;
                if (left < need) break;
                at += need;
                hits++;
            } else {
                fprintf(stderr, "unexpected reply to a get: %.*s\n", (int)(eol - start), start);
                exit(1);
            }
            gets++;
        } else { /* set: STORED\r\n */
            if (memcmp(start, "STORED\r\n", 8) != 0) {
                fprintf(stderr, "unexpected reply to a set: %.*s\n", (int)(eol - start), start);
                exit(1);
            }
            at += (size_t)(eol - start) + 2;
        }
        c->head++;
        done++;
    }
    memmove(c->in, c->in + at, c->have - at);
    c->have -= at;
    return done;
}

static int connect_to(const char *host, int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &address.sin_addr);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0) die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void write_all(int fd, const char *data, size_t len) {
    while (len) {
        ssize_t n = write(fd, data, len);
        syscalls++;
        if (n < 0) die("write");
        data += n;
        len -= (size_t)n;
    }
}

/* Fill the keyspace over the first connection, 100 sets at a time (blocking; not measured). */
static void preload(struct conn *c) {
    for (unsigned long first = 0; first < keys; first += 100) {
        unsigned long last = first + 100 < keys ? first + 100 : keys;
        for (unsigned long i = first; i < last; i++) build_request(c, 1, i);
        write_all(c->fd, c->out, c->out_len);
        c->out_len = 0;
        while (c->head != c->tail) {
            ssize_t n = read(c->fd, c->in + c->have, READ_ROOM - c->have);
            if (n <= 0) die("read during preload");
            c->have += (size_t)n;
            parse_replies(c);
        }
    }
}

static void cpu_seconds(double *user, double *system) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    *user = usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6;
    *system = usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
}

static void refill(struct conn *c, unsigned answered) {
    for (unsigned i = 0; i < answered; i++) build_request(c, 0, 0);
}

static void run_epoll(struct conn *conns, int count, double end, double coalesce_s) {
    int ep = epoll_create1(0);
    for (int i = 0; i < count; i++) {
        struct epoll_event event = {.events = EPOLLIN, .data.ptr = &conns[i]};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &event) < 0) die("epoll_ctl");
        refill(&conns[i], conns[i].window);
        write_all(conns[i].fd, conns[i].out, conns[i].out_len);
        conns[i].out_len = 0;
    }
    struct epoll_event events[256];
    while (now() < end) {
        int ready = epoll_wait(ep, events, 256, 100);
        syscalls++;
        if (ready > 0 && coalesce_s > 0) {
            double until = now() + coalesce_s;
            while (now() < until) /* (busy: the replies gather while the client stays awake) */
                ;
        }
        for (int e = 0; e < ready; e++) {
            struct conn *c = events[e].data.ptr;
            ssize_t n = read(c->fd, c->in + c->have, READ_ROOM - c->have);
            syscalls++;
            if (n <= 0) die("read");
            c->have += (size_t)n;
            unsigned answered = parse_replies(c);
            ops += answered;
            refill(c, answered);
            if (c->out_len) {
                write_all(c->fd, c->out, c->out_len);
                c->out_len = 0;
            }
        }
    }
}

enum { RECEIVE = 0, SEND = 1 };

static void arm_receive(struct io_uring *ring, struct conn *c, int index) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    io_uring_prep_recv(sqe, index, c->in + c->have, READ_ROOM - c->have, 0);
    sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, ((uint64_t)index << 1) | RECEIVE);
}

static void start_send(struct io_uring *ring, struct conn *c, int index) {
    char *spare = c->sending;
    c->sending = c->out;
    c->sending_len = c->out_len;
    c->out = spare;
    c->out_len = 0;
    c->send_busy = 1;
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    io_uring_prep_send(sqe, index, c->sending, c->sending_len, 0);
    sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, ((uint64_t)index << 1) | SEND);
}

static void run_uring(struct conn *conns, int count, double end) {
    struct io_uring ring;
    struct io_uring_params params = {0};
    params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN;
    if (io_uring_queue_init_params(4 * (unsigned)count + 8, &ring, &params) < 0) die("io_uring_queue_init");
    int fds[count];
    for (int i = 0; i < count; i++) fds[i] = conns[i].fd;
    if (io_uring_register_files(&ring, fds, (unsigned)count) < 0) die("io_uring_register_files");
    for (int i = 0; i < count; i++) {
        refill(&conns[i], conns[i].window);
        start_send(&ring, &conns[i], i);
        arm_receive(&ring, &conns[i], i);
    }
    struct __kernel_timespec wait = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
    while (now() < end) {
        struct io_uring_cqe *cqe;
        int rc = io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &wait, NULL); /* (one io_uring_enter) */
        syscalls++;
        if (rc < 0 && rc != -ETIME && rc != -EINTR) {
            errno = -rc;
            die("io_uring_submit_and_wait_timeout");
        }
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            seen++;
            int index = (int)(cqe->user_data >> 1);
            struct conn *c = &conns[index];
            if (cqe->res <= 0) {
                errno = -cqe->res;
                die(cqe->user_data & SEND ? "send" : "recv");
            }
            if (cqe->user_data & SEND) {
                if ((size_t)cqe->res != c->sending_len) {
                    fprintf(stderr, "short send\n");
                    exit(1);
                }
                c->send_busy = 0;
                if (c->out_len) start_send(&ring, c, index);
                continue;
            }
            c->have += (size_t)cqe->res;
            unsigned answered = parse_replies(c);
            ops += answered;
            refill(c, answered);
            if (c->out_len && !c->send_busy) start_send(&ring, c, index);
            arm_receive(&ring, c, index);
        }
        io_uring_cq_advance(&ring, seen);
    }
    io_uring_queue_exit(&ring);
}

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr, "usage: %s HOST PORT epoll|epoll-coalesce|uring CONNECTIONS WINDOW SECONDS KEYS PREFIX\n", argv[0]);
        return 2;
    }
    const char *host = argv[1], *mode = argv[3];
    int port = atoi(argv[2]), count = atoi(argv[4]);
    unsigned window = (unsigned)atoi(argv[5]);
    double seconds = atof(argv[6]);
    keys = strtoul(argv[7], NULL, 10);
    prefix = argv[8];
    if (count < 1 || window < 1 || seconds <= 0 || keys < 1 || strlen(prefix) >= KEY_SIZE - 8) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    memset(value, 'x', sizeof value);
    struct conn *conns = calloc((size_t)count, sizeof *conns);
    for (int i = 0; i < count; i++) {
        conns[i].fd = connect_to(host, port);
        conns[i].in = malloc(READ_ROOM);
        conns[i].out = malloc(SEND_ROOM);
        conns[i].sending = malloc(SEND_ROOM);
        conns[i].window = window > 100 ? window : 100; /* (the preload keeps 100 in flight) */
        conns[i].kinds = malloc(conns[i].window);
    }
    preload(&conns[0]);
    for (int i = 0; i < count; i++) conns[i].window = window;
    ops = gets = hits = syscalls = 0;
    double user0, system0, user1, system1;
    cpu_seconds(&user0, &system0);
    double start = now();
    if (strcmp(mode, "epoll") == 0)
        run_epoll(conns, count, start + seconds, 0.0);
    else if (strcmp(mode, "epoll-coalesce") == 0)
        run_epoll(conns, count, start + seconds, 30e-6);
    else if (strcmp(mode, "uring") == 0)
        run_uring(conns, count, start + seconds);
    else {
        fprintf(stderr, "mode must be epoll, epoll-coalesce or uring, not %s\n", mode);
        return 2;
    }
    double elapsed = now() - start;
    cpu_seconds(&user1, &system1);
    printf("{\"ops\": %llu, \"seconds\": %.6f, \"user_s\": %.6f, \"system_s\": %.6f, \"gets\": %llu, \"hits\": %llu, "
           "\"syscalls\": %llu}\n",
           ops, elapsed, user1 - user0, system1 - system0, gets, hits, syscalls);
    return 0;
}
