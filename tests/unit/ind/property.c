/* Property tests of core/ind/ on random series: for every indicator, both
 * conventions and random parameters, streaming equals batch bar for bar (also
 * across a state copied mid-stream, as a job persisting it would); short
 * series give all NaN; constant series give finite values; and plain,
 * obviously-correct O(n*period) implementations agree with the library. */
#include <stdint.h>
#include <stdlib.h>

#include "ind/ind.h"
#include "mem.h"
#include "unit.h"

#define N 600

static uint64_t rng_state = 88172645463325252ull;

static double rnd(void) /* xorshift64*, [0,1) */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

typedef struct {
    double t[N], o[N], h[N], l[N], c[N], v[N];
} Bars;

static Bars bars;

static void random_bars(int flat)
{
    double p = 50 + rnd() * 100;
    for (int i = 0; i < N; i++) {
        bars.t[i] = 1700000000.0 + i * 900.0;
        if (flat) {
            bars.o[i] = bars.h[i] = bars.l[i] = bars.c[i] = 42.5;
            bars.v[i] = 10;
            continue;
        }
        double o = p, c = p * (1 + (rnd() - 0.5) * 0.02);
        if (rnd() < 0.02) c *= rnd() < 0.5 ? 0.9 : 1.1; /* gaps */
        double hi = fmax(o, c) * (1 + rnd() * 0.005), lo = fmin(o, c) * (1 - rnd() * 0.005);
        if (rnd() < 0.05) hi = lo = o = c; /* zero-range bar */
        bars.o[i] = o, bars.h[i] = hi, bars.l[i] = lo, bars.c[i] = c;
        bars.v[i] = rnd() < 0.05 ? 0 : floor(rnd() * 5000);
        p = c;
    }
}

static const double *input(const char *name)
{
    if (!strcmp(name, "time")) return bars.t;
    if (!strcmp(name, "open")) return bars.o;
    if (!strcmp(name, "high")) return bars.h;
    if (!strcmp(name, "low")) return bars.l;
    if (!strcmp(name, "volume")) return bars.v;
    return bars.c; /* real, close */
}

static double out_b[IND_MAX_OUTPUTS][N], out_s[IND_MAX_OUTPUTS][N];

static void batch(const IndSpec *s, size_t n, double o[][N])
{
    const double *in[IND_MAX_INPUTS];
    double *out[IND_MAX_OUTPUTS];
    for (int k = 0; k < s->def->ninputs; k++)
        in[k] = input(s->def->inputs[k]);
    for (int k = 0; k < s->def->noutputs; k++)
        out[k] = o[k];
    char err[100];
    CHECK(ind_batch(s, n, in, out, err, sizeof err) == 0);
}

/* Streams n bars; at bar cut the state is copied to a fresh block (the old
 * one is scribbled over and freed) and the stream continues from the copy. */
static void stream(const IndSpec *s, size_t n, size_t cut, double o[][N])
{
    size_t sz = ind_state_size(s);
    unsigned char *st = mem_alloc(sz);
    ind_state_init(s, st);
    for (size_t i = 0; i < n; i++) {
        if (i == cut) {
            unsigned char *copy = mem_alloc(sz);
            memcpy(copy, st, sz);
            memset(st, 0xA5, sz);
            mem_free(st);
            st = copy;
        }
        double x[IND_MAX_INPUTS], y[IND_MAX_OUTPUTS];
        for (int k = 0; k < s->def->ninputs; k++)
            x[k] = input(s->def->inputs[k])[i];
        ind_state_update(s, st, x, y);
        for (int k = 0; k < s->def->noutputs; k++)
            o[k][i] = y[k];
    }
    mem_free(st);
}

static void random_spec(IndSpec *s, const IndDef *d, IndConv conv)
{
    char err[100];
    CHECK(ind_spec_init(s, d->name, conv, err, sizeof err) == 0);
    for (int i = 0; i < d->nparams; i++) {
        const IndParam *p = &d->params[i];
        if (p->type == IND_P_REAL) continue;
        double hi = fmin(p->max, p->min + 25);
        double v = p->min + floor(rnd() * (hi - p->min + 1));
        CHECK(ind_spec_set(s, p->name, v, err, sizeof err) == 0);
    }
}

