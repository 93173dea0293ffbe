/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The protocol registry: one table of every protocol id, filled by the
 * backends that are compiled in.  Adding a backend means adding its table
 * here and nothing else.
 */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "net/net.h"

extern const struct evpl_protocol evpl_protocol_socket_tcp;
extern const struct evpl_protocol evpl_protocol_socket_udp;
extern const struct evpl_protocol evpl_protocol_socket_unix;
extern const struct evpl_protocol evpl_protocol_inproc_stream;
extern const struct evpl_protocol evpl_protocol_inproc_datagram;
extern const struct evpl_protocol evpl_protocol_tcp_rdma;
#ifdef HAVE_RDMACM
extern const struct evpl_protocol evpl_protocol_rdmacm_rc_datagram;
extern const struct evpl_protocol evpl_protocol_rdmacm_rc_stream;
extern const struct evpl_protocol evpl_protocol_rdmacm_ud_datagram;
#endif
#ifdef HAVE_TLS
extern const struct evpl_protocol evpl_protocol_socket_tls;
#endif
#ifdef HAVE_IO_URING
extern const struct evpl_protocol evpl_protocol_io_uring_tcp;
extern const struct evpl_protocol evpl_protocol_io_uring_udp;
#endif

static const struct evpl_protocol *const compiled_in[] = {
    &evpl_protocol_socket_udp,         &evpl_protocol_socket_tcp,
    &evpl_protocol_socket_unix,        &evpl_protocol_inproc_stream,
    &evpl_protocol_inproc_datagram,    &evpl_protocol_tcp_rdma,
#ifdef HAVE_TLS
    &evpl_protocol_socket_tls,
#endif
#ifdef HAVE_IO_URING
    &evpl_protocol_io_uring_tcp,       &evpl_protocol_io_uring_udp,
#endif
#ifdef HAVE_RDMACM
    &evpl_protocol_rdmacm_rc_datagram, &evpl_protocol_rdmacm_rc_stream,
    &evpl_protocol_rdmacm_ud_datagram,
#endif
};

static const char *const names[EVPL_NUM_PROTO] = {
    [EVPL_DATAGRAM_SOCKET_UDP] = "DATAGRAM_SOCKET_UDP",
    [EVPL_DATAGRAM_RDMACM_RC] = "DATAGRAM_RDMACM_RC",
    [EVPL_DATAGRAM_RDMACM_UD] = "DATAGRAM_RDMACM_UD",
    [EVPL_STREAM_SOCKET_TCP] = "STREAM_SOCKET_TCP",
    [EVPL_STREAM_XLIO_TCP] = "STREAM_XLIO_TCP",
    [EVPL_STREAM_IO_URING_TCP] = "STREAM_IO_URING_TCP",
    [EVPL_STREAM_RDMACM_RC] = "STREAM_RDMACM_RC",
    [EVPL_STREAM_SOCKET_TLS] = "STREAM_SOCKET_TLS",
    [EVPL_DATAGRAM_TCP_RDMA] = "DATAGRAM_TCP_RDMA",
    [EVPL_STREAM_SOCKET_UNIX] = "STREAM_SOCKET_UNIX",
    [EVPL_STREAM_INPROC] = "STREAM_INPROC",
    [EVPL_DATAGRAM_INPROC] = "DATAGRAM_INPROC",
    [EVPL_DATAGRAM_IO_URING_UDP] = "DATAGRAM_IO_URING_UDP",
};

static const struct evpl_protocol *table[EVPL_NUM_PROTO];
/* not available when the table was made, for a reason that may pass (no
 * descriptor for io_uring's probe ring): asked again on each lookup */
static const struct evpl_protocol *undecided[EVPL_NUM_PROTO];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void
table_init(void)
{
    for (size_t i = 0; i < sizeof(compiled_in) / sizeof(compiled_in[0]); i++) {
        const struct evpl_protocol *p = compiled_in[i];
        int rc = p->available ? p->available() : 1;

        if (rc > 0) {
            table[p->id] = p;
        } else if (rc < 0) {
            undecided[p->id] = p;
        }
    }
} /* table_init */

const struct evpl_protocol *
evpl__protocol(enum evpl_protocol_id id)
{
    const struct evpl_protocol *p;

    evpl_auto_init();
    pthread_once(&table_once, table_init);
    if ((unsigned) id >= EVPL_NUM_PROTO) {
        return NULL;
    }
    p = __atomic_load_n(&table[id], __ATOMIC_ACQUIRE);
    if (!p && undecided[id] && undecided[id]->available() > 0) {
        p = undecided[id];
        __atomic_store_n(&table[id], p, __ATOMIC_RELEASE);
    }
    return p;
} /* evpl__protocol */

