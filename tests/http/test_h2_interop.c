/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * HTTP/2 interoperability with real tools (http.md §6, §7): our h2c server
 * (prior knowledge) against
 *   curl --http2-prior-knowledge: GET (HTTP version 2, the body, a
 *     lower-cased application field), POST of 1 MiB echoed back byte for
 *     byte, HEAD, an unimplemented method -> 501;
 *   nghttp: an upload without content-length carrying a trailer (the
 *     server reads it at RECEIVE_COMPLETE), a chunked response with
 *     trailers;
 *   h2load -n 2000 -c 4 -m 10: all 2000 succeed; and 200 concurrent
 *     256 KiB uploads (-d), every body checked by the server;
 * and our h2c client against nghttpd when it is installed (package
 * nghttp2-server; otherwise that part is skipped).  The whole program
 * skips (77) when none of the tools exists.
 *
 * The tools run as child processes while the loop runs on the main thread
 * (t_tool_run), every wait with a deadline.
 */
#include "t_h2.h"

#include <sys/stat.h>

#define UPLOAD_LEN (1u << 20)
#define H2LOAD_LEN (256u << 10)
#define SEED       0x7171u

struct sreq {
    struct t_buf body;
    struct t_buf trailers;
    char url[256];
    int type;
    int want_step;
};

static struct evpl *evpl;
static struct evpl_http_agent *agent;
static int n_dispatch, n_rcomplete, n_failed, n_not_h2, n_bad_body, n_bad_event;
static struct t_buf last_headers, last_trailers;

static void
take(struct evpl_http_request *req, struct t_buf *b)
{
    t_take_all(evpl, req, b);
}

static void
notify(struct evpl *e, struct evpl_http_agent *ag, struct evpl_http_request *req,
       enum evpl_http_notify_type type, enum evpl_http_request_type rt, const char *uri,
       void *notify_data, void *private_data)
{
    struct sreq *s = notify_data;

    (void) e;
    (void) ag;
    (void) rt;
    (void) uri;
    (void) private_data;
    switch (type) {
        case EVPL_HTTP_NOTIFY_RECEIVE_DATA:
            take(req, &s->body);
            break;
        case EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE:
            take(req, &s->body);
            t_buf_free(&last_trailers);
            evpl_http_request_trailer_iterate(req, t_fields_cb, &last_trailers);
            if (strcmp(s->url, "/echo") == 0) {
                evpl_http_server_set_response_length(req, s->body.len);
                t_add_bytes(evpl, req, s->body.p ? s->body.p : "", s->body.len);
                evpl_http_server_dispatch_default(req, 200);
            } else if (strcmp(s->url, "/check") == 0) {
                /* h2load uploads: the pattern, whole */
                char b[64];

                if (s->body.len != H2LOAD_LEN ||
                    t_pattern_check(SEED, 0, s->body.p, H2LOAD_LEN) != -1) {
                    n_bad_body++;
                }
                snprintf(b, sizeof(b), "%zu", s->body.len);
                evpl_http_server_set_response_length(req, strlen(b));
                t_add_str(evpl, req, b);
                evpl_http_server_dispatch_default(req, 200);
            } else if (strcmp(s->url, "/trailers") == 0) {
                char b[256];
                const char *t = evpl_http_request_trailer(req, "x-up-trl");

                snprintf(b, sizeof(b), "got %zu bytes, trailer %s\n", s->body.len,
                         t ? t : "(none)");
                evpl_http_server_set_response_chunked(req);
                evpl_http_server_dispatch_default(req, 200);
                t_add_str(evpl, req, b);
            } else {
                T_EQ(evpl_http_request_add_header(req, "X-Server-Field", "Yes"), 0);
                evpl_http_server_set_response_length(req, 9);
                t_add_str(evpl, req, "hello h2\n");
                evpl_http_server_dispatch_default(req, 200);
            }
            break;
        case EVPL_HTTP_NOTIFY_WANT_DATA:
            if (strcmp(s->url, "/trailers") == 0 && s->want_step++ == 0) {
                t_add_str(evpl, req, "second piece\n");
                T_EQ(evpl_http_request_add_trailer(req, "X-Resp-Trl", "t2"), 0);
                evpl_http_request_add_datav(req, NULL, 0);
            }
            break;
        case EVPL_HTTP_NOTIFY_RESPONSE_COMPLETE:
        case EVPL_HTTP_NOTIFY_FAILED:
            if (type == EVPL_HTTP_NOTIFY_FAILED) {
                n_failed++;
            } else {
                n_rcomplete++;
            }
            t_buf_free(&s->body);
            t_buf_free(&s->trailers);
            free(s);
            break;
        default:
            n_bad_event++;
            break;
    }
}

