/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Logging (core §4): a custom sink receives library messages with the
 * documented level strings, evpl_abort logs "fatal", calls the flush hook
 * and aborts, and library "aborts" (misuse) go through the same path.
 */
#include "t_loop.h"

/* The child reports what its sink saw through this pipe. */
static int report_fd = -1;

static void
report(const char *s)
{
    if (report_fd >= 0) {
        ssize_t r = write(report_fd, s, strlen(s));

        (void) r;
    }
} /* report */

static void
sink(const char *level, const char *module, const char *srcfile, int lineno, const char *fmt,
     va_list argp)
{
    char msg[512], line[1024];

    vsnprintf(msg, sizeof(msg), fmt, argp);
    snprintf(line, sizeof(line), "LOG level=%s module=%s file=%s line=%d msg=%s\n", level,
             module ? module : "(null)", srcfile ? srcfile : "(null)", lineno, msg);
    report(line);
} /* sink */

static void
flush(void)
{
    report("FLUSH\n");
} /* flush */

/* Run fn in a child with the custom sink; collect its report and signal. */
static int
run_logged(void (*fn)(void), char *out, size_t outsz)
{
    int fds[2];
    pid_t pid;
    int status;
    size_t len = 0;
    ssize_t r;

    T_EQ(pipe(fds), 0);
    fflush(stderr);
    pid = fork();
    if (pid == 0) {
        close(fds[0]);
        alarm(20);
        report_fd = fds[1];
        evpl_set_log_fn(sink, flush);
        fn();
        report("RETURNED\n");
        _exit(0);
    }
    T_OK(pid > 0);
    close(fds[1]);
    while (len < outsz - 1 && (r = read(fds[0], out + len, outsz - 1 - len)) > 0) {
        len += (size_t) r;
    }
    out[len] = '\0';
    close(fds[0]);
    T_EQ(waitpid(pid, &status, 0), pid);
    return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
} /* run_logged */

static void
do_abort(void)
{
    evpl_init(NULL);
    evpl_abort("mymod", "myfile.c", 4242, "custom %s %d", "boom", 7);
} /* do_abort */

static void
do_abort_uninitialized(void)
{
    /* evpl_abort is usable before the library is initialized */
    evpl_abort("early", "early.c", 1, "before init");
} /* do_abort_uninitialized */

static void
on_write(struct evpl *evpl, struct evpl_fd_event *ev)
{
} /* on_write */

static void
do_misuse(void)
{
    struct evpl *evpl;
    struct evpl_fd_event ev;
    int fds[2];

    evpl_init(NULL);
    evpl = evpl_create(NULL);
    t_pipe(fds);
    evpl_add_fd_event(evpl, &ev, fds[0], NULL, on_write, NULL);
    /* loop.md statement 27: aborts, which logs fatal and flushes */
    evpl_fd_event_read_interest(evpl, &ev);
} /* do_misuse */

static void
do_invalid_setting(void)
{
    struct evpl_global_config *cfg = evpl_global_config_init();

    /* core §2.1: a huge page size that is not a power of two is rejected
     * with an error log */
    evpl_global_config_set_huge_page_size(cfg, 3 * 1024 * 1024);
    evpl_global_config_release(cfg);
} /* do_invalid_setting */

static void
do_flush_null(void)
{
    /* flush_fn may be NULL */
    evpl_set_log_fn(sink, NULL);
    evpl_init(NULL);
    evpl_abort("nullflush", "f.c", 2, "no flush hook");
} /* do_flush_null */

int
main(void)
{
    static char out[1 << 16];
    const char *fatal, *fl;

    alarm(60);

    /* The sink is expected to see everything: EVPL_LOG_LEVEL must be unset */
    unsetenv("EVPL_LOG_LEVEL");

    /* evpl_abort: logs level "fatal" with the given module/file/line and
     * formatted text, then calls flush_fn, then abort() */
    T_EQ(run_logged(do_abort, out, sizeof(out)), SIGABRT);
    fatal = strstr(out, "LOG level=fatal module=mymod file=myfile.c line=4242 msg=custom boom 7\n");
    if (fatal == NULL) {
        T_FAIL("no fatal log line in:\n%s", out);
    }
    fl = strstr(fatal, "FLUSH\n");
    T_OK(fl != NULL); /* flush after the fatal message */
    T_OK(strstr(out, "RETURNED") == NULL);

    T_EQ(run_logged(do_abort_uninitialized, out, sizeof(out)), SIGABRT);
    T_OK(strstr(out, "LOG level=fatal module=early file=early.c line=1 msg=before init\n") != NULL);
    T_OK(strstr(out, "FLUSH\n") != NULL);

    T_EQ(run_logged(do_flush_null, out, sizeof(out)), SIGABRT);
    T_OK(strstr(out, "LOG level=fatal module=nullflush") != NULL);

    /* a library misuse abort goes through the same path */
    T_EQ(run_logged(do_misuse, out, sizeof(out)), SIGABRT);
    fatal = strstr(out, "LOG level=fatal ");
    if (fatal == NULL) {
        T_FAIL("misuse abort did not log fatal:\n%s", out);
    }
    T_OK(strstr(fatal, "FLUSH\n") != NULL);

    /* an error message reaches a custom sink with level "error" and a
     * module name */
    T_EQ(run_logged(do_invalid_setting, out, sizeof(out)), 0);
    if (strstr(out, "LOG level=error module=") == NULL) {
        T_FAIL("no error-level log for an invalid huge page size:\n%s", out);
    }
    T_OK(strstr(out, "module=(null)") == NULL);
    T_OK(strstr(out, "RETURNED") != NULL);

    /* levels are only the documented lower-case strings */
    {
        char *save = NULL, *line;

        T_EQ(run_logged(do_abort, out, sizeof(out)), SIGABRT);
        for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            if (strncmp(line, "LOG level=", 10) == 0) {
                const char *lv = line + 10;

                T_OK(strncmp(lv, "debug ", 6) == 0 || strncmp(lv, "info ", 5) == 0 ||
                     strncmp(lv, "error ", 6) == 0 || strncmp(lv, "fatal ", 6) == 0);
            }
        }
    }
    return 0;
} /* main */
