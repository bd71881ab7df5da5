/* Volatility and channels: TRANGE, ATR, NATR, BBANDS, STDDEV, Donchian,
 * Keltner, in TA-Lib and MetaTrader 5 form. One step function per indicator
 * serves streaming and batch; ATR and BBANDS also have a dedicated batch loop
 * with the same arithmetic. No I/O, no allocation. */
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "ind_impl.h"

static int lb_p(const IndSpec *s)
{
    return (int)s->p[0];
}

static int lb_p1(const IndSpec *s)
{
    return (int)s->p[0] - 1;
}

/* ---- TRANGE ---- */

typedef struct {
    double pc;
    long n;
} Trange;

static size_t trange_size(const IndSpec *s)
{
    return sizeof(Trange);
}

static void trange_init(void *st, const IndSpec *s) {}

static void trange_update(void *st, const double *in, double *out)
{
    Trange *t = st;
    out[0] = t->n++ ? ind_tr_talib(in[0], in[1], t->pc) : NAN;
    t->pc = in[2];
}

static int lb_1(const IndSpec *s)
{
    return 1;
}

static int trange_step_batch(const IndSpec *s, size_t n, const double *const *in,
                             double *const *out)
{
    const double *restrict h = in[0], *restrict l = in[1], *restrict c = in[2];
    double *restrict y = out[0];
    if (n) y[0] = NAN;
    for (size_t i = 1; i < n; i++)
        y[i] = ind_tr_talib(h[i], l[i], c[i - 1]);
    return 1;
}

const IndDef ind_def_trange = {
    .name = "trange",
    .title = "True Range",
    .ninputs = 3,
    .inputs = {"high", "low", "close"},
    .nparams = 0,
    .params = NULL,
    .noutputs = 1,
    .outputs = {"trange"},
    .has_mt5 = 0,
    .doc = "max(h-l, |h-prev close|, |l-prev close|); the first bar has no previous close and is "
           "NaN (ta_TRANGE.c). MT5 has no separate true range: mt5 = talib (same value).",
    .lookback_doc = "1",
    .lookback = lb_1,
    .state_size = trange_size,
    .init = trange_init,
    .update = trange_update,
    .batch = trange_step_batch,
};

/* ---- ATR, NATR ---- */

static const IndParam atr_params[] = {IND_PERIOD(14, 1)};

typedef struct {
    IndRing r; /* mt5: the last period true ranges */
    double pc, sum, atr;
    int conv, period, natr;
    long n;
} Atr;

static size_t atr_size(const IndSpec *s)
{
    return ind_align(sizeof(Atr)) + ind_ring_bytes((unsigned)s->p[0]);
}

static void atr_setup(Atr *a, size_t *off, int conv, int period)
{
    a->conv = conv, a->period = period;
    ind_ring_init(&a->r, off, (unsigned)period);
}

static void atr_init(void *st, const IndSpec *s)
{
    size_t off = ind_align(sizeof(Atr));
    atr_setup(st, &off, s->conv, (int)s->p[0]);
}

static void natr_init(void *st, const IndSpec *s)
{
    atr_init(st, s);
    ((Atr *)st)->natr = 1;
}

/* ATR at this bar, NaN before bar period. base holds a's ring. */
static double atr_step(void *base, Atr *a, double h, double l, double c)
{
    long n = a->n++;
    int p = a->period;
    double pc = a->pc;
    a->pc = c;
    if (n == 0) return NAN;
    if (a->conv == IND_MT5) { /* ATR.mq5 */
        double tr = ind_tr_mt5(h, l, pc), old = ind_ring_push(base, &a->r, tr);
        if (n < p) {
            a->sum += tr;
            return NAN;
        }
        if (n == p)
            a->atr = (a->sum + tr) / p;
        else
            a->atr = a->atr + (tr - old) / p;
        return a->atr;
    }
    double tr = ind_tr_talib(h, l, pc); /* ta_ATR.c: SMA seed, then Wilder */
    if (p == 1) return tr;
    if (n < p) {
        a->sum += tr;
        return NAN;
    }
    if (n == p) {
        a->sum += tr;
        a->atr = a->sum / p;
    } else {
        /* Wilder's (atr*(p-1)+tr)/p, as multiplications: the division kept
         * TA-Lib at ~7 ns/bar; the results agree to ~1e-15 relative */
        a->atr = a->atr * ((double)(p - 1) / p) + tr * (1.0 / p);
    }
    return a->atr;
}

