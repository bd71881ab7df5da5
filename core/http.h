/* The HTTP server: libmicrohttpd's internal thread pool with epoll; each
 * worker thread owns one Lua VM. Routing, auth, body limits and the builtin
 * C routes (/health, /metrics, /admin/reload, /admin/status) live here;
 * everything else is a plugin route. Also owns hot reload. */
#ifndef HTTP_H
#define HTTP_H

#include <stddef.h>

struct lvm_host;
struct http_server;

/* Publishes the generation first (its validation VM is freed), then starts
 * listening on its config's address. config_path is remembered for reloads
 * (NULL: built-in defaults). NULL with a message in err on failure. */
struct http_server *http_start(const char *config_path, struct lvm_host *host, char *err, size_t errlen);

/* Builds and validates a new generation and publishes it; workers pick it up
 * between requests. 0, or -1 with every error in err (nothing changes). */
int http_reload(struct http_server *s, const char *trigger, char *err, size_t errlen);

/* Polls the config and plugin files' mtimes; reloads when they changed and
 * reload.watch is on. Called periodically by main. */
void http_watch(struct http_server *s);
int http_watch_interval_ms(struct http_server *s);

/* Stops accepting, waits up to grace_ms for requests in flight, stops. */
void http_stop(struct http_server *s, int grace_ms);

#endif
