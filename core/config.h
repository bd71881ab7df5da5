/* Configuration: config/tickforge.lua returns a table; environment variables
 * override it (DATABASE_URL, TICKFORGE_LISTEN, TICKFORGE_API_KEY or API_KEY,
 * TICKFORGE_ADMIN_KEY, TICKFORGE_LOG_LEVEL). Every key is read through one
 * schema of typed getters with ranges (config.c), so a wrong value is an
 * error naming the key, at start and at reload. A config is immutable once
 * loaded; a reload builds a new one. */
#ifndef CONFIG_H
#define CONFIG_H

#include <stddef.h>

#define ROLE_INGEST 1u /* may POST market data */
#define ROLE_READ 2u   /* may read data, signals, metrics when closed */
#define ROLE_ADMIN 4u  /* may reload, run jobs, read status */

struct config_key {
    char *key;      /* the secret, compared in constant time */
    unsigned roles; /* ROLE_* bits */
    char *name;     /* label for logs ("env", "ea-1"); never the key */
};

struct config {
    char *path; /* the file it was read from; NULL means built-in defaults */

    /* http */
    char listen_host[64];
    int listen_port;
    int http_threads;           /* no longer used (the thread-per-connection model); accepted */
    int http_workers;           /* libmicrohttpd worker threads, each with its Lua VM; 0 = cores */
    int http_max_connections;
    int http_max_connections_per_ip; /* 0 = no limit */
    int http_connection_timeout; /* seconds of idle keep-alive before close */
    int http_header_timeout;     /* seconds from the request line to the end of the headers */
    size_t http_min_body_rate;   /* bytes per second a body must average after header_timeout */
    size_t http_max_body;        /* bytes; a route may lower or raise it */

    /* lua */
    size_t lua_memory_limit;   /* bytes per VM */
    int lua_handler_timeout_ms; /* wall time per handler call */

    /* database */
    char *db_url; /* "" means none configured */
    int db_pool_size;
    int db_checkout_timeout_ms;
    int db_connect_timeout_s;
    int db_statement_timeout_ms;
    int db_single_lanes;
    int db_prepare; /* tf.db.query/exec/columns prepare repeated statements per connection */

    /* auth */
    struct config_key *keys;
    int nkeys;
    int metrics_open; /* GET /metrics without a key */

    /* plugins and reload */
    char **plugins_enabled; /* NULL: every plugin in plugins_dir */
    int nplugins_enabled;
    char **plugins_disabled;
    int nplugins_disabled;
    char *plugins_dir;
    char **lua_path; /* directories `require` searches (default: "lua") */
    int nlua_path;
    char *migrations_dir;
    int reload_watch;       /* poll plugin and config mtimes */
    int reload_interval_ms;

    int log_level; /* enum log_level */
    int log_format; /* enum log_format; applied at start (a reload keeps the running one) */
    int log_access; /* the per-request line at level info (buffered, log_access) */

    /* scheduler */
    int sched_enabled; /* run tf.job jobs in this instance */
    int sched_workers; /* job threads, each with its own Lua VM */

    /* cache (tf.cache) */
    size_t cache_max_memory;   /* bytes: keys + values + per-entry overhead */
    int cache_load_timeout_ms; /* how long get_or_load waits for another caller's load */

    /* spool (spool.h): where ingest batches wait while the database is unreachable */
    int spool_enabled;
    char *spool_dir;
    size_t spool_max_bytes;     /* pending bytes on disk; past it, spooling routes answer 503 */
    size_t spool_segment_bytes; /* a segment file's size before the next one begins */

    char *json; /* the whole table after overrides, as JSON, for tf.config */
};

/* Loads path (NULL: built-in defaults only) with environment overrides.
 * Returns a config the caller frees with config_free, or NULL with a message
 * in err ("config/tickforge.lua: http.threads: must be 1..256, got 0"). */
struct config *config_load(const char *path, char *err, size_t errlen);
void config_free(struct config *c);

/* Roles of the key presented, or 0 when it matches none. Constant time per
 * configured key. */
unsigned config_key_roles(const struct config *c, const char *presented, const char **name);

#endif