static void atr_update(void *st, const double *in, double *out)
{
    Atr *a = st;
    double v = atr_step(st, a, in[0], in[1], in[2]);
    if (a->natr && !isnan(v)) v = !IND_IS_ZERO(in[2]) ? (v / in[2]) * 100.0 : 0.0;
    out[0] = v;
}

/* Dedicated talib batch loop for ATR (no ring needed); same arithmetic as
 * atr_step. mt5 and period 1 decline to the step loop. */
static int atr_batch(const IndSpec *s, size_t n, const double *const *in, double *const *out)
{
    const double *h = in[0], *l = in[1], *c = in[2];
    double *y = out[0];
    size_t p = (size_t)s->p[0];
    if (s->conv == IND_MT5 || p == 1) return ind_step_batch(s, n, in, out, 3, 1, atr_update);
    for (size_t i = 0; i < n && i <= p; i++)
        y[i] = NAN;
    if (n <= p) return 1;
    double sum = 0;
    for (size_t i = 1; i <= p; i++)
        sum += ind_tr_talib(h[i], l[i], c[i - 1]);
    double atr = sum / (double)p, a = (double)(p - 1) / (double)p, b = 1.0 / (double)p;
    y[p] = atr;
    if (s->def == &ind_def_natr) {
        y[p] = !IND_IS_ZERO(c[p]) ? (atr / c[p]) * 100.0 : 0.0;
        for (size_t i = p + 1; i < n; i++) {
            atr = atr * a + ind_tr_talib(h[i], l[i], c[i - 1]) * b;
            y[i] = !IND_IS_ZERO(c[i]) ? (atr / c[i]) * 100.0 : 0.0;
        }
        return 1;
    }
    for (size_t i = p + 1; i < n; i++) {
        atr = atr * a + ind_tr_talib(h[i], l[i], c[i - 1]) * b;
        y[i] = atr;
    }
    return 1;
}

const IndDef ind_def_atr = {
    .name = "atr",
    .title = "Average True Range",
    .ninputs = 3,
    .inputs = {"high", "low", "close"},
    .nparams = 1,
    .params = atr_params,
    .noutputs = 1,
    .outputs = {"atr"},
    .has_mt5 = 1,
    .doc = "True range from bar 1. talib: seeded with the mean of the first period true ranges, "
           "then Wilder: (atr*(period-1)+tr)/period (ta_ATR.c), computed as atr*((p-1)/p) + "
           "tr*(1/p), which agrees with TA-Lib to ~1e-15 relative and keeps the division off the "
           "critical path; period 1 gives the true range. "
           "mt5 (ATR.mq5): a simple moving average of true range, tr = max(h,pc)-min(l,pc). A "
           "constant or zero-range series gives 0.",
    .lookback_doc = "period",
    .lookback = lb_p,
    .state_size = atr_size,
    .init = atr_init,
    .update = atr_update,
    .batch = atr_batch,
};

const IndDef ind_def_natr = {
    .name = "natr",
    .title = "Normalized Average True Range",
    .ninputs = 3,
    .inputs = {"high", "low", "close"},
    .nparams = 1,
    .params = atr_params,
    .noutputs = 1,
    .outputs = {"natr"},
    .has_mt5 = 0,
    .doc = "ATR / close * 100 (TA-Lib's ATR); 0 when close is (near) zero. MT5 ships no NATR: "
           "mt5 = talib.",
    .lookback_doc = "period",
    .lookback = lb_p,
    .state_size = atr_size,
    .init = natr_init,
    .update = atr_update,
    .batch = atr_batch,
};

/* ---- BBANDS, STDDEV ---- */

static const IndParam bbands_params[] = {
    IND_PERIOD(5, 2),
    {"nbdevup", IND_P_REAL, 2, -3e37, 3e37, NULL, "deviations above the middle band"},
    {"nbdevdn", IND_P_REAL, 2, -3e37, 3e37, NULL, "deviations below the middle band"},
};

