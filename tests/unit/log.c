/* log: both line formats, read back from a pipe put in place of stderr; the
 * JSON form must parse (cJSON) with the logfmt pairs as typed members. */
#include <cJSON.h>
#include <unistd.h>

#include "log.h"
#include "unit.h"

/* Runs one log_write with stderr redirected; returns the line (static). */
static const char *capture(enum log_format fmt, const char *msg, const char *kv)
{
    static char buf[8192];
    int p[2], saved = dup(2);
    if (pipe(p)) return "";
    dup2(p[1], 2);
    log_set_format(fmt);
    if (kv) log_write(LOG_WARN, msg, "%s", kv);
    else log_write(LOG_WARN, msg, NULL);
    dup2(saved, 2);
    close(saved);
    close(p[1]);
    ssize_t n = read(p[0], buf, sizeof buf - 1);
    close(p[0]);
    buf[n > 0 ? n : 0] = 0;
    log_set_format(LOG_LOGFMT);
    return buf;
}

TEST(logfmt_is_unchanged)
{
    const char *l = capture(LOG_LOGFMT, "request done", "rid=ab12 status=200 ms=0.42");
    CHECK(strstr(l, " level=warn msg=\"request done\" rid=ab12 status=200 ms=0.42\n") != NULL);
    CHECK(!strncmp(l, "ts=", 3));
}

TEST(json_has_typed_members)
{
    char q[128];
    char kv[512];
    snprintf(kv, sizeof kv, "rid=ab12 status=200 ms=0.42 id=007 route=/ingest error=%s neg=-3 flag",
             log_quote(q, sizeof q, "bad \"x\"\nline"));
    const char *l = capture(LOG_JSON, "a \"quoted\" msg", kv);
    CHECK(l[strlen(l) - 1] == '\n');
    cJSON *j = cJSON_Parse(l);
    CHECK(j != NULL);
    if (!j) return;
    CHECK_STR(cJSON_GetObjectItem(j, "level")->valuestring, "warn");
    CHECK_STR(cJSON_GetObjectItem(j, "msg")->valuestring, "a \"quoted\" msg");
    CHECK(cJSON_IsString(cJSON_GetObjectItem(j, "ts")));
    CHECK_STR(cJSON_GetObjectItem(j, "rid")->valuestring, "ab12");
    CHECK(cJSON_IsNumber(cJSON_GetObjectItem(j, "status")) && cJSON_GetObjectItem(j, "status")->valueint == 200);
    CHECK(cJSON_IsNumber(cJSON_GetObjectItem(j, "ms")) && fabs(cJSON_GetObjectItem(j, "ms")->valuedouble - 0.42) < 1e-12);
    CHECK_STR(cJSON_GetObjectItem(j, "id")->valuestring, "007");
    CHECK_STR(cJSON_GetObjectItem(j, "route")->valuestring, "/ingest");
    CHECK_STR(cJSON_GetObjectItem(j, "error")->valuestring, "bad \"x\"\nline");
    CHECK(cJSON_GetObjectItem(j, "neg")->valueint == -3);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "flag")));
    const cJSON *first = j->child;
    CHECK_STR(first->string, "ts"); /* ts, level, msg first, in that order */
    CHECK_STR(first->next->string, "level");
    CHECK_STR(first->next->next->string, "msg");
    cJSON_Delete(j);
}

TEST(json_line_without_pairs_and_overlong_stays_one_valid_line)
{
    cJSON *j = cJSON_Parse(capture(LOG_JSON, "plain", NULL));
    CHECK(j && cJSON_GetArraySize(j) == 3);
    cJSON_Delete(j);
    char big[6000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    const char *l = capture(LOG_JSON, big, "k=v");
    CHECK(strchr(l, '\n') == l + strlen(l) - 1);
    CHECK(strlen(l) <= 4096);
}

TEST(format_names)
{
    enum log_format f;
    CHECK_INT(log_parse_format("json", &f), 0);
    CHECK_INT(f, LOG_JSON);
    CHECK_INT(log_parse_format("logfmt", &f), 0);
    CHECK_INT(f, LOG_LOGFMT);
    CHECK_INT(log_parse_format("yaml", &f), -1);
}

int main(void)
{
    RUN(logfmt_is_unchanged);
    RUN(json_has_typed_members);
    RUN(json_line_without_pairs_and_overlong_stays_one_valid_line);
    RUN(format_names);
    return unit_done();
}
