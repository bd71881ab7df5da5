/* Generations in a serving process: builds and publishes the first one,
 * reloads (SIGHUP, POST /admin/reload, the file watch) by building and
 * validating a candidate in a fresh VM and publishing it only when it is
 * whole, and remembers how the last reload went for /admin/status. Workers
 * swap their VMs themselves (lua_http.c); nothing here touches HTTP. */
#ifndef GEN_H
#define GEN_H

#include <stddef.h>

struct lvm;
struct lvm_host;
struct gen_ctl;

/* Loads the config at config_path (NULL: defaults), builds and publishes the
 * first generation. Returns the controller and, in *vm, the VM that
 * validated it (the caller's: a worker may serve with it, or lvm_free it).
 * NULL with err on failure. */
struct gen_ctl *gen_open(const char *config_path, struct lvm_host *host, struct lvm **vm, char *err,
                         size_t errlen);
void gen_close(struct gen_ctl *gc);

/* Builds, validates and publishes a new generation. 0, or -1 with every
 * error in err (nothing changes; the previous generation keeps serving). */
int gen_reload(struct gen_ctl *gc, const char *trigger, char *err, size_t errlen);

/* Polls the config and plugin files' sizes and mtimes; reloads once they
 * changed and then stayed the same for a whole interval (reload.watch). */
void gen_watch(struct gen_ctl *gc);
int gen_watch_interval_ms(struct gen_ctl *gc);

/* How the last reload went. */
struct gen_status {
    char config_path[1024]; /* "(defaults)" without a file */
    long at;                /* time(NULL) of the last reload (or the start) */
    int ok;
    char trigger[32];       /* "start", "signal", "http", "watch" */
    char error[4096];       /* when !ok */
};
void gen_status(struct gen_ctl *gc, struct gen_status *out);

#endif
