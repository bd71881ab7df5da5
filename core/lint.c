/* Static checks of plugin sources by an external linter: luacheck (Debian's
 * lua-check), run as a child process over the files with exactly the
 * sandbox's globals declared, its findings turned into
 * "file:line: warning: ..." lines. Only reads files and spawns; never
 * touches a Lua VM, and a linter that hangs is killed at a deadline. */
#include "lint.h"

#include "clock.h"
#include "mem.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LINT_TIMEOUT_MS 20000
#define LINT_MAX_OUTPUT (1 << 20)
#define LINT_MAX_ARGS 512

extern char **environ;

/* Appends line and a newline to *out (mem_*). */
static void append(char **out, size_t *len, const char *line)
{
    size_t n = strlen(line);
    char *p = mem_realloc(*out, *len + n + 2);
    if (!p) return;
    memcpy(p + *len, line, n);
    p[*len + n] = '\n';
    p[*len + n + 1] = 0;
    *out = p;
    *len += n + 1;
}

/* "path:12:5: (W113) accessing undefined variable 'x'" ->
 * "path:12: warning: accessing undefined variable 'x' (luacheck W113)".
 * Other lines (luacheck's own errors such as E011 syntax errors, which the
 * loader reports itself, and its summary) give 0. */
static int convert(const char *line, char *out, size_t cap)
{
    const char *code = strstr(line, ": (W");
    if (!code) return 0;
    const char *colon = code; /* back over ":col" to the end of "path:line" */
    while (colon > line && colon[-1] != ':') colon--;
    if (colon == line) return 0;
    const char *msg = strchr(code + 3, ')');
    if (!msg || msg - code > 10) return 0;
    snprintf(out, cap, "%.*s warning: %s (luacheck %.*s)", (int)(colon - line), line, msg + 2, (int)(msg - code - 3),
             code + 3);
    return 1;
}

int lint_luacheck(const char *program, const char *const *files, int nfiles, const char *const *globals, char **out,
                  size_t *outlen, char *note, size_t notelen)
{
    const char *argv[LINT_MAX_ARGS];
    int n = 0;
    note[0] = 0;
    if (nfiles <= 0) return 1;
    argv[n++] = program;
    static const char *const fixed[] = {"--no-config", "--formatter", "plain", "--codes", "--no-color",
                                        "--only", "1", "--std", "none", "--read-globals", NULL};
    for (int i = 0; fixed[i]; i++) argv[n++] = fixed[i];
    for (int i = 0; globals[i] && n < LINT_MAX_ARGS - nfiles - 3; i++) argv[n++] = globals[i];
    argv[n++] = "--";
    for (int i = 0; i < nfiles && n < LINT_MAX_ARGS - 1; i++) argv[n++] = files[i];
    argv[n] = NULL;

    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) { /* no other child inherits our end */
        snprintf(note, notelen, "luacheck not run: pipe: %s", strerror(errno));
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawnattr_init(&at);
    sigset_t none, dflt;
    sigemptyset(&none);
    sigemptyset(&dflt);
    sigaddset(&dflt, SIGPIPE); /* the server ignores SIGPIPE and blocks HUP/INT/TERM: not the linter */
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &dflt);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int rc = posix_spawnp(&pid, program, &fa, &at, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        if (rc == ENOENT)
            snprintf(note, notelen, "%s not found: undefined globals were not checked (install Debian's lua-check)",
                     program);
        else
            snprintf(note, notelen, "luacheck not run: %s", strerror(rc));
        return 0;
    }

    char *buf = NULL;
    size_t len = 0, cap = 0;
    long long deadline = clock_ms() + LINT_TIMEOUT_MS;
    int timed_out = 0;
    for (;;) {
        long long left = deadline - clock_ms();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        struct pollfd p = {fds[0], POLLIN, 0};
        int pr = poll(&p, 1, (int)left);
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) continue;
        if (len + 4096 + 1 > cap) {
            if (cap >= LINT_MAX_OUTPUT) break;
            char *nb = mem_realloc(buf, cap ? cap * 2 : 8192);
            if (!nb) break;
            buf = nb;
            cap = cap ? cap * 2 : 8192;
        }
        ssize_t r = read(fds[0], buf + len, cap - len - 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        len += (size_t)r;
    }
    close(fds[0]);
    if (timed_out) kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (timed_out) {
        snprintf(note, notelen, "luacheck did not finish within %d ms; its findings are not shown", LINT_TIMEOUT_MS);
        mem_free(buf);
        return -1;
    }
    for (char *line = buf, *next; line && line < buf + len; line = next) {
        char *nl = memchr(line, '\n', (size_t)(buf + len - line));
        if (nl) *nl = 0;
        else buf[len] = 0;
        next = nl ? nl + 1 : NULL;
        char w[1200];
        if (convert(line, w, sizeof w)) append(out, outlen, w);
    }
    mem_free(buf);
    /* 0: clean, 1: warnings, 2: errors (syntax: reported by the loader) */
    if (!WIFEXITED(status) || WEXITSTATUS(status) > 2) {
        snprintf(note, notelen, "luacheck failed (exit status %d); its findings may be incomplete",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return -1;
    }
    return 1;
}