static const IndParam stddev_params[] = {
    IND_PERIOD(5, 2),
    {"nbdev", IND_P_REAL, 1, -3e37, 3e37, NULL, "multiplier"},
};

typedef struct {
    IndRing r;
    IndFlat flat;
    double sum, sum2;
    int conv, period;
    long n;
} Dev;

/* Mean and population standard deviation of the last period values; 0 when
 * not yet defined. talib: E[x^2] - mean^2 from rolling sums, 0 when that is
 * below TA_EPSILON (ta_utility.c, ta_STDDEV.c). mt5 (BB.mq5, StdDev.mq5):
 * SMA newest first, then a second pass sum of squared deviations. */
static int dev_step(void *st, double x, double *mean, double *sd)
{
    Dev *d = st;
    int p = d->period;
    long n = d->n++;
    int flat = ind_flat_push(&d->flat, x, p);
    if (d->conv == IND_MT5) {
        ind_ring_push(st, &d->r, x);
        if (d->r.len < d->r.cap) return 0;
        double m = 0.0, s2 = 0.0;
        for (int i = 0; i < p; i++)
            m += ind_ring_back(st, &d->r, (unsigned)i);
        m /= p;
        if (n >= p) { /* BB.mq5 leaves the deviation 0 on the first bar */
            for (int i = 0; i < p; i++) {
                double t = ind_ring_back(st, &d->r, (unsigned)i) - m;
                s2 += t * t;
            }
            s2 = sqrt(s2 / p);
        }
        *mean = m, *sd = s2;
        if (flat) *mean = x, *sd = 0.0;
        return 1;
    }
    double sq = x * x;
    d->sum += x;
    d->sum2 += sq;
    ind_ring_push(st, &d->r, x);
    if (d->r.len < d->r.cap) return 0;
    double m = d->sum / p, m2 = d->sum2 / p, old = ind_ring_oldest(st, &d->r);
    d->sum -= old;
    d->sum2 -= old * old;
    double var = m2 - m * m;
    *mean = m;
    *sd = !IND_IS_ZERO_OR_NEG(var) ? sqrt(var) : 0.0;
    if (flat) *mean = x, *sd = 0.0; /* exact, not sqrt(rounding noise) */
    return 1;
}

typedef struct {
    Dev d;
    double up, dn;
} Bb;

static size_t bb_size(const IndSpec *s)
{
    return ind_align(sizeof(Bb)) + ind_ring_bytes((unsigned)s->p[0]);
}

static void bb_init(void *st, const IndSpec *s)
{
    Bb *b = st;
    size_t off = ind_align(sizeof(Bb));
    b->d.conv = s->conv, b->d.period = (int)s->p[0];
    ind_ring_init(&b->d.r, &off, (unsigned)b->d.period);
    b->up = s->p[1], b->dn = s->p[2];
}

static void bb_update(void *st, const double *in, double *out)
{
    Bb *b = st;
    double m, sd;
    if (!dev_step(st, in[0], &m, &sd)) {
        out[0] = out[1] = out[2] = NAN;
        return;
    }
    out[0] = m + sd * b->up;
    out[1] = m;
    out[2] = m - sd * b->dn;
}

/* Dedicated talib batch loop. The rolling sums are one serial chain; the
 * divisions and square roots of two bars go through SSE2 together, so they
 * overlap with the chain. Same IEEE operations as dev_step/bb_update. */