static void
dispatch(struct evpl *e, struct evpl_http_agent *ag, struct evpl_http_request *req,
         evpl_http_notify_callback_t *cb, void **nd, void *priv)
{
    struct sreq *s = calloc(1, sizeof(*s));

    (void) e;
    (void) ag;
    (void) priv;
    T_OK(s != NULL);
    n_dispatch++;
    if (evpl_http_request_protocol(req) != EVPL_HTTP_PROTOCOL_HTTP2) {
        n_not_h2++;
    }
    snprintf(s->url, sizeof(s->url), "%s", evpl_http_request_url(req, NULL));
    s->type = (int) evpl_http_request_type(req);
    t_buf_free(&last_headers);
    evpl_http_request_header_iterate(req, t_fields_cb, &last_headers);
    *cb = notify;
    *nd = s;
}

static char tmpdir[256];

static void
write_file(const char *path, size_t len, uint64_t seed)
{
    char *buf = malloc(len);
    FILE *f = fopen(path, "wb");

    T_OK(buf && f);
    t_pattern_fill(seed, 0, buf, len);
    T_EQ_U(fwrite(buf, 1, len, f), len);
    fclose(f);
    free(buf);
}

static struct t_buf
read_file(const char *path)
{
    struct t_buf b = {0};
    FILE *f = fopen(path, "rb");
    char tmp[65536];
    size_t n;

    T_OK(f != NULL);
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0) {
        t_buf_add(&b, tmp, n);
    }
    fclose(f);
    return b;
}

static int
run(char *const argv[], struct t_buf *out, unsigned int ms)
{
    int rc;

    t_buf_free(out);
    rc = t_tool_run(evpl, NULL, argv, out, ms);
    fprintf(stderr, "  exit %d, output:\n%s\n", rc, t_buf_str(out));
    return rc;
}

