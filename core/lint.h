/* Static checks of plugin sources by an external linter (luacheck), used by
 * `tickforge check` and by every reload's validation (lvm_gen_build). Its
 * findings are warnings: they never reject a generation. */
#ifndef LINT_H
#define LINT_H

#include <stddef.h>

/* Runs `program` (luacheck, found in PATH) over files[0..nfiles) for
 * global-variable findings, with only the names in globals (NULL-
 * terminated: "assert", "string.format", "tf", ...) defined, read-only.
 * Appends each finding as "file:line: warning: message (luacheck Wnnn)\n"
 * to *out (mem_*, caller frees; *outlen its length). Returns 1 when it ran,
 * 0 when the program is not installed, -1 when it failed or timed out;
 * note then says so (for the user), else note is "". */
int lint_luacheck(const char *program, const char *const *files, int nfiles, const char *const *globals, char **out,
                  size_t *outlen, char *note, size_t notelen);

#endif
