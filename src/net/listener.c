/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Listeners: a thread with its own loop owns the listening sockets and
 * accepts; each connection goes to the next attached loop (round robin)
 * through that binding's lock-free inbox and a doorbell.  The accepting
 * thread never runs application callbacks.
 *
 * One process-wide mutex guards listener <-> binding membership: it is
 * taken once per accepted connection and on attach/detach/destroy, never
 * on a loop's fast path.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/net.h"

struct listen_entry {
    const struct evpl_protocol *protocol;
    void *state;
};

struct listen_request {
    struct listen_request *next;
    const struct evpl_protocol *protocol;
    struct evpl_address *address;
    int result;
    int done;
};

struct evpl_listener {
    struct evpl_thread *thread;
    struct evpl *evpl; /* the listener thread's loop */
    struct evpl_doorbell request_bell;

    pthread_mutex_t req_lock; /* requests, done flags */
    pthread_cond_t req_cond;
    struct listen_request *requests;

    struct listen_entry *listens; /* listener thread only */
    uint32_t nlistens, cap_listens;

    struct evpl_listener_binding **bindings; /* under members_lock */
    uint32_t nbindings, cap_bindings, next_binding;
};

struct evpl_listener_binding {
    struct evpl *evpl;
    struct evpl_listener *listener; /* NULL once the listener is gone */
    evpl_attach_callback_t attach_callback;
    void *private_data;
    struct evpl_doorbell bell;
    _Atomic(struct evpl_accepted *) inbox; /* LIFO, reversed on drain */
    int dispatching;                       /* binding_ring is running: detach defers the free */
    int detached;
    struct evpl_accepted *pending; /* binding_ring's batch, not yet attached */
};

static pthread_mutex_t members_lock = PTHREAD_MUTEX_INITIALIZER;

void
evpl__accepted_free(struct evpl_accepted *conn)
{
    if (conn->fd >= 0) {
        close(conn->fd);
    }
    if (conn->backend && conn->protocol->discard) {
        conn->protocol->discard(conn);
    }
    evpl__address_release(conn->local);
    evpl__address_release(conn->remote);
    free(conn);
} /* evpl__accepted_free */

/* ---- the listener thread ---- */

static void
serve_requests(struct evpl *evpl, struct evpl_doorbell *bell)
{
    struct evpl_listener *l = container_of(bell, struct evpl_listener, request_bell);
    struct listen_request *req, *next;

    pthread_mutex_lock(&l->req_lock);
    req = l->requests;
    l->requests = NULL;
    pthread_mutex_unlock(&l->req_lock);

    for (; req; req = next) {
        void *state = NULL;
        int rc;

        next = req->next;
        rc = req->protocol->listen(evpl, req->protocol, l, req->address, &state);
        if (rc == 0) {
            evpl_array_reserve(l->listens, l->cap_listens, l->nlistens);
            l->listens[l->nlistens].protocol = req->protocol;
            l->listens[l->nlistens].state = state;
            l->nlistens++;
        }
        pthread_mutex_lock(&l->req_lock);
        req->result = rc;
        req->done = 1;
        pthread_cond_broadcast(&l->req_cond);
        pthread_mutex_unlock(&l->req_lock);
    }
} /* serve_requests */

static void *
listener_init(struct evpl *evpl, void *arg)
{
    struct evpl_listener *l = arg;

    l->evpl = evpl;
    evpl_add_doorbell(evpl, &l->request_bell, serve_requests);
    return l;
} /* listener_init */

static void
listener_shutdown(struct evpl *evpl, void *arg)
{
    struct evpl_listener *l = arg;

    for (uint32_t i = 0; i < l->nlistens; i++) {
        l->listens[i].protocol->unlisten(evpl, l->listens[i].state);
    }
    l->nlistens = 0;
    evpl_remove_doorbell(evpl, &l->request_bell);
} /* listener_shutdown */

EVPL_API struct evpl_listener *
evpl_listener_create(void)
{
    struct evpl_listener *l = evpl__zalloc(sizeof(*l));

    pthread_mutex_init(&l->req_lock, NULL);
    pthread_cond_init(&l->req_cond, NULL);
    l->thread = evpl_thread_create(NULL, listener_init, listener_shutdown, l);
    return l;
} /* evpl_listener_create */

EVPL_API void
evpl_listener_destroy(struct evpl_listener *l)
{
    /* disown the bindings: they still need evpl_listener_detach */
    pthread_mutex_lock(&members_lock);
    for (uint32_t i = 0; i < l->nbindings; i++) {
        l->bindings[i]->listener = NULL;
    }
    l->nbindings = 0;
    pthread_mutex_unlock(&members_lock);

    /* closes the listening sockets and removes socket files on its thread */
    evpl_thread_destroy(l->thread);

    free(l->listens);
    free(l->bindings);
    pthread_mutex_destroy(&l->req_lock);
    pthread_cond_destroy(&l->req_cond);
    free(l);
} /* evpl_listener_destroy */

