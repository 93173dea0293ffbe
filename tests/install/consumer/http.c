/* SPDX-License-Identifier: LGPL-2.1-only */
/* An HTTP module consumer: builds against the installed evpl_http. */
#include <evpl/evpl_http.h>
#include <stdio.h>

int
main(void)
{
    struct evpl *evpl = evpl_create(NULL);
    struct evpl_http_agent *agent = evpl_http_init(evpl);

    evpl_http_destroy(agent);
    evpl_destroy(evpl);
    printf("http consumer ok\n");
    return 0;
}
