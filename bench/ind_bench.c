/* Indicator benchmark: ns per bar over 1,000,000 bars for every registry
 * indicator, batch and streaming, beside naive one-pass C loops for SMA and
 * EMA and, when built with -DHAVE_TALIB, TA-Lib's own C functions. Prints a
 * markdown table. Built and run by bench/ind_bench.sh; never part of the
 * server. Times are the best of several runs on one core. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ind/ind.h"
#include "mem.h"

#ifdef HAVE_TALIB
#include "ta_libc.h"
#endif

#define N 1000000
#define RUNS 9

static double *t, *o, *h, *l, *c, *v, *outs[IND_MAX_OUTPUTS];
static volatile double sink;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static const double *input(const char *name)
{
    if (!strcmp(name, "time")) return t;
    if (!strcmp(name, "open")) return o;
    if (!strcmp(name, "high")) return h;
    if (!strcmp(name, "low")) return l;
    if (!strcmp(name, "volume")) return v;
    return c;
}

static void spec_for(IndSpec *s, const IndDef *d, IndConv conv)
{
    char err[100];
    ind_spec_init(s, d->name, conv, err, sizeof err);
    /* the periods the TA-Lib figures are usually quoted with */
    if (!strcmp(d->name, "sma") || !strcmp(d->name, "ema") || !strcmp(d->name, "bbands")) {
        ind_spec_set(s, "period", 20, err, sizeof err);
    }
}

/* One batch run, ns per bar. */
static double bench_batch(const IndSpec *s)
{
    const double *in[IND_MAX_INPUTS];
    char err[100];
    for (int k = 0; k < s->def->ninputs; k++)
        in[k] = input(s->def->inputs[k]);
    double t0 = now();
    ind_batch(s, N, in, outs, err, sizeof err);
    double dt = now() - t0;
    sink += outs[0][N - 1];
    return dt / N;
}

static double bench_stream(const IndSpec *s)
{
    const double *in[IND_MAX_INPUTS];
    int ni = s->def->ninputs;
    for (int k = 0; k < ni; k++)
        in[k] = input(s->def->inputs[k]);
    void *st = mem_alloc(ind_state_size(s));
    double best = INFINITY, y[IND_MAX_OUTPUTS], x[IND_MAX_INPUTS];
    for (int r = 0; r < 3; r++) {
        ind_state_init(s, st);
        double t0 = now();
        for (size_t i = 0; i < N; i++) {
            for (int k = 0; k < ni; k++)
                x[k] = in[k][i];
            ind_state_update(s, st, x, y);
        }
        double dt = now() - t0;
        if (dt < best) best = dt;
        sink += y[0];
    }
    mem_free(st);
    return best / N;
}

/* The memory-bandwidth floor: one pass, no NaN prefix handling to speak of. */
static double naive_sma(int p)
{
    double best = INFINITY;
    for (int r = 0; r < RUNS; r++) {
        double t0 = now(), sum = 0, *y = outs[0];
        for (int i = 0; i < N; i++) {
            sum += c[i];
            if (i >= p) sum -= c[i - p];
            y[i] = sum / p;
        }
        double dt = now() - t0;
        if (dt < best) best = dt;
        sink += y[N - 1];
    }
    return best / N;
}

static double naive_ema(int p)
{
    double best = INFINITY, k = 2.0 / (p + 1);
    for (int r = 0; r < RUNS; r++) {
        double t0 = now(), e = c[0], *y = outs[0];
        for (int i = 0; i < N; i++)
            y[i] = e = e + k * (c[i] - e);
        double dt = now() - t0;
        if (dt < best) best = dt;
        sink += y[N - 1];
    }
    return best / N;
}

