/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * max_datagram_size smaller than buffer_size, by less than io_uring UDP's
 * per-datagram header room (core.md: max_datagram_size is the largest
 * receivable datagram; net.md §7 rule 7): datagrams up to it arrive whole,
 * one byte more is dropped, and the bind keeps receiving.  io_uring UDP
 * received into the whole buffer and delivered a datagram of 4001 bytes
 * with max_datagram_size 4000 (helper-103).  The body is
 * test_udp_small_buffers.c's.
 */
/* MATRIX: datagram */
/* ALSO_MECH: io_uring */
#define T_BUFFER_SIZE  4096
#define T_MAX_DATAGRAM 4000
#include "test_udp_small_buffers.c"