static void
curl_part(const char *base)
{
    struct t_buf out = {0};
    char url[256], upfile[300], outfile[300], data_arg[320];
    int n0;

    fprintf(stderr, "-- curl --http2-prior-knowledge\n");
    snprintf(url, sizeof(url), "%s/hello", base);
    {
        char *argv[] = {"curl",
                        "-sS",
                        "--http2-prior-knowledge",
                        "-D",
                        "-",
                        "-H",
                        "X-Curl-Case: MiXed",
                        "-w",
                        "|%{http_version} %{response_code}",
                        url,
                        NULL};

        T_EQ(run(argv, &out, 20000), 0);
    }
    T_OK(strstr(t_buf_str(&out), "HTTP/2 200") != NULL);
    T_OK(strstr(t_buf_str(&out), "x-server-field: Yes\r\n") != NULL);
    T_OK(strstr(t_buf_str(&out), "\r\n\r\nhello h2\n|2 200") != NULL);
    fprintf(stderr, "  ok: HTTP/2 200, x-server-field, body\n");
    T_OK(t_has_field(&last_headers, "x-curl-case: MiXed\n"));
    T_OK(t_has_field(&last_headers, "Host: 127.0.0.1:"));
    fprintf(stderr, "  ok: server saw x-curl-case and Host (from :authority)\n");

    /* 1 MiB POST echoed back */
    snprintf(upfile, sizeof(upfile), "%s/up.bin", tmpdir);
    snprintf(outfile, sizeof(outfile), "%s/out.bin", tmpdir);
    snprintf(data_arg, sizeof(data_arg), "@%s", upfile);
    write_file(upfile, UPLOAD_LEN, SEED);
    snprintf(url, sizeof(url), "%s/echo", base);
    {
        char *argv[] = {"curl",
                        "-sS",
                        "--http2-prior-knowledge",
                        "--data-binary",
                        data_arg,
                        "-o",
                        outfile,
                        "-w",
                        "%{http_version} %{response_code} %{size_download}",
                        url,
                        NULL};
        char want[64];

        T_EQ(run(argv, &out, 30000), 0);
        snprintf(want, sizeof(want), "2 200 %u", UPLOAD_LEN);
        T_BYTES_EQ(out.p, out.len, want);
    }
    {
        struct t_buf got = read_file(outfile);

        T_EQ_U(got.len, UPLOAD_LEN);
        T_EQ(t_pattern_check(SEED, 0, got.p, UPLOAD_LEN), -1);
        fprintf(stderr, "  ok: 1 MiB echoed byte for byte\n");
        t_buf_free(&got);
    }

    /* HEAD */
    snprintf(url, sizeof(url), "%s/hello", base);
    {
        char *argv[] = {"curl", "-sS", "--http2-prior-knowledge",
                        "-I",   "-w",  "|%{http_version} %{response_code} %{size_download}",
                        url,    NULL};

        T_EQ(run(argv, &out, 20000), 0);
        T_OK(strstr(t_buf_str(&out), "HTTP/2 200") != NULL);
        T_OK(strstr(t_buf_str(&out), "|2 200 0") != NULL);
    }

    /* an unimplemented method: 501, the application never sees it */
    n0 = n_dispatch;
    {
        char *argv[] = {"curl",      "-sS", "--http2-prior-knowledge",          "-X", "FROB", "-o",
                        "/dev/null", "-w",  "%{http_version} %{response_code}", url,  NULL};

        T_EQ(run(argv, &out, 20000), 0);
        T_BYTES_EQ(out.p, out.len, "2 501");
    }
    T_EQ(n_dispatch, n0);
    t_buf_free(&out);
}

static void
nghttp_part(const char *base)
{
    struct t_buf out = {0};
    char url[256], upfile[300];

    fprintf(stderr, "-- nghttp: upload without length + trailer; response trailers\n");
    snprintf(upfile, sizeof(upfile), "%s/small.bin", tmpdir);
    {
        FILE *f = fopen(upfile, "w");

        T_OK(f != NULL);
        fputs("0123456789abcdef", f);
        fclose(f);
    }
    snprintf(url, sizeof(url), "%s/trailers", base);
    {
        char *argv[] = {"nghttp",       "-v",   "--no-content-length",
                        "-d",           upfile, "--trailer",
                        "x-up-trl: u1", url,    NULL};

        T_EQ(run(argv, &out, 20000), 0);
    }
    /* (-v interleaves the frame log with the body) */
    T_OK(strstr(t_buf_str(&out), "got 16 bytes, trailer u1\n") != NULL);
    T_OK(strstr(strstr(t_buf_str(&out), "got 16 bytes"), "second piece\n") != NULL);
    fprintf(stderr, "  ok: server read 16 bytes and trailer x-up-trl: u1\n");
    T_OK(t_has_field(&last_trailers, "x-up-trl: u1\n"));
    /* the response trailer arrives in a HEADERS frame after the body */
    {
        const char *body = strstr(t_buf_str(&out), "second piece");
        const char *trl = strstr(t_buf_str(&out), "x-resp-trl: t2");

        T_OK(body != NULL && trl != NULL && trl > body);
        fprintf(stderr, "  ok: x-resp-trl: t2 after the body\n");
    }
    T_OK(!strstr(t_buf_str(&out), "content-length"));
    t_buf_free(&out);
}