#ifdef HAVE_TALIB
/* TA-Lib's C function for an indicator name, with the same parameters. */
/* One run of TA-Lib's function, ns per bar (NaN when it has none). */
static double bench_talib(const IndSpec *s)
{
    const char *n = s->def->name;
    const double *p = s->p;
    int beg, nb;
    double *a = outs[0], *b = outs[1], *e = outs[2];
    {
        double t0 = now();
        TA_RetCode rc;
        if (!strcmp(n, "sma"))
            rc = TA_SMA(0, N - 1, c, (int)p[0], &beg, &nb, a);
        else if (!strcmp(n, "ema"))
            rc = TA_EMA(0, N - 1, c, (int)p[0], &beg, &nb, a);
        else if (!strcmp(n, "wma"))
            rc = TA_WMA(0, N - 1, c, (int)p[0], &beg, &nb, a);
        else if (!strcmp(n, "dema"))
            rc = TA_DEMA(0, N - 1, c, (int)p[0], &beg, &nb, a);
        else if (!strcmp(n, "tema"))
            rc = TA_TEMA(0, N - 1, c, (int)p[0], &beg, &nb, a);
        else if (!strcmp(n, "trima"))
            rc = TA_TRIMA(0, N - 1, c, (int)p[0], &beg, &nb, a);
        else if (!strcmp(n, "kama"))
            rc = TA_KAMA(0, N - 1, c, (int)p[0], &beg, &nb, a);
        else if (!strcmp(n, "rsi"))
            rc = TA_RSI(0, N - 1, c, (int)p[0], &beg, &nb, a);
        else if (!strcmp(n, "macd"))
            rc = TA_MACD(0, N - 1, c, (int)p[0], (int)p[1], (int)p[2], &beg, &nb, a, b, e);
        else if (!strcmp(n, "atr"))
            rc = TA_ATR(0, N - 1, h, l, c, (int)p[0], &beg, &nb, a);
        else if (!strcmp(n, "natr"))
            rc = TA_NATR(0, N - 1, h, l, c, (int)p[0], &beg, &nb, a);
        else if (!strcmp(n, "trange"))
            rc = TA_TRANGE(0, N - 1, h, l, c, &beg, &nb, a);
        else if (!strcmp(n, "bbands"))
            rc = TA_BBANDS(0, N - 1, c, (int)p[0], p[1], p[2], TA_MAType_SMA, &beg, &nb, a, b, e);
        else if (!strcmp(n, "stddev"))
            rc = TA_STDDEV(0, N - 1, c, (int)p[0], p[1], &beg, &nb, a);
        else if (!strcmp(n, "stoch"))
            rc = TA_STOCH(0, N - 1, h, l, c, (int)p[0], (int)p[1], TA_MAType_SMA, (int)p[2],
                          TA_MAType_SMA, &beg, &nb, a, b);
        else if (!strcmp(n, "stochf"))
            rc = TA_STOCHF(0, N - 1, h, l, c, (int)p[0], (int)p[1], TA_MAType_SMA, &beg, &nb, a, b);
        else if (!strcmp(n, "stochrsi"))
            rc = TA_STOCHRSI(0, N - 1, c, (int)p[0], (int)p[1], (int)p[2], TA_MAType_SMA, &beg, &nb,
                             a, b);
        else if (!strcmp(n, "adx"))
            rc = TA_ADX(0, N - 1, h, l, c, (int)p[0], &beg, &nb, a);
        else if (!strcmp(n, "plus_di"))
            rc = TA_PLUS_DI(0, N - 1, h, l, c, (int)p[0], &beg, &nb, a);
        else if (!strcmp(n, "minus_di"))
            rc = TA_MINUS_DI(0, N - 1, h, l, c, (int)p[0], &beg, &nb, a);
        else if (!strcmp(n, "cci"))
            rc = TA_CCI(0, N - 1, h, l, c, (int)p[0], &beg, &nb, a);
        else if (!strcmp(n, "mfi"))
            rc = TA_MFI(0, N - 1, h, l, c, v, (int)p[0], &beg, &nb, a);
        else if (!strcmp(n, "obv"))
            rc = TA_OBV(0, N - 1, c, v, &beg, &nb, a);
        else if (!strcmp(n, "roc"))
            rc = TA_ROC(0, N - 1, c, (int)p[0], &beg, &nb, a);
        else if (!strcmp(n, "mom"))
            rc = TA_MOM(0, N - 1, c, (int)p[0], &beg, &nb, a);
        else if (!strcmp(n, "willr"))
            rc = TA_WILLR(0, N - 1, h, l, c, (int)p[0], &beg, &nb, a);
        else if (!strcmp(n, "aroon"))
            rc = TA_AROON(0, N - 1, h, l, (int)p[0], &beg, &nb, a, b);
        else if (!strcmp(n, "psar"))
            rc = TA_SAR(0, N - 1, h, l, p[0], p[1], &beg, &nb, a);
        else if (!strcmp(n, "linreg")) { /* four TA-Lib calls make our one */
            rc = TA_LINEARREG(0, N - 1, c, (int)p[0], &beg, &nb, a);
            rc |= TA_LINEARREG_SLOPE(0, N - 1, c, (int)p[0], &beg, &nb, b);
            rc |= TA_LINEARREG_INTERCEPT(0, N - 1, c, (int)p[0], &beg, &nb, e);
            rc |= TA_TSF(0, N - 1, c, (int)p[0], &beg, &nb, outs[3]);
        } else
            return NAN;
        double dt = now() - t0;
        if (rc != TA_SUCCESS) return NAN;
        sink += a[nb - 1];
        return dt / N;
    }
}
#endif

