/* lint.c: a linter's lines become "file:line: warning: ..." lines, its
 * arguments declare exactly the globals given, and a missing or failing
 * linter is said in the note, not hidden. Uses small shell scripts as fake
 * linters, so it needs no luacheck. */
#include "unit.h"

#include "lint.h"
#include "mem.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/tf-unit-lint.XXXXXX";

/* Writes an executable script named name into dir; returns its path. */
static const char *script(const char *name, const char *body)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) return path;
    fprintf(f, "#!/bin/sh\n%s\n", body);
    fclose(f);
    chmod(path, 0755);
    return path;
}

static const char *const globals[] = {"assert", "string.format", "tf", NULL};
static const char *const files[] = {"plugins/a.lua", "plugins/b.lua"};

TEST(findings_become_warning_lines)
{
    const char *prog = script("fake_ok", "echo 'plugins/a.lua:12:5: (W113) accessing undefined variable '\\''x'\\'''\n"
                                         "echo 'plugins/b.lua:3:1: (E011) expected expression near end'\n"
                                         "echo 'Total: 2 warnings / 1 error in 2 files'\n"
                                         "exit 2");
    char *out = NULL, note[256];
    size_t len = 0;
    CHECK_INT(lint_luacheck(prog, files, 2, globals, &out, &len, note, sizeof note), 1);
    CHECK_STR(out, "plugins/a.lua:12: warning: accessing undefined variable 'x' (luacheck W113)\n");
    CHECK_INT(len, strlen(out ? out : ""));
    CHECK_STR(note, "");
    mem_free(out);
}

TEST(declares_the_globals_and_passes_the_files)
{
    const char *prog = script("fake_args", "for a in \"$@\"; do echo \"x:1:1: (W000) $a\"; done");
    char *out = NULL, note[256];
    size_t len = 0;
    CHECK_INT(lint_luacheck(prog, files, 2, globals, &out, &len, note, sizeof note), 1);
    CHECK(out && strstr(out, "(W000) --std\n") == NULL); /* each arg is its own line */
    CHECK(out && strstr(out, "warning: --only (luacheck W000)\nx:1: warning: 1 (luacheck W000)\n"));
    CHECK(out && strstr(out, "warning: --std (luacheck W000)\nx:1: warning: none (luacheck W000)\n"));
    CHECK(out && strstr(out, "warning: --read-globals (luacheck W000)\nx:1: warning: assert (luacheck W000)\n"
                             "x:1: warning: string.format (luacheck W000)\nx:1: warning: tf (luacheck W000)\n"
                             "x:1: warning: -- (luacheck W000)\nx:1: warning: plugins/a.lua (luacheck W000)\n"
                             "x:1: warning: plugins/b.lua (luacheck W000)\n"));
    mem_free(out);
}

TEST(a_missing_linter_is_said)
{
    char *out = NULL, note[256];
    size_t len = 0;
    CHECK_INT(lint_luacheck("/nonexistent/luacheck", files, 2, globals, &out, &len, note, sizeof note), 0);
    CHECK(out == NULL);
    CHECK_STR(note, "/nonexistent/luacheck not found: undefined globals were not checked (install Debian's lua-check)");
}

TEST(a_failing_linter_is_said)
{
    const char *prog = script("fake_fail", "echo 'plugins/a.lua:1:1: (W113) accessing undefined variable '\\''y'\\'''; exit 4");
    char *out = NULL, note[256];
    size_t len = 0;
    CHECK_INT(lint_luacheck(prog, files, 2, globals, &out, &len, note, sizeof note), -1);
    CHECK_STR(note, "luacheck failed (exit status 4); its findings may be incomplete");
    CHECK(out && strstr(out, "plugins/a.lua:1: warning: accessing undefined variable 'y'"));
    mem_free(out);
}

int main(void)
{
    if (!mkdtemp(dir)) return 1;
    RUN(findings_become_warning_lines);
    RUN(declares_the_globals_and_passes_the_files);
    RUN(a_missing_linter_is_said);
    RUN(a_failing_linter_is_said);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    return unit_done();
}
