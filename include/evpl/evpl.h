/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * libevpl public API.  This is the only header applications include; the
 * sub-headers refuse direct inclusion and rely on this order (later headers
 * use types declared by earlier ones).
 */
#pragma once

#include <stdint.h>
#include <stddef.h>
#include <stdarg.h>
#include <time.h>

#include <evpl/evpl_version.h>

#ifndef EVPL_API
#define EVPL_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define EVPL_INCLUDED 1

/* Strict C99 (-std=c99, no feature macros) leaves struct timespec out of
 * <time.h>; declared here it names the same type in every mode. */
struct timespec;

#include <evpl/evpl_core.h>
#include <evpl/evpl_config.h>
#include <evpl/evpl_logging.h>
#include <evpl/evpl_memory.h>
#include <evpl/evpl_endpoint.h>
#include <evpl/evpl_deferral.h>
#include <evpl/evpl_doorbell.h>
#include <evpl/evpl_fd_event.h>
#include <evpl/evpl_poll.h>
#include <evpl/evpl_timer.h>
#include <evpl/evpl_bind.h>
#include <evpl/evpl_block.h>
#include <evpl/evpl_thread.h>
#include <evpl/evpl_rdma.h>

#undef EVPL_INCLUDED

#ifdef __cplusplus
}
#endif