static void
h2load_part(const char *base)
{
    struct t_buf out = {0};
    char url[256], upfile[300];
    int c0 = n_rcomplete;

    fprintf(stderr, "-- h2load -n 2000 -c 4 -m 10\n");
    snprintf(url, sizeof(url), "%s/hello", base);
    {
        char *argv[] = {"h2load", "-n", "2000", "-c", "4", "-m", "10", url, NULL};

        T_EQ(run(argv, &out, 60000), 0);
    }
    T_OK(strstr(t_buf_str(&out), "requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 "
                                 "failed, 0 errored, 0 timeout") != NULL);
    T_OK(strstr(t_buf_str(&out), "status codes: 2000 2xx") != NULL);
    fprintf(stderr, "  ok: 2000 succeeded\n");
    T_H2PUMP(evpl, n_rcomplete - c0 == 2000, 5000);

    fprintf(stderr, "-- h2load: 200 uploads of 256 KiB, 10 at a time per connection\n");
    snprintf(upfile, sizeof(upfile), "%s/load.bin", tmpdir);
    write_file(upfile, H2LOAD_LEN, SEED);
    snprintf(url, sizeof(url), "%s/check", base);
    c0 = n_rcomplete;
    {
        char *argv[] = {"h2load", "-n", "200", "-c", "2", "-m", "10", "-d", upfile, url, NULL};

        T_EQ(run(argv, &out, 60000), 0);
    }
    T_OK(strstr(t_buf_str(&out), "requests: 200 total, 200 started, 200 done, 200 succeeded") !=
         NULL);
    T_H2PUMP(evpl, n_rcomplete - c0 == 200, 5000);
    T_EQ(n_bad_body, 0);
    fprintf(stderr, "  ok: 200 uploads, every body intact\n");
    t_buf_free(&out);
}

/* our h2c client against nghttpd (when installed) */
struct cli {
    struct t_buf body;
    int status, done, failed, headers, proto;
};

static void
cli_notify(struct evpl *e, struct evpl_http_agent *ag, struct evpl_http_request *req,
           enum evpl_http_notify_type type, enum evpl_http_request_type rt, const char *uri,
           void *notify_data, void *private_data)
{
    struct cli *c = notify_data;

    (void) e;
    (void) ag;
    (void) rt;
    (void) uri;
    (void) private_data;
    switch (type) {
        case EVPL_HTTP_NOTIFY_RESPONSE_HEADERS:
            c->headers++;
            c->status = evpl_http_request_status(req);
            c->proto = (int) evpl_http_request_protocol(req);
            break;
        case EVPL_HTTP_NOTIFY_RECEIVE_DATA:
            take(req, &c->body);
            break;
        case EVPL_HTTP_NOTIFY_RECEIVE_COMPLETE:
            take(req, &c->body);
            c->done++;
            break;
        case EVPL_HTTP_NOTIFY_FAILED:
            c->failed++;
            break;
        default:
            break;
    }
}

static void
nghttpd_part(void)
{
    char docroot[300], file[320], portstr[16];
    int port = t_free_port(SOCK_STREAM);
    pid_t pid;
    struct evpl_endpoint *ep;
    struct evpl_http_conn *conn;
    struct cli c = {0};
    struct evpl_http_request *req;
    int status;

    if (!t_tool_exists("nghttpd")) {
        fprintf(stderr, "-- our client against nghttpd: SKIPPED (nghttpd not installed)\n");
        return;
    }
    fprintf(stderr, "-- our h2c client against nghttpd\n");
    snprintf(docroot, sizeof(docroot), "%s/docroot", tmpdir);
    mkdir(docroot, 0755);
    snprintf(file, sizeof(file), "%s/f.bin", docroot);
    write_file(file, UPLOAD_LEN, SEED + 1);
    snprintf(portstr, sizeof(portstr), "%d", port);
    pid = fork();
    T_OK(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);

        dup2(devnull, 1);
        execlp("nghttpd", "nghttpd", "--no-tls", "-d", docroot, "-a", "127.0.0.1", portstr,
               (char *) NULL);
        _exit(127);
    }
    /* wait until it listens */
    {
        uint64_t deadline = t_now_ns() + 10000000000ull;

        for (;;) {
            struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t) port)};
            int fd = socket(AF_INET, SOCK_STREAM, 0);

            sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0) {
                close(fd);
                break;
            }
            close(fd);
            if (waitpid(pid, &status, WNOHANG) == pid) {
                T_FAIL("nghttpd exited early");
            }
            T_OK(t_now_ns() < deadline);
            usleep(20000);
        }
    }
    ep = evpl_endpoint_create("127.0.0.1", port);
    conn = evpl_http_client_connect(agent, EVPL_STREAM_SOCKET_TCP, ep, EVPL_HTTP_VERSION_HTTP2, &c);
    req = evpl_http_request_create(conn, EVPL_HTTP_REQUEST_TYPE_GET, "/f.bin");
    T_EQ(evpl_http_request_add_header(req, "Host", "127.0.0.1"), 0);
    evpl_http_request_dispatch(req, cli_notify, &c);
    T_H2PUMP(evpl, c.done || c.failed, 20000);
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    T_EQ(c.failed, 0);
    T_EQ(c.status, 200);
    T_EQ(c.proto, EVPL_HTTP_PROTOCOL_HTTP2);
    T_EQ_U(c.body.len, UPLOAD_LEN);
    T_EQ(t_pattern_check(SEED + 1, 0, c.body.p, UPLOAD_LEN), -1);
    fprintf(stderr, "  ok: 1 MiB file from nghttpd over h2c\n");
    evpl_http_client_close(agent, conn);
    t_h2pump_for(evpl, NULL, 30);
    evpl_endpoint_close(ep);
    t_buf_free(&c.body);
}