static int bb_batch(const IndSpec *s, size_t n, const double *const *in, double *const *out)
{
    if (s->conv == IND_MT5) return ind_step_batch(s, n, in, out, 1, 3, bb_update); /* two-pass */
    const double *restrict x = in[0];
    double *restrict up = out[0], *restrict mid = out[1], *restrict lo = out[2];
    size_t p = (size_t)s->p[0], i = 0;
    double ku = s->p[1], kd = s->p[2], pd = (double)p, sum = 0, sum2 = 0;
    IndFlat flat = {0, 0};
    for (; i < n && i + 1 < p; i++) {
        sum += x[i], sum2 += x[i] * x[i];
        ind_flat_push(&flat, x[i], (long)p);
        up[i] = mid[i] = lo[i] = NAN;
    }
#if defined(__SSE2__)
    const __m128d P = _mm_set1_pd(pd), E = _mm_set1_pd(IND_EPSILON);
    const __m128d KU = _mm_set1_pd(ku), KD = _mm_set1_pd(kd);
    for (; i + 2 <= n; i += 2) {
        double v = x[i], t = x[i + 1 - p];
        sum += v, sum2 += v * v;
        double s0 = sum, q0 = sum2;
        sum -= t, sum2 -= t * t;
        int f0 = ind_flat_push(&flat, v, (long)p);
        v = x[i + 1], t = x[i + 2 - p];
        sum += v, sum2 += v * v;
        double s1 = sum, q1 = sum2;
        sum -= t, sum2 -= t * t;
        int f1 = ind_flat_push(&flat, v, (long)p);
        __m128d mean = _mm_div_pd(_mm_set_pd(s1, s0), P);
        __m128d var = _mm_sub_pd(_mm_div_pd(_mm_set_pd(q1, q0), P), _mm_mul_pd(mean, mean));
        __m128d sd = _mm_and_pd(_mm_sqrt_pd(var), _mm_cmpnlt_pd(var, E)); /* 0 below epsilon */
        _mm_storeu_pd(up + i, _mm_add_pd(mean, _mm_mul_pd(sd, KU)));
        _mm_storeu_pd(mid + i, mean);
        _mm_storeu_pd(lo + i, _mm_sub_pd(mean, _mm_mul_pd(sd, KD)));
        if (f0 | f1) { /* flat windows: exact bands */
            if (f0) up[i] = mid[i] = lo[i] = x[i];
            if (f1) up[i + 1] = mid[i + 1] = lo[i + 1] = x[i + 1];
        }
    }
#endif
    for (; i < n; i++) {
        double v = x[i], t = x[i + 1 - p];
        sum += v, sum2 += v * v;
        double mean = sum / pd, var = sum2 / pd - mean * mean;
        sum -= t, sum2 -= t * t;
        double sd = !IND_IS_ZERO_OR_NEG(var) ? sqrt(var) : 0.0;
        if (ind_flat_push(&flat, v, (long)p)) mean = v, sd = 0.0;
        up[i] = mean + sd * ku;
        mid[i] = mean;
        lo[i] = mean - sd * kd;
    }
    return 1;
}

static const double bbands_mt5_defaults[] = {20, 2, 2}; /* BB.mq5 */

const IndDef ind_def_bbands = {
    .name = "bbands",
    .title = "Bollinger Bands",
    .ninputs = 1,
    .inputs = {"real"},
    .nparams = 3,
    .params = bbands_params,
    .noutputs = 3,
    .outputs = {"upper", "middle", "lower"},
    .has_mt5 = 1,
    .mt5_defaults = bbands_mt5_defaults,
    .doc = "middle = SMA(period); upper/lower = middle +/- nbdev * population stddev. talib: "
           "variance = E[x^2]-mean^2 from rolling sums, stddev 0 when the variance is below "
           "1e-14 (TA-Lib's TA_IS_ZERO_OR_NEG). A flat window gives three bands exactly equal to "
           "the price (TA-Lib gives a band width of sqrt(rounding), e.g. 1e-5 at 100.1: "
           "deliberately not reproduced). "
           "mt5 (BB.mq5): two-pass stddev, O(period) per bar, and 0 on the very first bar as "
           "MT5 computes it; pass period 20 for MT5's default.",
    .lookback_doc = "period-1",
    .lookback = lb_p1,
    .state_size = bb_size,
    .init = bb_init,
    .update = bb_update,
    .batch = bb_batch,
};

typedef struct {
    Dev d;
    double k;
} Sd;

static size_t sd_size(const IndSpec *s)
{
    return ind_align(sizeof(Sd)) + ind_ring_bytes((unsigned)s->p[0]);
}

static void sd_init(void *st, const IndSpec *s)
{
    Sd *v = st;
    size_t off = ind_align(sizeof(Sd));
    v->d.conv = s->conv, v->d.period = (int)s->p[0];
    ind_ring_init(&v->d.r, &off, (unsigned)v->d.period);
    v->k = s->p[1];
}

