/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Receive flow control for the module libraries (libevpl_rpc2): a protocol
 * layer that must stop taking messages from a connection (its answers are
 * piling up unsent, too many are being served) holds the bind's receive
 * side.  Internal to our libraries: exported by libevpl.so for them,
 * declared in no public header.
 */
#ifndef EVPL_NET_HOLD_H
#define EVPL_NET_HOLD_H

#include <evpl/evpl.h>

/*
 * hold 1: a segmented stream bind delivers no more messages (what arrives
 * stays buffered; past stream_recv_limit the transports that pause for
 * back-pressure stop reading, so TCP pushes back on the peer).  hold 0:
 * the buffered messages are delivered from a deferral (never inside this
 * call) and reading resumes.  Messages still held when the peer closes or
 * the bind fails are dropped with it: their answers could not be sent,
 * and serving them all at once would undo the hold.  On other binds it
 * does nothing: message protocols carry replies to the holder's own
 * requests (RDMA reads on TCP-RDMA) in the same order as new messages.
 */
EVPL_API void evpl__bind_hold_recv(struct evpl *evpl, struct evpl_bind *bind, int hold);

/*
 * A stream bind's own receive limit, when it is below stream_recv_limit
 * (0: that limit again): the transport stops reading once the bind holds
 * more unconsumed bytes (TCP pushes back on the peer) and resumes below
 * half of it.  A module that parses what arrives (libevpl_http) keeps what
 * a peer that sends faster than it is served can make it hold small.  It
 * must stay above the longest unit the module needs whole to consume
 * anything (a head), or reading stalls.
 */
EVPL_API void evpl__bind_set_recv_limit(struct evpl *evpl, struct evpl_bind *bind, uint64_t bytes);

/*
 * park 1: the module will not take what a stream bind holds for a long
 * time (its peer reads none of the answers): those bytes, and what arrives
 * until park 0, move to buffer space kept for data that waits, so the
 * buffers they were read into (shared with other connections' input) can
 * go back.  Lower the receive limit first, so little is copied.  Calling
 * it again with the same value is cheap.
 */
EVPL_API void evpl__bind_compact_recv(struct evpl *evpl, struct evpl_bind *bind, int park);

#endif
