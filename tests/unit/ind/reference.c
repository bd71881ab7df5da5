/* Compares every indicator with the reference values in tests/fixtures/ind/
 * (TA-Lib's C code for talib, MetaQuotes' formulas for mt5, plain code for the
 * rest; see gen.js), on a realistic series and on edge series (constant, gaps,
 * zero-range bars with zero volumes), in batch and in streaming form, plus the
 * prefixes of exactly lookback and lookback+1 bars. Run from the repo root. */
#include <stdlib.h>

#include "ind/ind.h"
#include "mem.h"
#include "unit.h"

#define REL 1e-9
#define MAXS 8
#define MAXN 1024

typedef struct {
    char name[32];
    size_t n;
    double col[6][MAXN]; /* time open high low close volume */
} Series;

static Series series[MAXS];
static int nseries;
static const char *col_names[6] = {"time", "open", "high", "low", "close", "volume"};

/* The current case, for the test function. */
static struct {
    char conv[8], ind[32], ser[32], params[128];
    int nout;
    double out[IND_MAX_OUTPUTS][MAXN];
} cur;

static Series *find_series(const char *name)
{
    for (int i = 0; i < nseries; i++) {
        if (strcmp(series[i].name, name) == 0) return &series[i];
    }
    return NULL;
}

static int col_of(const char *input)
{
    if (strcmp(input, "real") == 0) return 4;
    for (int i = 0; i < 6; i++) {
        if (strcmp(col_names[i], input) == 0) return i;
    }
    return -1;
}

static size_t read_values(char *p, double *dst)
{
    size_t n = 0;
    char *end;
    while (n < MAXN) {
        double v = strtod(p, &end);
        if (end == p) break;
        dst[n++] = v;
        p = end;
    }
    return n;
}

static int make_spec(IndSpec *s)
{
    char err[200];
    IndConv conv;
    if (ind_conv_parse(cur.conv, &conv) || ind_spec_init(s, cur.ind, conv, err, sizeof err)) {
        unit_fail(__FILE__, __LINE__, "spec: %s", err);
        return -1;
    }
    if (strcmp(cur.params, "-") == 0) return 0;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", cur.params);
    for (char *kv = strtok(buf, ";"); kv; kv = strtok(NULL, ";")) {
        char *eq = strchr(kv, '=');
        *eq = 0;
        if (ind_spec_set(s, kv, atof(eq + 1), err, sizeof err)) {
            unit_fail(__FILE__, __LINE__, "param: %s", err);
            return -1;
        }
    }
    return 0;
}

/* Compares a computed output with the reference over n bars. */
static void compare(const char *what, int k, const double *got, const double *want, size_t n)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double a = got[i], b = want[i];
        int ok = (isnan(a) && isnan(b)) ||
                 (!isnan(a) && !isnan(b) && fabs(a - b) <= REL * fmax(1.0, fmax(fabs(a), fabs(b))));
        if (!ok && bad++ < 3) {
            unit_fail(__FILE__, __LINE__, "%s %s %s %s out %d bar %zu: got %.17g want %.17g", what,
                      cur.conv, cur.ind, cur.ser, k, i, a, b);
        }
    }
    if (bad > 3) unit_fail(__FILE__, __LINE__, "%s: %d mismatches in all", what, bad);
}

static double outbuf[IND_MAX_OUTPUTS][MAXN];

static void run_batch(const IndSpec *s, const Series *se, size_t n)
{
    const double *in[IND_MAX_INPUTS];
    double *out[IND_MAX_OUTPUTS];
    for (int k = 0; k < s->def->ninputs; k++)
        in[k] = se->col[col_of(s->def->inputs[k])];
    for (int k = 0; k < s->def->noutputs; k++)
        out[k] = outbuf[k];
    char err[100];
    CHECK(ind_batch(s, n, in, out, err, sizeof err) == 0);
}