EVPL_API int
evpl_listen(struct evpl_listener *listener, enum evpl_protocol_id protocol,
            struct evpl_endpoint *endpoint)
{
    const struct evpl_protocol *p = evpl__protocol(protocol);
    struct listen_request req;

    if (!p || !p->connected || !p->listen) {
        evpl_log_error("net", "evpl_listen: protocol %d cannot listen here", (int) protocol);
        return -1;
    }
    if (!endpoint || endpoint->kind != p->kind) {
        evpl_log_error("net", "evpl_listen: endpoint kind does not match %s", p->name);
        return -1;
    }
    memset(&req, 0, sizeof(req));
    req.protocol = p;
    req.address = evpl__endpoint_resolve(endpoint);
    if (!req.address) {
        evpl_log_error("net", "evpl_listen: cannot resolve %s", endpoint->text);
        return -1;
    }

    pthread_mutex_lock(&listener->req_lock);
    req.next = listener->requests;
    listener->requests = &req;
    pthread_mutex_unlock(&listener->req_lock);
    evpl_ring_doorbell(&listener->request_bell);

    /* synchronous: back only once the socket is accepting (or failed) */
    pthread_mutex_lock(&listener->req_lock);
    while (!req.done) {
        pthread_cond_wait(&listener->req_cond, &listener->req_lock);
    }
    pthread_mutex_unlock(&listener->req_lock);

    evpl__address_release(req.address);
    if (req.result < 0) {
        evpl_log_error("net", "evpl_listen on %s (%s): %s", endpoint->text, p->name,
                       strerror(-req.result));
        return -1;
    }
    return 0;
} /* evpl_listen */

/* Hand conn to the next attached loop; with members_lock held.  Returns 0,
 * or -1 when no loop is attached (conn untouched). */
static int
deliver_locked(struct evpl_listener *l, struct evpl_accepted *conn)
{
    struct evpl_listener_binding *b;

    if (!l || l->nbindings == 0) {
        return -1;
    }
    b = l->bindings[l->next_binding++ % l->nbindings];
    conn->next = atomic_load_explicit(&b->inbox, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&b->inbox, &conn->next, conn,
                                                  memory_order_release, memory_order_relaxed)) {
    }
    /* rung under the lock: detach cannot free the doorbell meanwhile */
    evpl_ring_doorbell(&b->bell);
    return 0;
} /* deliver_locked */

void
evpl__listener_deliver(struct evpl_listener *l, struct evpl_accepted *conn)
{
    int rc;

    pthread_mutex_lock(&members_lock);
    rc = deliver_locked(l, conn);
    pthread_mutex_unlock(&members_lock);
    if (rc < 0) {
        /* nobody to hand it to: close it rather than leave it hanging */
        evpl_log_debug("net", "connection with no attached loop closed");
        evpl__accepted_free(conn);
    }
} /* evpl__listener_deliver */

void
evpl__accept_failed(struct evpl *evpl, struct evpl_accept_errlog *log, const char *module, int err)
{
    uint64_t now = evpl__now(evpl);

    if (log->last_ns && now - log->last_ns < 10000000000ull) {
        log->quiet++;
        return;
    }
    if (log->quiet) {
        evpl_log_error(module, "accept: %s; retrying every %d ms (%u more failures in %llu s)",
                       strerror(err), EVPL_ACCEPT_RETRY_US / 1000, log->quiet,
                       (unsigned long long) ((now - log->last_ns) / 1000000000ull));
    } else {
        evpl_log_error(module, "accept: %s; retrying every %d ms", strerror(err),
                       EVPL_ACCEPT_RETRY_US / 1000);
    }
    log->last_ns = now ? now : 1;
    log->quiet = 0;
} /* evpl__accept_failed */

/* ---- the attached loops ---- */

static struct evpl_accepted *
inbox_take(struct evpl_listener_binding *b)
{
    struct evpl_accepted *list = atomic_exchange_explicit(&b->inbox, NULL, memory_order_acquire);
    struct evpl_accepted *fifo = NULL;

    while (list) { /* reverse: arrival order */
        struct evpl_accepted *next = list->next;

        list->next = fifo;
        fifo = list;
        list = next;
    }
    return fifo;
} /* inbox_take */

