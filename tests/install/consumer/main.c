/* SPDX-License-Identifier: LGPL-2.1-only */
/* A program built only against the installed headers and library. */
#include <evpl/evpl.h>
#include <stdio.h>

static int fired;

static void
on_timer(struct evpl *evpl, struct evpl_timer *timer)
{
    fired++;
    evpl_stop(evpl);
}

int
main(void)
{
    struct evpl *evpl = evpl_create(NULL);
    struct evpl_timer timer;

    evpl_add_oneshot_timer(evpl, &timer, on_timer, 1000);
    evpl_run(evpl);
    evpl_destroy(evpl);
    printf("evpl %s: timer fired %d time(s)\n", EVPL_VERSION_STRING, fired);
    return fired == 1 ? 0 : 1;
}