static int same(double a, double b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

TEST(streaming_equals_batch_for_every_indicator)
{
    for (int round = 0; round < 12; round++) {
        random_bars(0);
        for (size_t i = 0; i < ind_count(); i++) {
            const IndDef *d = ind_at(i);
            for (int conv = 0; conv < 2; conv++) {
                IndSpec s;
                random_spec(&s, d, (IndConv)conv);
                size_t cut = (size_t)(rnd() * N);
                batch(&s, N, out_b);
                stream(&s, N, cut, out_s);
                int bad = 0;
                for (int k = 0; k < d->noutputs; k++) {
                    for (size_t j = 0; j < N; j++) {
                        if (!same(out_b[k][j], out_s[k][j]) && bad++ == 0) {
                            unit_fail(__FILE__, __LINE__,
                                      "%s %s out %d bar %zu: batch %.17g stream %.17g", d->name,
                                      ind_conv_name(s.conv), k, j, out_b[k][j], out_s[k][j]);
                        }
                    }
                }
                /* NaN exactly before the lookback, defined from it on */
                int lb = ind_lookback(&s);
                for (int k = 0; k < d->noutputs; k++) {
                    for (int j = 0; j < N; j++) {
                        if (j < lb && !isnan(out_b[k][j])) {
                            unit_fail(__FILE__, __LINE__,
                                      "%s %s: out %d bar %d defined before lookback %d", d->name,
                                      ind_conv_name(s.conv), k, j, lb);
                            break;
                        }
                        if (j >= lb && !isfinite(out_b[k][j])) {
                            unit_fail(__FILE__, __LINE__,
                                      "%s %s: out %d bar %d is %g at/after lookback %d", d->name,
                                      ind_conv_name(s.conv), k, j, out_b[k][j], lb);
                            break;
                        }
                    }
                }
            }
        }
    }
}

TEST(short_series_are_all_nan_and_constant_series_finite)
{
    random_bars(1);
    for (size_t i = 0; i < ind_count(); i++) {
        const IndDef *d = ind_at(i);
        for (int conv = 0; conv < 2; conv++) {
            IndSpec s;
            random_spec(&s, d, (IndConv)conv);
            int lb = ind_lookback(&s);
            batch(&s, N, out_b);
            for (int k = 0; k < d->noutputs; k++) {
                for (int j = lb; j < N; j++) {
                    if (!isfinite(out_b[k][j])) {
                        unit_fail(__FILE__, __LINE__, "%s %s flat: out %d bar %d = %g", d->name,
                                  ind_conv_name(s.conv), k, j, out_b[k][j]);
                        break;
                    }
                }
            }
            if (lb > N) continue;
            batch(&s, (size_t)lb, out_b);
            for (int k = 0; k < d->noutputs; k++) {
                for (int j = 0; j < lb; j++)
                    CHECK(isnan(out_b[k][j]));
            }
            batch(&s, 0, out_b); /* empty input is fine */
        }
    }
}

/* The documented results on constant series, for constants whose sums do
 * not round-trip (TA-Lib itself gives CCI +-66.67 on 1.1 and 3.7). */
static double last_of(const char *name, IndConv conv, int out)
{
    IndSpec s;
    char err[100];
    CHECK(ind_spec_init(&s, name, conv, err, sizeof err) == 0);
    batch(&s, N, out_b);
    return out_b[out][N - 1];
}

TEST(constant_series_have_the_documented_values)
{
    const double consts[] = {1.2345, 1.1, 100.1, 0.3, 3.7, 99.99, 1.08765};
    for (size_t c = 0; c < sizeof consts / sizeof consts[0]; c++) {
        double x = consts[c];
        random_bars(1);
        for (int i = 0; i < N; i++)
            bars.o[i] = bars.h[i] = bars.l[i] = bars.c[i] = x;
        for (int conv = 0; conv < 2; conv++) {
            IndConv cv = (IndConv)conv;
            CHECK(last_of("cci", cv, 0) == 0);
            CHECK(last_of("stddev", cv, 0) == 0);
            CHECK(last_of("bbands", cv, 0) == x && out_b[1][N - 1] == x && out_b[2][N - 1] == x);
            CHECK(last_of("linreg", cv, 1) == 0 && out_b[0][N - 1] == x && out_b[3][N - 1] == x);
            CHECK(last_of("rsi", cv, 0) == (conv ? 50 : 0));
            CHECK(last_of("stoch", cv, 0) == (conv ? 100 : 0));
            CHECK(last_of("willr", cv, 0) == 0);
            CHECK(last_of("mfi", cv, 0) == (conv ? 100 : 0));
            CHECK(last_of("adx", cv, 0) == 0);
            CHECK(last_of("atr", cv, 0) == 0);
            CHECK(last_of("mom", cv, 0) == (conv ? 100 : 0));
            CHECK(last_of("aroon", cv, 0) == 100 && out_b[1][N - 1] == 100);
            CHECK(fabs(last_of("ema", cv, 0) - x) <= 1e-14 * x); /* rounding, not noise */
            CHECK(last_of("kama", cv, 0) == x);
            CHECK(fabs(last_of("sma", cv, 0) - x) <= 1e-14 * x);
            CHECK(fabs(last_of("macd", cv, 0)) < 1e-15 * x);
        }
    }
}

/* ---- plain references ---- */

static double mean(const double *x, int from, int n)
{
    double s = 0;
    for (int i = from; i < from + n; i++)
        s += x[i];
    return s / n;
}

static double hh(int i, int w)
{
    double m = -INFINITY;
    for (int k = i - w + 1; k <= i; k++)
        m = fmax(m, bars.h[k]);
    return m;
}

static double ll(int i, int w)
{
    double m = INFINITY;
    for (int k = i - w + 1; k <= i; k++)
        m = fmin(m, bars.l[k]);
    return m;
}

static double tr(int i)
{
    return fmax(bars.h[i], bars.c[i - 1]) - fmin(bars.l[i], bars.c[i - 1]);
}

static void run(const char *name, IndConv conv, const char *p1, double v1, const char *p2,
                double v2)
{
    IndSpec s;
    char err[100];
    CHECK(ind_spec_init(&s, name, conv, err, sizeof err) == 0);
    if (p1) CHECK(ind_spec_set(&s, p1, v1, err, sizeof err) == 0);
    if (p2) CHECK(ind_spec_set(&s, p2, v2, err, sizeof err) == 0);
    batch(&s, N, out_b);
}

#define NEAR(a, b) CHECK_NEAR(a, b, 1e-9)

TEST(plain_references_agree)
{
    for (int round = 0; round < 5; round++) {
        random_bars(0);
        int p = 3 + (int)(rnd() * 20);
        const double *c = bars.c;

        run("sma", IND_TALIB, "period", p, NULL, 0);
        for (int i = p - 1; i < N; i++)
            NEAR(out_b[0][i], mean(c, i - p + 1, p));
        run("sma", IND_MT5, "period", p, NULL, 0);
        for (int i = p - 1; i < N; i++)
            NEAR(out_b[0][i], mean(c, i - p + 1, p));

        run("ema", IND_TALIB, "period", p, NULL, 0);
        double e = mean(c, 0, p), k = 2.0 / (p + 1);
        for (int i = p; i < N; i++) {
            e = e + k * (c[i] - e);
            NEAR(out_b[0][i], e);
        }
        run("ema", IND_MT5, "period", p, NULL, 0);
        e = c[0];
        for (int i = 1; i < N; i++) {
            e = e + k * (c[i] - e);
            if (i >= p - 1) NEAR(out_b[0][i], e);
        }

        run("wma", IND_TALIB, "period", p, NULL, 0);
        for (int i = p - 1; i < N; i++) {
            double s = 0, w = 0;
            for (int j = 0; j < p; j++)
                s += (p - j) * c[i - j], w += p - j;
            NEAR(out_b[0][i], s / w);
        }

        run("rsi", IND_MT5, "period", p, NULL, 0);
        double g = 0, l = 0;
        for (int i = 1; i <= p; i++)
            g += fmax(c[i] - c[i - 1], 0), l += fmax(c[i - 1] - c[i], 0);
        g /= p, l /= p;
        for (int i = p; i < N; i++) {
            if (i > p) {
                g = (g * (p - 1) + fmax(c[i] - c[i - 1], 0)) / p;
                l = (l * (p - 1) + fmax(c[i - 1] - c[i], 0)) / p;
            }
            NEAR(out_b[0][i], l == 0 ? (g == 0 ? 50 : 100) : 100 * g / (g + l));
        }
        run("rsi", IND_TALIB, "period", p, "smoothing", 1);
        for (int i = p; i < N; i++) {
            double gs = 0, ls = 0;
            for (int j = i - p + 1; j <= i; j++)
                gs += fmax(c[j] - c[j - 1], 0), ls += fmax(c[j - 1] - c[j], 0);
            NEAR(out_b[0][i], ls == 0 ? (gs == 0 ? 50 : 100) : 100 * gs / (gs + ls));
        }

        run("atr", IND_MT5, "period", p, NULL, 0);
        for (int i = p; i < N; i++) {
            double s = 0;
            for (int j = i - p + 1; j <= i; j++)
                s += tr(j);
            NEAR(out_b[0][i], s / p);
        }

        run("bbands", IND_TALIB, "period", p, NULL, 0);
        for (int i = p - 1; i < N; i++) {
            double m = mean(c, i - p + 1, p), v = 0;
            for (int j = i - p + 1; j <= i; j++)
                v += (c[j] - m) * (c[j] - m);
            double sd = sqrt(v / p);
            CHECK_NEAR(out_b[1][i], m, 1e-9);
            CHECK_NEAR(out_b[0][i], m + 2 * sd, 1e-9);
            CHECK_NEAR(out_b[2][i], m - 2 * sd, 1e-9);
        }

        run("willr", IND_TALIB, "period", p, NULL, 0);
        for (int i = p - 1; i < N; i++) {
            double a = hh(i, p), b = ll(i, p);
            NEAR(out_b[0][i], a == b ? 0 : -100 * (a - c[i]) / (a - b));
        }

        run("donchian", IND_TALIB, "period", p, NULL, 0);
        for (int i = p - 1; i < N; i++)
            CHECK(out_b[0][i] == hh(i, p) && out_b[2][i] == ll(i, p));

        run("aroon", IND_TALIB, "period", p, NULL, 0);
        for (int i = p; i < N; i++) {
            int hi = i - p, lo = i - p;
            for (int j = i - p; j <= i; j++) {
                if (bars.h[j] >= bars.h[hi]) hi = j;
                if (bars.l[j] <= bars.l[lo]) lo = j;
            }
            NEAR(out_b[1][i], 100.0 * (p - (i - hi)) / p);
            NEAR(out_b[0][i], 100.0 * (p - (i - lo)) / p);
        }

        run("cci", IND_TALIB, "period", p, NULL, 0);
        for (int i = p - 1; i < N; i++) {
            double tp[64], m = 0, md = 0;
            for (int j = 0; j < p; j++) {
                tp[j] = (bars.h[i - j] + bars.l[i - j] + c[i - j]) / 3;
                m += tp[j];
            }
            m /= p;
            for (int j = 0; j < p; j++)
                md += fabs(tp[j] - m);
            md /= p;
            CHECK_NEAR(out_b[0][i], md == 0 ? 0 : (tp[0] - m) / (0.015 * md), 1e-8);
        }

        run("mom", IND_TALIB, "period", p, NULL, 0);
        for (int i = p; i < N; i++)
            NEAR(out_b[0][i], c[i] - c[i - p]);
        run("roc", IND_TALIB, "period", p, NULL, 0);
        for (int i = p; i < N; i++)
            NEAR(out_b[0][i], 100 * (c[i] - c[i - p]) / c[i - p]);

        run("obv", IND_TALIB, NULL, 0, NULL, 0);
        double obv = bars.v[0];
        for (int i = 1; i < N; i++) {
            obv += c[i] > c[i - 1] ? bars.v[i] : c[i] < c[i - 1] ? -bars.v[i] : 0;
            NEAR(out_b[0][i], obv);
        }

        run("linreg", IND_TALIB, "period", p, NULL, 0);
        for (int i = p - 1; i < N; i++) {
            double mx = (p - 1) / 2.0, my = mean(c, i - p + 1, p), sxy = 0, sxx = 0;
            for (int j = 0; j < p; j++)
                sxy += (j - mx) * (c[i - p + 1 + j] - my), sxx += (j - mx) * (j - mx);
            double m = sxy / sxx, b = my - m * mx;
            CHECK_NEAR(out_b[1][i], m, 1e-8);
            CHECK_NEAR(out_b[2][i], b, 1e-8);
            CHECK_NEAR(out_b[0][i], b + m * (p - 1), 1e-8);
            CHECK_NEAR(out_b[3][i], b + m * p, 1e-8);
        }

        run("trima", IND_TALIB, "period", p, NULL, 0); /* triangular weights, summed directly */
        for (int i = p - 1; i < N; i++) {
            int n1 = p % 2 ? (p + 1) / 2 : p / 2, n2 = p % 2 ? n1 : p / 2 + 1;
            double sw = 0, sx = 0;
            for (int j = 0; j < p; j++) {
                double w = fmin(fmin(j + 1, p - j), fmin(n1, n2));
                sw += w, sx += w * c[i - p + 1 + j];
            }
            NEAR(out_b[0][i], sx / sw);
        }

        run("trange", IND_TALIB, NULL, 0, NULL, 0);
        for (int i = 1; i < N; i++)
            NEAR(out_b[0][i], tr(i));

        run("stddev", IND_TALIB, "period", p, NULL, 0);
        for (int i = p - 1; i < N; i++) {
            double m = mean(c, i - p + 1, p), v = 0;
            for (int j = i - p + 1; j <= i; j++)
                v += (c[j] - m) * (c[j] - m);
            CHECK_NEAR(out_b[0][i], sqrt(v / p), 1e-8);
        }

        run("mfi", IND_MT5, "period", p, NULL, 0);
        for (int i = p; i < N; i++) {
            double pos = 0, neg = 0;
            for (int j = i - p + 1; j <= i; j++) {
                double t = (bars.h[j] + bars.l[j] + c[j]) / 3,
                       t0 = (bars.h[j - 1] + bars.l[j - 1] + c[j - 1]) / 3;
                if (t > t0) pos += t * bars.v[j];
                if (t < t0) neg += t * bars.v[j];
            }
            NEAR(out_b[0][i], neg == 0 ? 100 : 100 * pos / (pos + neg));
        }

        run("macd", IND_MT5, "fast", 3 + p % 5, "slow", p + 10);
        {
            int f = 3 + p % 5, sl = p + 10, sg = 9;
            double ef = c[0], es = c[0], line[N];
            for (int i = 0; i < N; i++) {
                if (i) ef += 2.0 / (f + 1) * (c[i] - ef), es += 2.0 / (sl + 1) * (c[i] - es);
                line[i] = ef - es;
                if (i < sl - 1 + sg - 1) continue;
                NEAR(out_b[0][i], line[i]);
                NEAR(out_b[1][i], mean(line, i - sg + 1, sg));
            }
        }

        run("keltner", IND_TALIB, "period", p, "atr_period", 3 + p % 7);
        {
            double ema[N], atr[N];
            int q = 3 + p % 7, lb = p - 1 > q ? p - 1 : q;
            ema[p - 1] = mean(c, 0, p);
            for (int i = p; i < N; i++)
                ema[i] = ema[i - 1] + 2.0 / (p + 1) * (c[i] - ema[i - 1]);
            atr[q] = 0;
            for (int i = 1; i <= q; i++)
                atr[q] += tr(i) / q;
            for (int i = q + 1; i < N; i++)
                atr[i] = (atr[i - 1] * (q - 1) + tr(i)) / q;
            for (int i = lb; i < N; i++) {
                NEAR(out_b[1][i], ema[i]);
                NEAR(out_b[0][i], ema[i] + 2 * atr[i]);
            }
        }

        run("stoch", IND_MT5, "fastk", p, NULL, 0);
        for (int i = p - 1 + 2 + 2; i < N; i++) {
            double d = 0;
            for (int q = 0; q < 3; q++) {
                double num = 0, den = 0;
                for (int j = i - q - 2; j <= i - q; j++)
                    num += c[j] - ll(j, p), den += hh(j, p) - ll(j, p);
                double kv = den == 0 ? 100 : 100 * num / den;
                if (q == 0) NEAR(out_b[0][i], kv);
                d += kv / 3;
            }
            NEAR(out_b[1][i], d);
        }
    }
}

TEST(registry_is_consistent_and_checks_params)
{
    char err[200];
    IndSpec s;
    CHECK(ind_count() >= 33);
    for (size_t i = 0; i < ind_count(); i++) {
        const IndDef *d = ind_at(i);
        CHECK(ind_find(d->name) == d);
        CHECK(d->ninputs >= 1 && d->ninputs <= IND_MAX_INPUTS);
        CHECK(d->noutputs >= 1 && d->noutputs <= IND_MAX_OUTPUTS);
        CHECK(d->doc && d->lookback_doc && d->title);
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(ind_at(j)->name, d->name) != 0);
        for (int k = 0; k < d->nparams; k++) {
            const IndParam *p = &d->params[k];
            CHECK(p->def >= p->min && p->def <= p->max);
            if (d->mt5_defaults)
                CHECK(d->mt5_defaults[k] >= p->min && d->mt5_defaults[k] <= p->max);
        }
        if (d->mt5_defaults) CHECK(d->has_mt5);
        CHECK(ind_spec_init(&s, d->name, IND_MT5, err, sizeof err) == 0);
        CHECK(s.conv == (d->has_mt5 ? IND_MT5 : IND_TALIB));
        CHECK(ind_lookback(&s) >= 0);
    }
    CHECK(ind_find("nope") == NULL);
    CHECK(ind_spec_init(&s, "nope", IND_TALIB, err, sizeof err) == -1);
    CHECK_STR(err, "unknown indicator 'nope'");
    CHECK(ind_spec_init(&s, "rsi", IND_TALIB, err, sizeof err) == 0);
    CHECK(ind_spec_set(&s, "period", 1, err, sizeof err) == -1);
    CHECK_STR(err, "rsi: period must be in [2, 100000], got 1");
    CHECK(ind_spec_set(&s, "period", 2.5, err, sizeof err) == -1);
    CHECK(ind_spec_set(&s, "bogus", 3, err, sizeof err) == -1);
    CHECK(ind_spec_set_choice(&s, "smoothing", "sma", err, sizeof err) == 0 && s.p[1] == 1);
    CHECK(ind_spec_set_choice(&s, "smoothing", "ema", err, sizeof err) == -1);
    CHECK(ind_spec_init(&s, "bbands", IND_MT5, err, sizeof err) == 0 && s.p[0] == 20); /* BB.mq5 */
    CHECK(ind_spec_init(&s, "bbands", IND_TALIB, err, sizeof err) == 0 && s.p[0] == 5);
    IndConv c;
    CHECK(ind_conv_parse("mt5", &c) == 0 && c == IND_MT5);
    CHECK(ind_conv_parse("MT4", &c) == -1);
}

TEST(batch_reports_out_of_memory)
{
    IndSpec s;
    char err[200] = "";
    random_bars(0);
    CHECK(ind_spec_init(&s, "cci", IND_TALIB, err, sizeof err) == 0); /* step-loop batch */
    const double *in[3] = {bars.h, bars.l, bars.c};
    double *out[1] = {out_b[0]};
    mem_fail_after(0);
    CHECK(ind_batch(&s, N, in, out, err, sizeof err) == -1);
    mem_fail_after(-1);
    CHECK_STR(err, "cci: out of memory for its state");
    CHECK(ind_batch(&s, N, in, out, err, sizeof err) == 0);
}

int main(void)
{
    RUN(streaming_equals_batch_for_every_indicator);
    RUN(short_series_are_all_nan_and_constant_series_finite);
    RUN(constant_series_have_the_documented_values);
    RUN(plain_references_agree);
    RUN(registry_is_consistent_and_checks_params);
    RUN(batch_reports_out_of_memory);
    return unit_done();
}
