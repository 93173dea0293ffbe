/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Addresses (resolved, reference counted) and endpoints (names, resolved
 * lazily and cached).  Unlike upstream, IPv6 literals and AAAA names work,
 * and NULL means the IPv4 wildcard.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "net/net.h"

struct evpl_address *
evpl__address_new(const struct sockaddr *sa, socklen_t len)
{
    struct evpl_address *a = calloc(1, sizeof(*a));

    if (!a) {
        return NULL;
    }
    if (len > sizeof(a->sa)) {
        len = sizeof(a->sa);
    }
    atomic_init(&a->refcnt, 1);
    memcpy(&a->sa, sa, len);
    a->addrlen = len;
    return a;
} /* evpl__address_new */

struct evpl_address *
evpl__address_of_fd(int fd, int peer)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int rc;

    memset(&ss, 0, sizeof(ss));
    rc = peer ? getpeername(fd, (struct sockaddr *) &ss, &len)
              : getsockname(fd, (struct sockaddr *) &ss, &len);
    if (rc < 0) {
        return NULL;
    }
    return evpl__address_new((struct sockaddr *) &ss, len);
} /* evpl__address_of_fd */

void
evpl__bind_local_from_fd(struct evpl_bind *bind, int fd)
{
    struct evpl_address *a = evpl__address_of_fd(fd, 0);

    if (a) {
        evpl__address_release(bind->local);
        bind->local = a;
    }
} /* evpl__bind_local_from_fd */

void
evpl__stream_abort(int fd)
{
    int unread = 0;

    if (ioctl(fd, FIONREAD, &unread) == 0 && unread > 0) {
        struct sockaddr sa = {.sa_family = AF_UNSPEC};

        /* TCP: dissolving the association resets it at once, even while
         * an io_uring request still holds the file (close(2) would wait
         * for the last reference); AF_UNIX refuses and ends with a FIN */
        if (connect(fd, &sa, sizeof(sa)) == 0) {
            return;
        }
    }
    (void) shutdown(fd, SHUT_RDWR);
} /* evpl__stream_abort */

void
evpl__address_release(struct evpl_address *a)
{
    if (a && atomic_fetch_sub_explicit(&a->refcnt, 1, memory_order_acq_rel) == 1) {
        free(a);
    }
} /* evpl__address_release */

void
evpl__address_format(const struct evpl_address *a, char *str, int len)
{
    char host[INET6_ADDRSTRLEN];

    if (len <= 0) {
        return;
    }
    if (!a) {
        snprintf(str, (size_t) len, "(NULL)");
        return;
    }
    switch (a->sa.ss_family) {
        case AF_INET: {
            const struct sockaddr_in *in = (const struct sockaddr_in *) &a->sa;

            inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
            snprintf(str, (size_t) len, "%s:%u", host, ntohs(in->sin_port));
            break;
        }
        case AF_INET6: {
            const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) &a->sa;

            inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
            snprintf(str, (size_t) len, "[%s]:%u", host, ntohs(in6->sin6_port));
            break;
        }
        case AF_UNIX: {
            const struct sockaddr_un *un = (const struct sockaddr_un *) &a->sa;
            size_t plen = a->addrlen > offsetof(struct sockaddr_un, sun_path)
                              ? a->addrlen - offsetof(struct sockaddr_un, sun_path)
                              : 0;

            if (plen == 0) {
                snprintf(str, (size_t) len, "unix:*");
            } else if (un->sun_path[0] == '\0') {
                snprintf(str, (size_t) len, "unix:@%.*s", (int) plen - 1, un->sun_path + 1);
            } else {
                snprintf(str, (size_t) len, "unix:%.*s", (int) strnlen(un->sun_path, plen),
                         un->sun_path);
            }
            break;
        }
        case EVPL_AF_INPROC: {
            const struct evpl_inproc_sockaddr *ip = (const struct evpl_inproc_sockaddr *) &a->sa;

            if (ip->serial) {
                snprintf(str, (size_t) len, "inproc:%s#%u", ip->name, ip->serial);
            } else {
                snprintf(str, (size_t) len, "inproc:%s", ip->name);
            }
            break;
        }
        default:
            snprintf(str, (size_t) len, "(family %d)", a->sa.ss_family);
    }
} /* evpl__address_format */

/* ---- endpoints ---- */

static pthread_mutex_t endpoints_lock = PTHREAD_MUTEX_INITIALIZER;
static struct evpl_endpoint *endpoints;

/* Open endpoints stay listed so that those the application never closes
 * remain reachable at exit; they are not freed there, because threads
 * still running may use them. */
static struct evpl_endpoint *
endpoint_new(enum evpl_endpoint_kind kind, const char *text, int port)
{
    struct evpl_endpoint *ep;

    evpl_auto_init();
    ep = calloc(1, sizeof(*ep));
    if (!ep) {
        return NULL;
    }
    ep->kind = kind;
    ep->port = port;
    snprintf(ep->text, sizeof(ep->text), "%s", text);
    pthread_mutex_init(&ep->lock, NULL);
    atomic_init(&ep->refs, 1);

    pthread_mutex_lock(&endpoints_lock);
    ep->next = endpoints;
    if (endpoints) {
        endpoints->prev = ep;
    }
    endpoints = ep;
    pthread_mutex_unlock(&endpoints_lock);
    return ep;
} /* endpoint_new */