int
main(void)
{
    struct evpl_endpoint *ep;
    struct evpl_listener *listener;
    struct evpl_http_server *server;
    char base[128];
    int have_curl, have_h2load, have_nghttp;

    t_net_guard(300);
    t_h2_require();
    signal(SIGPIPE, SIG_IGN);
    have_curl = t_tool_exists("curl") &&
                system("curl --version 2>/dev/null | grep -qi 'nghttp2\\|HTTP2'") == 0;
    have_h2load = t_tool_exists("h2load");
    have_nghttp = t_tool_exists("nghttp");
    if (!have_curl && !have_h2load && !have_nghttp && !t_tool_exists("nghttpd")) {
        T_SKIP("none of curl (with HTTP/2), h2load, nghttp, nghttpd installed");
    }
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/evpl-h2-interop-XXXXXX");
    T_OK(mkdtemp(tmpdir) != NULL);

    evpl = t_net_loop();
    t_evpl = evpl;
    agent = evpl_http_init(evpl);
    ep = t_endpoint(EVPL_STREAM_SOCKET_TCP);
    listener = t_listen(EVPL_STREAM_SOCKET_TCP, ep);
    server = evpl_http_attach(agent, listener, dispatch, NULL);
    T_OK(server != NULL);
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", evpl_endpoint_port(ep));

    if (have_curl) {
        curl_part(base);
    } else {
        fprintf(stderr, "-- curl: SKIPPED (no curl with HTTP/2)\n");
    }
    if (have_nghttp) {
        nghttp_part(base);
    } else {
        fprintf(stderr, "-- nghttp: SKIPPED (not installed)\n");
    }
    if (have_h2load) {
        h2load_part(base);
    } else {
        fprintf(stderr, "-- h2load: SKIPPED (not installed)\n");
    }
    nghttpd_part();

    /* every request was HTTP/2 and got its one terminal notification */
    t_h2pump_for(evpl, NULL, 50);
    fprintf(stderr, "server: %d dispatched, %d RESPONSE_COMPLETE, %d FAILED, %d not HTTP/2\n",
            n_dispatch, n_rcomplete, n_failed, n_not_h2);
    T_EQ(n_not_h2, 0);
    T_EQ(n_failed, 0);
    T_EQ(n_rcomplete, n_dispatch);
    T_EQ(n_bad_event, 0);

    evpl_http_server_destroy(agent, server);
    evpl_http_destroy(agent);
    evpl_listener_destroy(listener);
    evpl_destroy(evpl);
    evpl_endpoint_close(ep);
    t_buf_free(&last_headers);
    t_buf_free(&last_trailers);
    {
        char cmd[300];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
        T_EQ(system(cmd), 0);
    }
    fprintf(stderr, "PASS\n");
    return 0;
}
