/* SPDX-License-Identifier: LGPL-2.1-only */
/* Kernel socket backends: TCP, UNIX streams (stream.c), UDP (udp.c). */
#pragma once

#include "net/net.h"

/* bind(2), for functions where "bind" names the evpl_bind argument */
static inline int
sys_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
    return bind(fd, sa, len);
} /* sys_bind */

/* Kernel sockets are always there. */
static inline int
evpl__socket_available(void)
{
    return 1;
}

static inline struct evpl_bind *
evpl_socket_bind(struct evpl_event *event)
{
    return container_of(event, struct evpl_bind, event);
} /* evpl_socket_bind */

/* stream.c: shared by TCP and AF_UNIX */
int evpl__stream_connect(struct evpl *evpl, struct evpl_bind *bind);
int evpl__stream_attach(struct evpl *evpl, struct evpl_bind *bind, struct evpl_accepted *conn);
int evpl__stream_listen(struct evpl *evpl, const struct evpl_protocol *protocol,
                        struct evpl_listener *listener, struct evpl_address *address, void **state);
void evpl__stream_unlisten(struct evpl *evpl, void *state);
void evpl__stream_flush(struct evpl *evpl, struct evpl_bind *bind);
void evpl__stream_close(struct evpl *evpl, struct evpl_bind *bind);
void evpl__stream_read_resume(struct evpl *evpl, struct evpl_bind *bind);
/* Whole messages finished by bytes written (segmented binds' SENT.msgs). */
uint64_t evpl__stream_messages_done(struct evpl_bind *bind, uint64_t bytes);
/* Error/hang-up on a stream socket: connect failure or a broken connection. */
void evpl__stream_error(struct evpl *evpl, struct evpl_event *event);
/* Graceful close of a non-blocking stream socket: FIN after the queued
 * bytes, then drain until the peer closes (the loop owns fd afterwards). */
int evpl__stream_linger(struct evpl *evpl, int fd);
