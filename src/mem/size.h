/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The buffer size, for the module libraries (libevpl_http) that size
 * allocations by it.  Internal to our libraries: exported by libevpl.so for
 * them, declared in no public header.
 */
#ifndef EVPL_MEM_SIZE_H
#define EVPL_MEM_SIZE_H

#include <stdint.h>

#include <evpl/evpl.h>

/* The global config's buffer_size once the library is initialised (the
 * most one evpl_iovec_alloc iovec holds). */
EVPL_API uint64_t evpl__iovec_buffer_size(void);

#endif
