/* SPDX-License-Identifier: LGPL-2.1-only */
#pragma once

#ifndef EVPL_INCLUDED
#error "Do not include evpl_endpoint.h directly, include evpl/evpl.h instead"
#endif

/* A name to connect to or listen on: host + port, socket path, or an
 * in-process name.  Process-wide and thread-safe; resolved on first use. */
struct evpl_endpoint;

/* A resolved address (library-owned, reference counted). */
struct evpl_address;

/*
 * address starting with '/' or '@': a local (AF_UNIX) endpoint, as
 * evpl_endpoint_create_local; "inproc://name": an in-process endpoint;
 * otherwise a host name, IPv4 or IPv6 literal (NULL means the IPv4
 * wildcard "0.0.0.0") with port.  Returns owned (NULL only for an invalid
 * local path or in-process name).  Any thread; auto-initialises.
 */
EVPL_API struct evpl_endpoint *evpl_endpoint_create(const char *address, int port);

/* "/absolute/path" (at most 107 bytes) or "@abstract" (at most 108 bytes
 * with the '@'); anything else is rejected with NULL. */
EVPL_API struct evpl_endpoint *evpl_endpoint_create_local(const char *path);

/* A process-private name, 1..107 bytes, no scheme. */
EVPL_API struct evpl_endpoint *evpl_endpoint_create_inproc(const char *name);

/* Free the endpoint.  Binds and listeners keep their own address copies. */
EVPL_API void evpl_endpoint_close(struct evpl_endpoint *endpoint);

EVPL_API int evpl_endpoint_is_local(const struct evpl_endpoint *ep);

EVPL_API int evpl_endpoint_is_inproc(const struct evpl_endpoint *ep);

/* The stored text; returns borrowed, valid until the endpoint is closed. */
EVPL_API const char *evpl_endpoint_address(const struct evpl_endpoint *ep);

/* The port of a network endpoint, 0 otherwise. */
EVPL_API int evpl_endpoint_port(const struct evpl_endpoint *ep);
