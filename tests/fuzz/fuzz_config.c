/* libFuzzer target: the config loader (core/config.c) on any table shape.
 * The input is read as JSON and written out as a Lua table literal (strings
 * escaped byte by byte), so the fuzzer explores the schema, the typed
 * getters, the environment overrides and the masking without ever running
 * code of its own (the loader runs a full Lua, os.execute included). */
#include "config.h"

#include <assert.h>
#include <cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void put_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) fprintf(f, "\\%03u", *p);
    fputc('"', f);
}

static void put(FILE *f, const cJSON *j, int depth)
{
    if (depth > 16 || cJSON_IsNull(j) || cJSON_IsInvalid(j)) fputs("nil", f);
    else if (cJSON_IsTrue(j)) fputs("true", f);
    else if (cJSON_IsFalse(j)) fputs("false", f);
    else if (cJSON_IsNumber(j)) fprintf(f, "%.17g", j->valuedouble != j->valuedouble ? 0 : j->valuedouble);
    else if (cJSON_IsString(j)) put_str(f, j->valuestring);
    else {
        fputc('{', f);
        for (const cJSON *c = j->child; c; c = c->next) {
            if (cJSON_IsObject(j) && c->string) fputc('[', f), put_str(f, c->string), fputs("]=", f);
            put(f, c, depth + 1);
            fputc(',', f);
        }
        fputc('}', f);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/tf-fuzz-config-%d.lua", (int)getpid());
    cJSON *j = cJSON_ParseWithLength((const char *)data, size);
    if (!j) return 0;
    FILE *f = fopen(path, "w");
    if (!f) abort();
    fputs("return ", f);
    put(f, j, 0);
    fputc('\n', f);
    fclose(f);
    cJSON_Delete(j);
    char err[1024] = "";
    struct config *c = config_load(path, err, sizeof err);
    if (c) config_free(c);
    else assert(err[0]);
    return 0;
}