static void
binding_ring(struct evpl *evpl, struct evpl_doorbell *bell)
{
    struct evpl_listener_binding *b = container_of(bell, struct evpl_listener_binding, bell);
    struct evpl_accepted *conn;

    b->dispatching = 1;
    b->pending = inbox_take(b);
    /* an attach callback that detaches hands the rest of the batch on
     * (evpl_listener_detach): the loop then finds nothing more here */
    while ((conn = b->pending) != NULL) {
        struct evpl_bind *bind;
        int rc;

        b->pending = conn->next;
        bind = evpl__bind_alloc(evpl, conn->protocol, NULL, NULL, NULL);
        /* the addresses are known before the application sees the bind:
         * an attach callback may log or check its peer */
        bind->local = conn->local;
        bind->remote = conn->remote;
        conn->local = conn->remote = NULL;
        b->attach_callback(evpl, bind, &bind->notify_callback, &bind->segment_callback,
                           &bind->private_data, b->private_data);
        if (!conn->protocol->stream) {
            bind->segment_callback = NULL;
        }
        if (!bind->notify_callback) {
            evpl_bug("net", "attach callback did not set a notify callback");
        }
        rc = conn->protocol->attach(evpl, bind, conn);
        evpl__accepted_free(conn);
        if (rc < 0) {
            evpl__bind_fail(evpl, bind, rc);
            continue;
        }
        if (!bind->protocol->own_connected) {
            evpl__bind_connected(evpl, bind);
        }
    }
    b->dispatching = 0;
    if (b->detached) {
        free(b);
    }
} /* binding_ring */

EVPL_API struct evpl_listener_binding *
evpl_listener_attach(struct evpl *evpl, struct evpl_listener *listener,
                     evpl_attach_callback_t attach_callback, void *private_data)
{
    EVPL_OWNER_ONLY(evpl);
    struct evpl_listener_binding *b = evpl__zalloc(sizeof(*b));

    b->evpl = evpl;
    b->listener = listener;
    b->attach_callback = attach_callback;
    b->private_data = private_data;
    atomic_init(&b->inbox, NULL);
    evpl_add_doorbell(evpl, &b->bell, binding_ring);

    pthread_mutex_lock(&members_lock);
    evpl_array_reserve(listener->bindings, listener->cap_bindings, listener->nbindings);
    listener->bindings[listener->nbindings++] = b;
    pthread_mutex_unlock(&members_lock);
    return b;
} /* evpl_listener_attach */

EVPL_API void
evpl_listener_detach(struct evpl *evpl, struct evpl_listener_binding *b)
{
    struct evpl_listener *l;
    struct evpl_accepted *conn, *next, *orphans = NULL;

    if (b->evpl != evpl || !pthread_equal(pthread_self(), evpl->owner)) {
        evpl_bug("net", "evpl_listener_detach must run on the binding's loop (net.md §4)");
    }
    pthread_mutex_lock(&members_lock);
    l = b->listener;
    if (l) {
        for (uint32_t i = 0; i < l->nbindings; i++) {
            if (l->bindings[i] == b) {
                memmove(&l->bindings[i], &l->bindings[i + 1],
                        (l->nbindings - i - 1) * sizeof(l->bindings[0]));
                l->nbindings--;
                break;
            }
        }
    }
    /* connections queued for us but not yet shown to the application (no
     * more can come; with the listener still known here, as it may be
     * destroyed as soon as we return): they go to the loops still
     * attached, or are closed if there are none */
    for (int list = 0; list < 2; list++) {
        conn = list ? b->pending : inbox_take(b);
        for (; conn; conn = next) {
            next = conn->next;
            if (deliver_locked(l, conn) < 0) {
                conn->next = orphans;
                orphans = conn;
            }
        }
    }
    b->pending = NULL;
    pthread_mutex_unlock(&members_lock);

    evpl_remove_doorbell(evpl, &b->bell);
    for (conn = orphans; conn; conn = next) {
        next = conn->next;
        evpl__accepted_free(conn);
    }
    if (b->dispatching) {
        b->detached = 1; /* binding_ring frees it when it returns */
        return;
    }
    free(b);
} /* evpl_listener_detach */

/* evpl_destroy: bindings the program left attached (net.md §4 asks it to
 * detach them first; upstream then hands connections to the freed loop)
 * are detached here, with an error, their queued connections going to the
 * loops still attached. */
void
evpl__listener_loop_gone(struct evpl *evpl)
{
    for (uint32_t i = evpl->doorbells_len; i-- > 0;) {
        struct evpl_doorbell_impl *db = evpl->doorbells[i];

        if (db->callback == binding_ring) {
            struct evpl_listener_binding *b =
                container_of((struct evpl_doorbell *) db, struct evpl_listener_binding, bell);

            evpl_log_error("net", "evpl_destroy: listener binding %p still attached: detached",
                           (void *) b);
            evpl_listener_detach(evpl, b);
            i = evpl->doorbells_len; /* (the array changed) */
        }
    }
} /* evpl__listener_loop_gone */
