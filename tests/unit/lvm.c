/* lvm.c without HTTP: plugin loading and its errors, the sandbox, the time
 * and memory limits, generations' source snapshots, and VM creation under
 * every memory limit from tiny to enough (each one fails a different
 * allocation), which must fail cleanly or succeed, never crash or leak. */
#include "unit.h"

#include "config.h"
#include "lvm.h"
#include "mem.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64], plugins[96], cfg_path[96];

static void write_file(const char *name, const char *text)
{
    char p[160];
    snprintf(p, sizeof p, "%s/%s", plugins, name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
}

static void clear_plugins(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -f %s/*.lua", plugins);
    if (system(cmd) != 0) unit_fail(__FILE__, __LINE__, "rm failed");
}

static struct lvm *build(char *err, size_t errlen)
{
    static struct lvm_host host;
    return lvm_gen_build(cfg_path, &host, err, errlen);
}

/* Runs chunk in vm as a call with the given time limit. */
static enum lvm_status run(struct lvm *vm, const char *chunk, int timeout_ms, char *err, size_t errlen)
{
    lua_State *L = lvm_state(vm);
    if (luaL_loadstring(L, chunk) != LUA_OK) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return LVM_ERROR;
    }
    return lvm_call(vm, 0, 1, timeout_ms, err, errlen);
}

TEST(plugins_load_in_name_order_and_register_routes)
{
    char err[1024];
    clear_plugins();
    write_file("b.lua", "tf.route('GET', '/b', function() end)\norder = (order or '') .. 'b'");
    write_file("a.lua", "tf.route('POST', '/a/{id}', function() end, { auth = 'ingest', max_body = '1KB' })\norder = 'a'");
    struct lvm *vm = build(err, sizeof err);
    CHECK(vm != NULL);
    if (!vm) {
        printf("# %s\n", err);
        return;
    }
    struct lvm_gen *g = lvm_gen(vm);
    CHECK_INT(g->nroutes, 2);
    CHECK_STR(g->routes[0].path, "/a/{id}");
    CHECK_INT(g->routes[0].roles, ROLE_INGEST);
    CHECK_INT(g->routes[0].max_body, 1024);
    CHECK_STR(g->routes[1].method, "GET");
    CHECK_INT(g->routes[1].roles, ROLE_READ);
    lua_getglobal(lvm_state(vm), "order");
    CHECK_STR(lua_tostring(lvm_state(vm), -1), "ab");
    lvm_free(vm);
}

TEST(every_broken_plugin_is_reported_with_file_and_line)
{
    char err[2048];
    clear_plugins();
    write_file("a.lua", "local x = \n");
    write_file("b.lua", "\n\nerror('registration refused')\n");
    write_file("c.lua", "tf.route('GET', 'no-slash', function() end)\n");
    write_file("d.lua", "tf.route('GET', '/ok', function() end)\n");
    struct lvm *vm = build(err, sizeof err);
    CHECK(vm == NULL);
    CHECK(strstr(err, "/a.lua:2: unexpected symbol") != NULL);
    CHECK(strstr(err, "/b.lua:3: registration refused") != NULL);
    CHECK(strstr(err, "/c.lua:1: tf.route: invalid path 'no-slash'") != NULL);
    CHECK(strstr(err, "d.lua") == NULL);
    lvm_free(vm);
}

TEST(the_sandbox_is_an_allow_list)
{
    char err[1024];
    clear_plugins();
    write_file("a.lua", "");
    struct lvm *vm = build(err, sizeof err);
    CHECK(vm != NULL);
    if (!vm) return;
    static const char *const absent[] = {"io", "debug", "package", "dofile", "loadfile", "collectgarbage",
                                         "os.execute", "os.exit", "os.getenv", "os.remove", "string.dump",
                                         "require('io')", "('').dump", NULL};
    for (int i = 0; absent[i]; i++) {
        char chunk[128];
        snprintf(chunk, sizeof chunk, "local ok, v = pcall(function() return %s end) return ok and v ~= nil", absent[i]);
        enum lvm_status st = run(vm, chunk, 1000, err, sizeof err);
        CHECK_INT(st, LVM_OK);
        if (lua_toboolean(lvm_state(vm), -1)) unit_fail(__FILE__, __LINE__, "%s is reachable", absent[i]);
        lua_pop(lvm_state(vm), 1);
    }
    CHECK_INT(run(vm, "return load(string.char(27) .. 'Lua')", 1000, err, sizeof err), LVM_OK);
    CHECK(lua_isnil(lvm_state(vm), -1));
    lua_pop(lvm_state(vm), 1);
    lvm_free(vm);
}

TEST(time_limit_kills_loops_even_under_pcall)
{
    char err[1024];
    struct lvm_gen *g = lvm_gen_new(config_load(NULL, err, sizeof err));
    struct lvm *vm = lvm_new(LVM_SCRIPT, g, NULL, err, sizeof err);
    lvm_gen_unref(g);
    CHECK(vm != NULL);
    if (!vm) return;
    CHECK_INT(run(vm, "while true do end", 50, err, sizeof err), LVM_TIMEOUT);
    CHECK_INT(run(vm, "while true do pcall(function() while true do end end) end", 50, err, sizeof err), LVM_TIMEOUT);
    CHECK_INT(run(vm, "local co = coroutine.wrap(function() while true do end end) pcall(co) return 1", 50, err, sizeof err), LVM_TIMEOUT);
    CHECK_INT(run(vm, "return 42", 50, err, sizeof err), LVM_OK); /* usable afterwards */
    CHECK_INT(lua_tointeger(lvm_state(vm), -1), 42);
    lua_pop(lvm_state(vm), 1);
    CHECK_INT(run(vm, "error('plain')", 50, err, sizeof err), LVM_ERROR);
    CHECK(strstr(err, "plain") != NULL && strstr(err, "stack traceback") != NULL);
    lvm_free(vm);
}

TEST(memory_limit_gives_a_memory_error_and_the_vm_lives)
{
    char err[1024];
    struct config *c = config_load(NULL, err, sizeof err);
    c->lua_memory_limit = 8 << 20;
    struct lvm_gen *g = lvm_gen_new(c);
    struct lvm *vm = lvm_new(LVM_SCRIPT, g, NULL, err, sizeof err);
    lvm_gen_unref(g);
    CHECK(vm != NULL);
    if (!vm) return;
    CHECK_INT(run(vm, "local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1000) .. i end", 0, err, sizeof err), LVM_NOMEM);
    CHECK(lvm_memory(vm) < (8 << 20));
    CHECK_INT(run(vm, "local ok = pcall(function() local t = {} for i = 1, 1e9 do t[i] = {} end end) return ok", 0, err, sizeof err), LVM_OK);
    CHECK_INT(run(vm, "return #string.rep('y', 1000)", 0, err, sizeof err), LVM_OK);
    CHECK_INT(lua_tointeger(lvm_state(vm), -1), 1000);
    lvm_free(vm);
}

TEST(a_generation_keeps_the_sources_it_validated)
{
    char err[1024];
    clear_plugins();
    write_file("a.lua", "tf.route('GET', '/a', function() end)\nversion = 1");
    struct lvm *first = build(err, sizeof err);
    CHECK(first != NULL);
    if (!first) return;
    struct lvm_gen *g = lvm_gen(first);
    write_file("a.lua", "this is not Lua");
    write_file("z.lua", "tf.route('GET', '/z', function() end)");
    static struct lvm_host host;
    struct lvm *second = lvm_new(LVM_PLUGIN, g, &host, err, sizeof err); /* a worker joining later */
    CHECK(second != NULL);
    if (second) {
        lua_getglobal(lvm_state(second), "version");
        CHECK_INT(lua_tointeger(lvm_state(second), -1), 1);
        CHECK_INT(lvm_gen(second)->nroutes, 1);
    }
    lvm_free(second);
    lvm_free(first);
}

TEST(a_worker_vm_must_declare_what_its_generation_validated)
{
    char err[1024];
    clear_plugins();
    write_file("a.lua", "tf.route('GET', '/a', function() end)\n"
                        "tf.job.every('j', '1h', function() end)");
    struct lvm *first = build(err, sizeof err);
    CHECK(first != NULL);
    if (!first) return;
    struct lvm_gen *g = lvm_gen(first);
    CHECK(g->declared && g->nroutes == 1 && g->njobs == 1);
    static struct lvm_host host;
    struct lvm *same = lvm_new(LVM_PLUGIN, g, &host, err, sizeof err);
    CHECK(same != NULL);
    lvm_free(same);
    /* as if the plugins had declared something else when validated: the
     * route's body limit, then the job's name */
    size_t max_body = g->routes[0].max_body;
    g->routes[0].max_body = max_body + 1;
    struct lvm *other = lvm_new(LVM_PLUGIN, g, &host, err, sizeof err);
    CHECK(other == NULL && strstr(err, "different routes or jobs"));
    lvm_free(other);
    g->routes[0].max_body = max_body;
    g->jobs[0].name[0] = 'k';
    other = lvm_new(LVM_PLUGIN, g, &host, err, sizeof err);
    CHECK(other == NULL && strstr(err, "different routes or jobs"));
    lvm_free(other);
    g->jobs[0].name[0] = 'j';
    lvm_free(first);
}

TEST(vm_creation_fails_cleanly_under_any_memory_limit)
{
    char err[1024];
    clear_plugins();
    write_file("a.lua", "local t = {} for i = 1, 200 do t[i] = { i, tostring(i) } end\n"
                        "tf.route('GET', '/a', function() return 200, t end)");
    size_t before = mem_in_use();
    int failed = 0, built = 0;
    for (size_t limit = 4096; limit <= 512 * 1024; limit += 4096) {
        struct config *c = config_load(cfg_path, err, sizeof err);
        if (!c) {
            unit_fail(__FILE__, __LINE__, "config: %s", err);
            return;
        }
        c->lua_memory_limit = limit;
        struct lvm_gen *g = lvm_gen_new(c);
        static struct lvm_host host;
        struct lvm *vm = lvm_new(LVM_PLUGIN, g, &host, err, sizeof err);
        lvm_gen_unref(g);
        if (vm) built++;
        else failed++;
        lvm_free(vm);
    }
    CHECK(failed > 0);
    CHECK(built > 0);
    CHECK_INT(mem_in_use(), before);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/tf-lvm-test-%d", (int)getpid());
    snprintf(plugins, sizeof plugins, "%s/plugins", dir);
    snprintf(cfg_path, sizeof cfg_path, "%s/tf.lua", dir);
    mkdir(dir, 0700);
    mkdir(plugins, 0700);
    FILE *f = fopen(cfg_path, "w");
    fprintf(f, "return { plugins = { dir = '%s' }, lua = { handler_timeout_ms = 500 } }\n", plugins);
    fclose(f);
    RUN(plugins_load_in_name_order_and_register_routes);
    RUN(every_broken_plugin_is_reported_with_file_and_line);
    RUN(the_sandbox_is_an_allow_list);
    RUN(time_limit_kills_loops_even_under_pcall);
    RUN(memory_limit_gives_a_memory_error_and_the_vm_lives);
    RUN(a_generation_keeps_the_sources_it_validated);
    RUN(a_worker_vm_must_declare_what_its_generation_validated);
    RUN(vm_creation_fails_cleanly_under_any_memory_limit);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    return unit_done();
}