static void sd_update(void *st, const double *in, double *out)
{
    Sd *v = st;
    double m, sd;
    out[0] = dev_step(st, in[0], &m, &sd) ? sd * v->k : NAN;
}

/* Dedicated talib batch loop: dev_step's arithmetic with locals. */
static int stddev_step_batch(const IndSpec *s, size_t n, const double *const *in,
                             double *const *out)
{
    if (s->conv == IND_MT5) return ind_step_batch(s, n, in, out, 1, 1, sd_update);
    const double *restrict x = in[0];
    double *restrict y = out[0];
    size_t p = (size_t)s->p[0], i = 0;
    double sum = 0, sum2 = 0, pd = (double)p, k = s->p[1];
    IndFlat flat = {0, 0};
    for (; i < n && i + 1 < p; i++) {
        sum += x[i], sum2 += x[i] * x[i];
        ind_flat_push(&flat, x[i], (long)p);
        y[i] = NAN;
    }
#if defined(__SSE2__)
    /* two bars at a time through the divider, as bb_batch does */
    const __m128d P = _mm_set1_pd(pd), E = _mm_set1_pd(IND_EPSILON), K = _mm_set1_pd(k);
    for (; i + 2 <= n; i += 2) {
        double v = x[i], t = x[i + 1 - p];
        sum += v, sum2 += v * v;
        double s0 = sum, q0 = sum2;
        sum -= t, sum2 -= t * t;
        int f0 = ind_flat_push(&flat, v, (long)p);
        v = x[i + 1], t = x[i + 2 - p];
        sum += v, sum2 += v * v;
        double s1 = sum, q1 = sum2;
        sum -= t, sum2 -= t * t;
        int f1 = ind_flat_push(&flat, v, (long)p);
        __m128d mean = _mm_div_pd(_mm_set_pd(s1, s0), P);
        __m128d var = _mm_sub_pd(_mm_div_pd(_mm_set_pd(q1, q0), P), _mm_mul_pd(mean, mean));
        __m128d sd = _mm_and_pd(_mm_sqrt_pd(var), _mm_cmpnlt_pd(var, E));
        _mm_storeu_pd(y + i, _mm_mul_pd(sd, K));
        if (f0 | f1) {
            if (f0) y[i] = 0.0 * k;
            if (f1) y[i + 1] = 0.0 * k;
        }
    }
#endif
    for (; i < n; i++) {
        double v = x[i], t = x[i + 1 - p];
        int f = ind_flat_push(&flat, v, (long)p);
        sum += v, sum2 += v * v;
        double m = sum / pd, m2 = sum2 / pd;
        sum -= t, sum2 -= t * t;
        double var = m2 - m * m, sd = !IND_IS_ZERO_OR_NEG(var) ? sqrt(var) : 0.0;
        if (f) sd = 0.0;
        y[i] = sd * k;
    }
    return 1;
}

static const double stddev_mt5_defaults[] = {20, 1}; /* StdDev.mq5 */

const IndDef ind_def_stddev = {
    .name = "stddev",
    .title = "Standard Deviation",
    .ninputs = 1,
    .inputs = {"real"},
    .nparams = 2,
    .params = stddev_params,
    .noutputs = 1,
    .outputs = {"stddev"},
    .has_mt5 = 1,
    .mt5_defaults = stddev_mt5_defaults,
    .doc = "Population standard deviation of the last period values times nbdev. talib: from "
           "rolling sums, 0 below a 1e-14 variance (ta_STDDEV.c). mt5 (StdDev.mq5, SMA): "
           "two-pass, O(period) per bar, 0 on the first bar like BB.mq5. A flat window gives "
           "exactly 0 in both (TA-Lib can give sqrt(rounding) there).",
    .lookback_doc = "period-1",
    .lookback = lb_p1,
    .state_size = sd_size,
    .init = sd_init,
    .update = sd_update,
    .batch = stddev_step_batch,
};

/* ---- Donchian ---- */

static const IndParam donchian_params[] = {IND_PERIOD(20, 1)};

typedef struct {
    IndRing h, l;
    IndExt hi, lo;
    int period;
} Donch;

static size_t donch_size(const IndSpec *s)
{
    return ind_align(sizeof(Donch)) + 2 * ind_ring_bytes((unsigned)s->p[0]);
}