static void run_stream(const IndSpec *s, const Series *se, size_t n)
{
    void *st = mem_alloc(ind_state_size(s));
    ind_state_init(s, st);
    for (size_t i = 0; i < n; i++) {
        double x[IND_MAX_INPUTS], y[IND_MAX_OUTPUTS];
        for (int k = 0; k < s->def->ninputs; k++)
            x[k] = se->col[col_of(s->def->inputs[k])][i];
        ind_state_update(s, st, x, y);
        for (int k = 0; k < s->def->noutputs; k++)
            outbuf[k][i] = y[k];
    }
    mem_free(st);
}

static void check_case(void)
{
    IndSpec s;
    if (make_spec(&s)) return;
    Series *se = find_series(cur.ser);
    CHECK(se != NULL);
    if (!se) return;
    CHECK_INT(s.def->noutputs, cur.nout);
    if (s.def->noutputs != cur.nout) return;
    size_t n = se->n;
    run_batch(&s, se, n);
    for (int k = 0; k < cur.nout; k++)
        compare("batch", k, outbuf[k], cur.out[k], n);
    run_stream(&s, se, n);
    for (int k = 0; k < cur.nout; k++)
        compare("stream", k, outbuf[k], cur.out[k], n);

    /* The reference's first defined bar is the registry's lookback. */
    size_t lb = (size_t)ind_lookback(&s), first = n;
    for (int k = 0; k < cur.nout; k++) {
        for (size_t i = 0; i < n; i++) {
            if (!isnan(cur.out[k][i])) {
                if (i < first) first = i;
                break;
            }
        }
    }
    if (first < n) CHECK_INT(first, lb);
    /* Prefixes: exactly lookback bars (all NaN) and lookback+1 bars. */
    if (lb + 1 <= n) {
        run_batch(&s, se, lb);
        for (int k = 0; k < cur.nout; k++) {
            for (size_t i = 0; i < lb; i++)
                CHECK(isnan(outbuf[k][i]));
        }
        run_batch(&s, se, lb + 1);
        for (int k = 0; k < cur.nout; k++)
            compare("prefix", k, outbuf[k], cur.out[k], lb + 1);
        run_stream(&s, se, lb + 1);
        for (int k = 0; k < cur.nout; k++)
            compare("prefix-stream", k, outbuf[k], cur.out[k], lb + 1);
    }
}

static int load(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("not ok - cannot open %s (run from the repository root)\n", path);
        return -1;
    }
    static char line[1 << 16];
    Series *se = NULL;
    int nout_read = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (strncmp(line, "series ", 7) == 0) {
            se = &series[nseries++];
            sscanf(line + 7, "%31s %zu", se->name, &se->n);
        } else if (strncmp(line, "col ", 4) == 0) {
            char name[16];
            sscanf(line + 4, "%15s", name);
            int c = col_of(name);
            size_t got = read_values(line + 4 + strlen(name) + 1, se->col[c]);
            if (got != se->n) printf("# %s: column %s has %zu values\n", path, name, got);
        } else if (strncmp(line, "case ", 5) == 0) {
            sscanf(line + 5, "%7s %31s %31s %127s %d", cur.conv, cur.ind, cur.ser, cur.params,
                   &cur.nout);
            nout_read = 0;
        } else if (strncmp(line, "out ", 4) == 0) {
            read_values(line + 4, cur.out[nout_read++]);
            if (nout_read == cur.nout) {
                char name[1024];
                snprintf(name, sizeof name, "%s %s(%s) on %s matches %s", cur.conv, cur.ind,
                         cur.params, cur.ser, path);
                unit_run(name, check_case);
            }
        }
    }
    fclose(f);
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = getenv("TF_FIXTURES") ? getenv("TF_FIXTURES") : "tests/fixtures/ind";
    const char *files[] = {"talib.txt", "mt5.txt", "plain.txt"};
    int rc = 0;
    for (int i = 0; i < 3; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        nseries = 0;
        if (load(path)) rc = 1;
    }
    return unit_done() | rc;
}