EVPL_API struct evpl_endpoint *
evpl_endpoint_create_local(const char *path)
{
    struct sockaddr_un un;
    struct evpl_endpoint *ep;
    size_t n;
    socklen_t alen;

    evpl_auto_init(); /* core.md §1: even when the path is refused */
    if (!path || !*path) {
        return NULL;
    }
    n = strlen(path);
    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    if (path[0] == '/') {
        if (n < 2 || n > sizeof(un.sun_path) - 1) { /* "/" names no file; 107: room for the NUL */
            return NULL;
        }
        memcpy(un.sun_path, path, n);
        alen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + n + 1);
    } else if (path[0] == '@') {
        if (n < 2 || n > sizeof(un.sun_path)) { /* '@' stands for the leading NUL */
            return NULL;
        }
        memcpy(un.sun_path + 1, path + 1, n - 1);
        alen = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        return NULL;
    }
    ep = endpoint_new(EVPL_EP_LOCAL, path, 0);
    if (ep) {
        ep->addr = evpl__address_new((struct sockaddr *) &un, alen);
        atomic_store_explicit(&ep->permanent, ep->addr, memory_order_release);
        if (!ep->addr) {
            evpl_endpoint_close(ep);
            return NULL;
        }
    }
    return ep;
} /* evpl_endpoint_create_local */

struct evpl_address *
evpl__address_inproc(const char *name, uint32_t serial)
{
    struct evpl_inproc_sockaddr ip;

    _Static_assert(sizeof(ip) <= sizeof(struct sockaddr_storage), "in-process address too long");
    memset(&ip, 0, sizeof(ip));
    ip.family = EVPL_AF_INPROC;
    ip.serial = serial;
    snprintf(ip.name, sizeof(ip.name), "%s", name);
    return evpl__address_new((const struct sockaddr *) &ip, sizeof(ip));
} /* evpl__address_inproc */

EVPL_API struct evpl_endpoint *
evpl_endpoint_create_inproc(const char *name)
{
    struct evpl_endpoint *ep;
    char text[256];
    size_t n;

    evpl_auto_init(); /* core.md §1: even when the name is refused */
    if (!name) {
        return NULL;
    }
    n = strlen(name);
    /* a bare name: "inproc://x" here would be a scheme inside a name */
    if (n < 1 || n > 107 || strstr(name, "://")) {
        return NULL;
    }
    snprintf(text, sizeof(text), "inproc://%s", name);
    ep = endpoint_new(EVPL_EP_INPROC, text, 0);
    if (ep) {
        ep->addr = evpl__address_inproc(name, 0);
        atomic_store_explicit(&ep->permanent, ep->addr, memory_order_release);
        if (!ep->addr) {
            evpl_endpoint_close(ep);
            return NULL;
        }
    }
    return ep;
} /* evpl_endpoint_create_inproc */

EVPL_API struct evpl_endpoint *
evpl_endpoint_create(const char *address, int port)
{
    if (!address) {
        address = "0.0.0.0"; /* upstream dereferences NULL; docs say wildcard */
    }
    if (address[0] == '/' || address[0] == '@') {
        return evpl_endpoint_create_local(address);
    }
    if (strncmp(address, "inproc://", 9) == 0) {
        return evpl_endpoint_create_inproc(address + 9);
    }
    return endpoint_new(EVPL_EP_NETWORK, address, port);
} /* evpl_endpoint_create */

static void
endpoint_free(struct evpl_endpoint *ep)
{
    evpl__address_release(ep->addr);
    pthread_mutex_destroy(&ep->lock);
    free(ep);
} /* endpoint_free */

void
evpl__endpoint_release(struct evpl_endpoint *ep)
{
    if (atomic_fetch_sub_explicit(&ep->refs, 1, memory_order_acq_rel) == 1) {
        endpoint_free(ep);
    }
} /* evpl__endpoint_release */

EVPL_API void
evpl_endpoint_close(struct evpl_endpoint *ep)
{
    if (!ep) {
        return;
    }
    pthread_mutex_lock(&endpoints_lock);
    if (ep->prev) {
        ep->prev->next = ep->next;
    } else {
        endpoints = ep->next;
    }
    if (ep->next) {
        ep->next->prev = ep->prev;
    }
    pthread_mutex_unlock(&endpoints_lock);
    evpl__endpoint_release(ep);
} /* evpl_endpoint_close */

EVPL_API int
evpl_endpoint_is_local(const struct evpl_endpoint *ep)
{
    return ep->kind == EVPL_EP_LOCAL;
} /* evpl_endpoint_is_local */

EVPL_API int
evpl_endpoint_is_inproc(const struct evpl_endpoint *ep)
{
    return ep->kind == EVPL_EP_INPROC;
} /* evpl_endpoint_is_inproc */