static void donch_init(void *st, const IndSpec *s)
{
    Donch *d = st;
    size_t off = ind_align(sizeof(Donch));
    d->period = (int)s->p[0];
    ind_ring_init(&d->h, &off, (unsigned)d->period);
    ind_ring_init(&d->l, &off, (unsigned)d->period);
}

static void donch_update(void *st, const double *in, double *out)
{
    Donch *d = st;
    ind_ring_push(st, &d->h, in[0]);
    ind_ring_push(st, &d->l, in[1]);
    ind_ext_update(st, &d->h, &d->hi, in[0], (unsigned)d->period, 1);
    ind_ext_update(st, &d->l, &d->lo, in[1], (unsigned)d->period, 0);
    if (d->h.len < d->h.cap) {
        out[0] = out[1] = out[2] = NAN;
        return;
    }
    out[0] = d->hi.v;
    out[1] = (d->hi.v + d->lo.v) / 2.0;
    out[2] = d->lo.v;
}

IND_STEP_BATCH(donchian_step_batch, donch_update, 2, 3)

const IndDef ind_def_donchian = {
    .name = "donchian",
    .title = "Donchian Channel",
    .ninputs = 2,
    .inputs = {"high", "low"},
    .nparams = 1,
    .params = donchian_params,
    .noutputs = 3,
    .outputs = {"upper", "middle", "lower"},
    .has_mt5 = 0,
    .doc = "Highest high and lowest low of the last period bars (this bar included), middle = "
           "their mean. Not in TA-Lib nor built into MT5: one form for both conventions.",
    .lookback_doc = "period-1",
    .lookback = lb_p1,
    .state_size = donch_size,
    .init = donch_init,
    .update = donch_update,
    .batch = donchian_step_batch,
};

/* ---- Keltner ---- */

static const IndParam keltner_params[] = {
    IND_PERIOD(20, 1),
    {"multiplier", IND_P_REAL, 2, -3e37, 3e37, NULL, "ATR multiples from the middle"},
    {"atr_period", IND_P_INT, 10, 1, 100000, NULL, "ATR period"},
};

typedef struct {
    IndEmaT ema;
    Atr atr;
    double k;
} Kelt;

static size_t kelt_size(const IndSpec *s)
{
    return ind_align(sizeof(Kelt)) + ind_ring_bytes((unsigned)s->p[2]);
}

static void kelt_init(void *st, const IndSpec *s)
{
    Kelt *k = st;
    size_t off = ind_align(sizeof(Kelt));
    ind_emat_init(&k->ema, (int)s->p[0]);
    atr_setup(&k->atr, &off, IND_TALIB, (int)s->p[2]);
    k->k = s->p[1];
}

static void kelt_update(void *st, const double *in, double *out)
{
    Kelt *k = st;
    double m = ind_emat_step(&k->ema, in[2]), a = atr_step(st, &k->atr, in[0], in[1], in[2]);
    if (isnan(m) || isnan(a)) {
        out[0] = out[1] = out[2] = NAN;
        return;
    }
    out[0] = m + k->k * a;
    out[1] = m;
    out[2] = m - k->k * a;
}

static int kelt_lb(const IndSpec *s)
{
    int a = (int)s->p[0] - 1, b = (int)s->p[2];
    return a > b ? a : b;
}

IND_STEP_BATCH(keltner_step_batch, kelt_update, 3, 3)

const IndDef ind_def_keltner = {
    .name = "keltner",
    .title = "Keltner Channel",
    .ninputs = 3,
    .inputs = {"high", "low", "close"},
    .nparams = 3,
    .params = keltner_params,
    .noutputs = 3,
    .outputs = {"upper", "middle", "lower"},
    .has_mt5 = 0,
    .doc = "middle = EMA(period) of close, bands = middle +/- multiplier * ATR(atr_period), "
           "both in TA-Lib form. Not built into MT5: mt5 = talib.",
    .lookback_doc = "max(period-1, atr_period)",
    .lookback = kelt_lb,
    .state_size = kelt_size,
    .init = kelt_init,
    .update = kelt_update,
    .batch = keltner_step_batch,
};
