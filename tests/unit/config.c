/* config.c: defaults, every kind of wrong value named by key, environment
 * overrides, key roles, and out-of-memory at every allocation. */
#include "unit.h"

#include "config.h"
#include "mem.h"

#include <stdlib.h>
#include <unistd.h>

static char path[64];

static struct config *load_text(const char *text, char *err, size_t errlen)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return config_load(path, err, errlen);
}

TEST(defaults_without_a_file)
{
    char err[256];
    struct config *c = config_load(NULL, err, sizeof err);
    CHECK(c != NULL);
    if (!c) return;
    CHECK_STR(c->listen_host, "127.0.0.1");
    CHECK_INT(c->listen_port, 8080);
    CHECK_INT(c->http_threads, 16);
    CHECK_INT(c->http_max_body, 16 * 1024 * 1024);
    CHECK_INT(c->db_pool_size, 8);
    CHECK_STR(c->plugins_dir, "plugins");
    CHECK_INT(c->nlua_path, 1);
    CHECK_STR(c->lua_path[0], "lua");
    CHECK_INT(c->metrics_open, 1);
    config_free(c);
}

TEST(values_sizes_and_sections_are_read)
{
    char err[256];
    struct config *c = load_text("return { listen = '0.0.0.0:9000', http = { max_body = '2MB', threads = 8 },"
                                 " lua = { memory_limit = 1048576 * 3 }, reload = { watch = true },"
                                 " ingest = { anything = 'plugins own this' } }", err, sizeof err);
    CHECK(c != NULL);
    if (!c) {
        printf("# %s\n", err);
        return;
    }
    CHECK_STR(c->listen_host, "0.0.0.0");
    CHECK_INT(c->listen_port, 9000);
    CHECK_INT(c->http_max_body, 2 * 1048576);
    CHECK_INT(c->http_threads, 8);
    CHECK_INT(c->lua_memory_limit, 3 * 1048576);
    CHECK_INT(c->reload_watch, 1);
    CHECK(strstr(c->json, "\"plugins own this\"") != NULL);
    config_free(c);
}

struct bad { const char *text, *want; };

TEST(wrong_values_are_named)
{
    static const struct bad cases[] = {
        {"return { http = { threads = 0 } }", "http.threads: must be an integer 1..256, got 0"},
        {"return { http = { threads = 2.5 } }", "http.threads: must be an integer 1..256, got 2.5"},
        {"return { http = { theads = 2 } }", "http.theads: unknown key"},
        {"return { http = { max_body = '12 parsecs' } }", "http.max_body: must be a size"},
        {"return { database = { pool_size = 'many' } }", "database.pool_size: must be a number, got \"many\""},
        {"return { auth = { metrics_open = 'perhaps' } }", "auth.metrics_open: must be true or false"},
        {"return { listen = 'nowhere' }", "listen: must be \"host:port\""},
        {"return { listen = 'h:99999' }", "listen: must be \"host:port\""},
        {"return { log = { level = 'loud' } }", "log.level: must be one of"},
        {"return { auth = { keys = { { key = 'short', roles = { 'read' } } } } }", "auth.keys[1].key: must be a string of at least 8"},
        {"return { auth = { keys = { { key = 'long-enough', roles = { 'root' } } } } }", "auth.keys[1].roles[1]: unknown role \"root\""},
        {"return { plugins = { enabled = { 1 } } }", "plugins.enabled[1]: must be a string"},
        {"return 42", "must return a table, returned number"},
        {"return {", "unexpected symbol"},
        {"error('custom failure')", "custom failure"},
        {"return { http = 5 }", "http: must be a table"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char err[512] = "";
        struct config *c = load_text(cases[i].text, err, sizeof err);
        CHECK(c == NULL);
        if (!strstr(err, cases[i].want)) unit_fail(__FILE__, __LINE__, "case %zu: got \"%s\", want \"%s\"", i, err, cases[i].want);
        config_free(c);
    }
}

TEST(environment_overrides_the_file)
{
    char err[256];
    setenv("DATABASE_URL", "postgresql:///envdb", 1);
    setenv("TICKFORGE_LISTEN", "127.0.0.1:7001", 1);
    setenv("API_KEY", "old-system-key", 1);
    setenv("TICKFORGE_ADMIN_KEY", "admin-env-key", 1);
    setenv("TICKFORGE_LOG_LEVEL", "warn", 1);
    struct config *c = load_text("return { listen = '127.0.0.1:1', database = { url = 'x' } }", err, sizeof err);
    unsetenv("DATABASE_URL");
    unsetenv("TICKFORGE_LISTEN");
    unsetenv("API_KEY");
    unsetenv("TICKFORGE_ADMIN_KEY");
    unsetenv("TICKFORGE_LOG_LEVEL");
    CHECK(c != NULL);
    if (!c) return;
    CHECK_STR(c->db_url, "postgresql:///envdb");
    CHECK_INT(c->listen_port, 7001);
    CHECK_INT(c->log_level, 2);
    CHECK_INT(config_key_roles(c, "old-system-key", NULL), ROLE_INGEST | ROLE_READ);
    CHECK_INT(config_key_roles(c, "admin-env-key", NULL), ROLE_ADMIN | ROLE_READ);
    CHECK_INT(config_key_roles(c, "old-system-ke", NULL), 0);
    CHECK_INT(config_key_roles(c, "old-system-keyy", NULL), 0);
    CHECK_INT(config_key_roles(c, "", NULL), 0);
    CHECK(strstr(c->json, "old-system-key") == NULL); /* secrets never reach tf.config */
    config_free(c);
}

TEST(out_of_memory_anywhere_fails_cleanly)
{
    const char *text = "return { auth = { keys = { { key = 'long-enough', roles = { 'read' } } } },"
                       " plugins = { disabled = { 'a', 'b' } } }";
    size_t before = mem_in_use();
    int failures = 0;
    for (long n = 0; n < 200; n++) {
        char err[256];
        mem_fail_after(n);
        struct config *c = load_text(text, err, sizeof err);
        mem_fail_after(-1);
        if (!c) failures++;
        config_free(c);
    }
    CHECK(failures > 5);
    CHECK_INT(mem_in_use(), before); /* nothing leaked on any path */
}

int main(void)
{
    snprintf(path, sizeof path, "/tmp/tf-config-test-%d.lua", (int)getpid());
    RUN(defaults_without_a_file);
    RUN(values_sizes_and_sections_are_read);
    RUN(wrong_values_are_named);
    RUN(environment_overrides_the_file);
    RUN(out_of_memory_anywhere_fails_cleanly);
    unlink(path);
    return unit_done();
}
