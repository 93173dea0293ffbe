/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Host-name resolution for evpl_connect without blocking the loop: the
 * lookup runs on a short-lived thread and its result comes back through a
 * per-loop mailbox and doorbell.  The mailbox is reference counted, so a
 * loop destroyed while a lookup is in flight is never written to, and a
 * bind closed meanwhile simply ignores its answer.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"

struct resolve_req;

struct resolve_box {
    pthread_mutex_t lock;
    int refs; /* the loop + lookups in flight */
    int dead; /* the loop is gone */
    struct resolve_req *done;
    struct evpl_doorbell bell;
};

struct resolve_req {
    struct resolve_req *next;
    struct resolve_box *box;
    struct evpl_bind *bind;   /* loop thread only; NULL once the bind is gone */
    struct evpl_endpoint *ep; /* referenced: the lookup fills its cache */
    char host[256];
    struct evpl_address *result;
    int err;
};

static void
box_unref_locked(struct resolve_box *box)
{
    int last = --box->refs == 0;

    pthread_mutex_unlock(&box->lock);
    if (last) {
        pthread_mutex_destroy(&box->lock);
        free(box);
    }
} /* box_unref_locked */

static void
req_free(struct resolve_req *req)
{
    evpl__address_release(req->result);
    free(req);
} /* req_free */

static void *
lookup_thread(void *arg)
{
    struct resolve_req *req = arg;
    struct resolve_box *box = req->box;

    /* through the endpoint, so the answer is cached for resolve_timeout_ms */
    req->result = evpl__endpoint_resolve(req->ep);
    if (!req->result) {
        req->err = errno ? errno : EHOSTUNREACH;
    }
    evpl__endpoint_release(req->ep);
    req->ep = NULL;

    pthread_mutex_lock(&box->lock);
    if (box->dead) {
        req_free(req);
    } else {
        req->next = box->done;
        box->done = req;
        evpl_ring_doorbell(&box->bell);
    }
    box_unref_locked(box);
    return NULL;
} /* lookup_thread */

static void
results_ready(struct evpl *evpl, struct evpl_doorbell *bell)
{
    struct resolve_box *box = container_of(bell, struct resolve_box, bell);
    struct resolve_req *req, *next;

    pthread_mutex_lock(&box->lock);
    req = box->done;
    box->done = NULL;
    pthread_mutex_unlock(&box->lock);

    for (; req; req = next) {
        struct evpl_bind *bind = req->bind;

        next = req->next;
        if (bind) {
            bind->resolving = NULL;
            if (!req->result) {
                evpl_log_error("net", "cannot resolve %s: %s", req->host, strerror(req->err));
                evpl__bind_fail(evpl, bind, -req->err);
            } else if (!evpl__bind_closing(bind)) {
                int rc;

                bind->remote = req->result;
                req->result = NULL;
                rc = bind->protocol->connect(evpl, bind);
                if (rc < 0) {
                    evpl__bind_fail(evpl, bind, rc);
                }
            }
        }
        req_free(req);
    }
} /* results_ready */

int
evpl__resolve_async(struct evpl *evpl, struct evpl_bind *bind, const struct evpl_endpoint *ep)
{
    struct resolve_box *box = evpl->resolve_box;
    struct resolve_req *req;
    pthread_attr_t attr;
    pthread_t tid;
    int rc;

    if (!box) {
        box = evpl__zalloc(sizeof(*box));
        pthread_mutex_init(&box->lock, NULL);
        box->refs = 1;
        evpl_add_doorbell(evpl, &box->bell, results_ready);
        evpl->resolve_box = box;
    }
    req = calloc(1, sizeof(*req));
    if (!req) {
        return -ENOMEM;
    }
    req->box = box;
    req->bind = bind;
    req->ep = (struct evpl_endpoint *) ep;
    evpl__endpoint_ref(req->ep);
    snprintf(req->host, sizeof(req->host), "%s", ep->text);

    pthread_mutex_lock(&box->lock);
    box->refs++;
    pthread_mutex_unlock(&box->lock);

    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&tid, &attr, lookup_thread, req);
    pthread_attr_destroy(&attr);
    if (rc) {
        pthread_mutex_lock(&box->lock);
        box->refs--;
        pthread_mutex_unlock(&box->lock);
        evpl__endpoint_release(req->ep);
        free(req);
        return -rc;
    }
    bind->resolving = req;
    return 0;
} /* evpl__resolve_async */

void
evpl__resolve_forget(struct evpl_bind *bind)
{
    struct resolve_req *req = bind->resolving;

    if (req) {
        req->bind = NULL;
        bind->resolving = NULL;
    }
} /* evpl__resolve_forget */

void
evpl__resolve_loop_cleanup(struct evpl *evpl)
{
    struct resolve_box *box = evpl->resolve_box;
    struct resolve_req *req, *next;

    if (!box) {
        return;
    }
    /* dead first: lookups finishing from now on no longer ring the bell */
    pthread_mutex_lock(&box->lock);
    box->dead = 1;
    pthread_mutex_unlock(&box->lock);
    evpl_remove_doorbell(evpl, &box->bell);
    pthread_mutex_lock(&box->lock);
    req = box->done;
    box->done = NULL;
    for (; req; req = next) {
        next = req->next;
        req_free(req);
    }
    evpl->resolve_box = NULL;
    box_unref_locked(box);
} /* evpl__resolve_loop_cleanup */

void
evpl__net_loop_cleanup(struct evpl *evpl)
{
    evpl__listener_loop_gone(evpl);
    evpl__resolve_loop_cleanup(evpl);
    evpl__stream_linger_cleanup(evpl);
    evpl__inproc_loop_cleanup(evpl);
#ifdef HAVE_RDMACM
    evpl__rdmacm_loop_cleanup(evpl); /* its completions go to the queue below */
#endif
    evpl__rdma_loop_cleanup(evpl);
} /* evpl__net_loop_cleanup */