EVPL_API int
evpl_protocol_lookup(enum evpl_protocol_id *id, const char *name)
{
    evpl_auto_init(); /* core.md §1: an auto-initializing call, whatever the name */
    if (!name || !id) {
        return -1;
    }
    for (int i = 0; i < EVPL_NUM_PROTO; i++) {
        if (strcmp(names[i], name) == 0 && evpl__protocol((enum evpl_protocol_id) i)) {
            *id = (enum evpl_protocol_id) i;
            return 0;
        }
    }
    return -1;
} /* evpl_protocol_lookup */

EVPL_API int
evpl_protocol_available(enum evpl_protocol_id protocol)
{
    return evpl__protocol(protocol) != NULL;
} /* evpl_protocol_available */

EVPL_API int
evpl_protocol_is_stream(enum evpl_protocol_id protocol)
{
    const struct evpl_protocol *p = evpl__protocol(protocol);

    return p && p->stream;
} /* evpl_protocol_is_stream */

EVPL_API int
evpl_protocol_is_local(enum evpl_protocol_id protocol)
{
    const struct evpl_protocol *p = evpl__protocol(protocol);

    return p && p->kind == EVPL_EP_LOCAL;
} /* evpl_protocol_is_local */

EVPL_API int
evpl_protocol_is_inproc(enum evpl_protocol_id protocol)
{
    const struct evpl_protocol *p = evpl__protocol(protocol);

    return p && p->kind == EVPL_EP_INPROC;
} /* evpl_protocol_is_inproc */

/*
 * Transport families and their preference order, best first.  Later
 * backends (io_uring, XLIO) go in front of the kernel socket ones here.
 */
struct family {
    const char *name;
    enum evpl_protocol_id order[4];
    int n;
};

static const struct family families[] = {
    {"TCP", {EVPL_STREAM_XLIO_TCP, EVPL_STREAM_IO_URING_TCP, EVPL_STREAM_SOCKET_TCP}, 3},
    {"UDP", {EVPL_DATAGRAM_SOCKET_UDP, EVPL_DATAGRAM_IO_URING_UDP}, 2},
    {"UNIX", {EVPL_STREAM_SOCKET_UNIX}, 1},
    {"TLS", {EVPL_STREAM_SOCKET_TLS}, 1},
    {"RDMA", {EVPL_STREAM_RDMACM_RC, EVPL_DATAGRAM_RDMACM_RC, EVPL_DATAGRAM_TCP_RDMA}, 3},
    {"INPROC", {EVPL_STREAM_INPROC, EVPL_DATAGRAM_INPROC}, 2},
};

/*
 * io_uring TCP leads only where it measured at least as fast as kernel
 * sockets on every benchmark: on loops that wait on io_uring (one ring,
 * one enter per pass).  On epoll loops its ring is a second wait source
 * and 64 B ping-pong measured 0.9x sockets (docs/PERFORMANCE.md).
 */
static int
preferred(enum evpl_protocol_id id)
{
    if (id == EVPL_STREAM_IO_URING_TCP) {
        return strcmp(evpl_shared->mech->name, "io_uring") == 0;
    }
    return 1;
} /* preferred */

EVPL_API int
evpl_protocol_best(const char *family, enum evpl_protocol_id *id)
{
    char var[64];
    const char *env;

    if (!family || !id) {
        return -1;
    }
    for (size_t f = 0; f < sizeof(families) / sizeof(families[0]); f++) {
        if (strcasecmp(families[f].name, family) != 0) {
            continue;
        }
        /* EVPL_PROTOCOL_TCP=STREAM_SOCKET_TCP forces a choice, if available */
        snprintf(var, sizeof(var), "EVPL_PROTOCOL_%s", families[f].name);
        env = getenv(var);
        if (env && *env) {
            if (evpl_protocol_lookup(id, env) == 0) {
                return 0;
            }
            evpl_log_error("net", "%s=%s is not an available protocol; using the default order",
                           var, env);
        }
        for (int i = 0; i < families[f].n; i++) {
            if (evpl__protocol(families[f].order[i]) && preferred(families[f].order[i])) {
                *id = families[f].order[i];
                return 0;
            }
        }
        for (int i = 0; i < families[f].n; i++) {
            if (evpl__protocol(families[f].order[i])) {
                *id = families[f].order[i];
                return 0;
            }
        }
        return -1;
    }
    return -1;
} /* evpl_protocol_best */