int main(void)
{
    double *all = malloc(sizeof(double) * N * (6 + IND_MAX_OUTPUTS));
    if (!all) return 1;
    t = all, o = t + N, h = o + N, l = h + N, c = l + N, v = c + N;
    for (int k = 0; k < IND_MAX_OUTPUTS; k++)
        outs[k] = v + N + (size_t)k * N;
    unsigned long long x = 88172645463325252ull;
    double p = 100;
    for (int i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double u = (double)(x >> 11) / 9007199254740992.0;
        double cl = p * (1 + (u - 0.5) * 0.01);
        t[i] = 1.7e9 + 60.0 * i, o[i] = p, c[i] = cl;
        h[i] = fmax(p, cl) * (1 + u * 0.002), l[i] = fmin(p, cl) * (1 - u * 0.002);
        v[i] = 100 + (double)(x % 1000);
        p = cl;
    }
#ifdef HAVE_TALIB
    TA_Initialize();
#endif
    printf("| indicator | params | batch talib | stream talib | batch mt5 | stream mt5 | TA-Lib C "
           "| batch/TA-Lib |\n");
    printf("|---|---|--:|--:|--:|--:|--:|--:|\n");
    for (size_t i = 0; i < ind_count(); i++) {
        const IndDef *d = ind_at(i);
        const char *only = getenv("IND_ONLY"); /* e.g. IND_ONLY=",rsi,macd," */
        char key[40];
        snprintf(key, sizeof key, ",%s,", d->name);
        if (only && !strstr(only, key)) continue;
        IndSpec s, m;
        spec_for(&s, d, IND_TALIB);
        spec_for(&m, d, IND_MT5);
        char ps[128] = "";
        for (int k = 0; k < d->nparams; k++) {
            size_t len = strlen(ps);
            snprintf(ps + len, sizeof ps - len, "%s%g", k ? "," : "", s.p[k]);
        }
        /* ours and TA-Lib's alternate, so both see the same machine load;
         * the best of RUNS each */
        double bt = INFINITY, bm = INFINITY, ta = INFINITY;
        for (int r = 0; r < RUNS; r++) {
            bt = fmin(bt, bench_batch(&s));
            if (d->has_mt5) bm = fmin(bm, bench_batch(&m));
#ifdef HAVE_TALIB
            ta = fmin(ta, bench_talib(&s));
#endif
        }
        if (isinf(ta)) ta = NAN;
        double st = bench_stream(&s);
        printf("| %s | %s | %.2f | %.2f |", d->name, ps, bt, st);
        if (d->has_mt5)
            printf(" %.2f | %.2f |", bm, bench_stream(&m));
        else
            printf(" = talib | = talib |");
        if (isnan(ta))
            printf(" - | - |\n");
        else
            printf(" %.2f | %.2f |\n", ta, bt / ta);
    }
    printf("| naive C loop: sma | 20 | %.2f | | | | | |\n", naive_sma(20));
    printf("| naive C loop: ema | 20 | %.2f | | | | | |\n", naive_ema(20));
    printf("\nns per bar, %d bars, best of %d batch / 3 stream runs (sink %g)\n", N, RUNS,
           sink > 0 ? 1.0 : 0.0);
    free(all);
    return 0;
}