EVPL_API const char *
evpl_endpoint_address(const struct evpl_endpoint *ep)
{
    return ep->text;
} /* evpl_endpoint_address */

EVPL_API int
evpl_endpoint_port(const struct evpl_endpoint *ep)
{
    return ep->kind == EVPL_EP_NETWORK ? ep->port : 0;
} /* evpl_endpoint_port */

/* Numeric IPv4/IPv6 literal with the endpoint's port, or NULL. */
static struct evpl_address *
parse_numeric(const struct evpl_endpoint *ep)
{
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
    char buf[256];
    const char *host = ep->text;
    size_t n = strlen(host);

    memset(&in, 0, sizeof(in));
    if (inet_pton(AF_INET, host, &in.sin_addr) == 1) {
        in.sin_family = AF_INET;
        in.sin_port = htons((uint16_t) ep->port);
        return evpl__address_new((struct sockaddr *) &in, sizeof(in));
    }
    /* "[::1]" as well as "::1" */
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof(buf)) {
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = '\0';
        host = buf;
    }
    memset(&in6, 0, sizeof(in6));
    if (inet_pton(AF_INET6, host, &in6.sin6_addr) == 1) {
        in6.sin6_family = AF_INET6;
        in6.sin6_port = htons((uint16_t) ep->port);
        return evpl__address_new((struct sockaddr *) &in6, sizeof(in6));
    }
    return NULL;
} /* parse_numeric */

static int
cache_valid(const struct evpl_endpoint *ep, uint64_t now)
{
    if (!ep->addr) {
        return 0;
    }
    if (ep->kind != EVPL_EP_NETWORK || ep->resolved_ns == UINT64_MAX) {
        return 1; /* local and numeric never expire */
    }
    return now - ep->resolved_ns < (uint64_t) evpl_shared->config->resolve_timeout_ms * 1000000ull;
} /* cache_valid */

struct evpl_address *
evpl__endpoint_resolve_nonblocking(struct evpl_endpoint *ep)
{
    struct evpl_address *a = NULL;
    uint64_t now;

    a = atomic_load_explicit(&ep->permanent, memory_order_acquire);
    if (a) {
        return evpl__address_ref(a); /* never replaced: no lock needed */
    }
    pthread_mutex_lock(&ep->lock);
    now = evpl__hf_now_ns();
    if (cache_valid(ep, now)) {
        a = evpl__address_ref(ep->addr);
    } else if (ep->kind == EVPL_EP_NETWORK) {
        a = parse_numeric(ep);
        if (a) {
            ep->addr = evpl__address_ref(a);
            ep->resolved_ns = UINT64_MAX;
            atomic_store_explicit(&ep->permanent, ep->addr, memory_order_release);
        }
    }
    pthread_mutex_unlock(&ep->lock);
    return a;
} /* evpl__endpoint_resolve_nonblocking */

/*
 * DNS for a host name (blocking): one address, IPv4 preferred (what
 * upstream resolves to), picked at random among several.  NULL with *err
 * set to a positive errno when nothing resolves.
 */
struct evpl_address *
evpl__address_lookup(const char *host, int port, int *err)
{
    struct addrinfo hints, *res = NULL, *ai;
    struct evpl_address *a;
    char port_text[16];
    int rc, n = 0, pick;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    snprintf(port_text, sizeof(port_text), "%d", port);
    rc = getaddrinfo(host, port_text, &hints, &res);
    if (rc != 0 || !res) {
        evpl_log_error("net", "cannot resolve %s: %s", host, gai_strerror(rc));
        *err = rc == EAI_SYSTEM ? errno : EHOSTUNREACH;
        return NULL;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        n += ai->ai_family == AF_INET;
    }
    pick = n ? rand() % n : 0;
    for (ai = res; ai; ai = ai->ai_next) {
        if (!n || (ai->ai_family == AF_INET && pick-- == 0)) {
            break;
        }
    }
    a = evpl__address_new(ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(res);
    if (!a) {
        *err = ENOMEM;
    }
    return a;
} /* evpl__address_lookup */

struct evpl_address *
evpl__endpoint_resolve(struct evpl_endpoint *ep)
{
    struct evpl_address *a = evpl__endpoint_resolve_nonblocking(ep);
    int err = 0;

    if (a || ep->kind != EVPL_EP_NETWORK) {
        if (!a) {
            errno = EINVAL;
        }
        return a;
    }

    /* A host name: DNS outside the lock (it may take a while). */
    a = evpl__address_lookup(ep->text, ep->port, &err);
    pthread_mutex_lock(&ep->lock);
    if (a) {
        evpl__address_release(ep->addr);
        ep->addr = evpl__address_ref(a);
        ep->resolved_ns = evpl__hf_now_ns();
    } else if (ep->addr) {
        /* a failed re-resolution keeps the previous address */
        a = evpl__address_ref(ep->addr);
    }
    pthread_mutex_unlock(&ep->lock);
    if (!a) {
        errno = err;
    }
    return a;
} /* evpl__endpoint_resolve */
