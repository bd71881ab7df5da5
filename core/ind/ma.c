/* Moving averages: SMA, EMA, WMA, DEMA, TEMA, TRIMA, KAMA, in TA-Lib and
 * MetaTrader 5 form. Streaming states are pointer-free blocks; the batch form
 * runs the same step functions, so the two agree bar for bar. No I/O, no
 * allocation. */
#include <string.h>

#include "ind_impl.h"

static const IndParam period30_1[] = {IND_PERIOD(30, 1)};

static int lb_p1(const IndSpec *s)
{
    return (int)s->p[0] - 1;
}

/* ---- SMA ---- */

typedef struct {
    IndSmaT t;
    IndSmaM m;
    int conv;
} Sma;

static size_t sma_size(const IndSpec *s)
{
    return ind_align(sizeof(Sma)) + ind_ring_bytes((unsigned)s->p[0]);
}

static void sma_init(void *st, const IndSpec *s)
{
    Sma *a = st;
    size_t off = ind_align(sizeof(Sma)), off2 = off;
    a->conv = s->conv;
    ind_smat_init(&a->t, &off, (int)s->p[0]);
    ind_smam_init(&a->m, &off2, (int)s->p[0]); /* the same ring: one is used */
}

static void sma_update(void *st, const double *in, double *out)
{
    Sma *a = st;
    out[0] = a->conv == IND_MT5 ? ind_smam_step(st, &a->m, in[0]) : ind_smat_step(st, &a->t, in[0]);
}

/* Dedicated batch loop: reads the trailing value from the input instead of a
 * ring; the same arithmetic in the same order as the step functions. */
static int sma_batch(const IndSpec *s, size_t n, const double *const *in, double *const *out)
{
    const double *x = in[0];
    double *y = out[0];
    size_t p = (size_t)s->p[0];
    double sum = 0;
    for (size_t i = 0; i < n && i + 1 < p; i++)
        sum += x[i], y[i] = NAN;
    if (n < p) return 1;
    if (s->conv == IND_MT5) {
        sum += x[p - 1];
        double v = sum / (double)p;
        y[p - 1] = v;
        for (size_t i = p; i < n; i++)
            y[i] = v = v + (x[i] - x[i - p]) / (double)p;
        return 1;
    }
    for (size_t i = p - 1; i < n; i++) {
        sum += x[i];
        y[i] = sum / (double)p;
        sum -= x[i + 1 - p];
    }
    return 1;
}

const IndDef ind_def_sma = {
    .name = "sma",
    .title = "Simple Moving Average",
    .ninputs = 1,
    .inputs = {"real"},
    .nparams = 1,
    .params = period30_1,
    .noutputs = 1,
    .outputs = {"sma"},
    .has_mt5 = 1,
    .doc = "Mean of the last period values. talib: rolling sum (ta_SMA.c). mt5: first value "
           "sum/period, then prev + (x - x[-period])/period (SimpleMAOnBuffer); the two differ "
           "only by rounding. Constant input gives that constant.",
    .lookback_doc = "period-1",
    .lookback = lb_p1,
    .state_size = sma_size,
    .init = sma_init,
    .update = sma_update,
    .batch = sma_batch,
};

/* ---- EMA ---- */

typedef struct {
    IndEmaT t;
    IndEmaM m;
    int conv, period, n;
} Ema;

static size_t ema_size(const IndSpec *s)
{
    return sizeof(Ema);
}

static void ema_init(void *st, const IndSpec *s)
{
    Ema *e = st;
    e->conv = s->conv;
    e->period = (int)s->p[0];
    ind_emat_init(&e->t, e->period);
    ind_emam_init(&e->m, e->period);
}

static void ema_update(void *st, const double *in, double *out)
{
    Ema *e = st;
    if (e->conv == IND_MT5) {
        double v = ind_emam_step(&e->m, in[0]);
        out[0] = e->n < e->period - 1 ? (e->n++, NAN) : v;
    } else {
        out[0] = ind_emat_step(&e->t, in[0]);
    }
}

static int ema_batch(const IndSpec *s, size_t n, const double *const *in, double *const *out)
{
    const double *x = in[0];
    double *y = out[0];
    size_t p = (size_t)s->p[0];
    for (size_t i = 0; i < n && i + 1 < p; i++)
        y[i] = NAN;
    if (n < p) return 1;
    if (s->conv == IND_MT5) {
        double sf = 2.0 / (1.0 + (double)p), v = x[0];
        for (size_t i = 1; i < p; i++)
            v = x[i] * sf + v * (1.0 - sf);
        y[p - 1] = v;
        for (size_t i = p; i < n; i++)
            y[i] = v = x[i] * sf + v * (1.0 - sf);
        return 1;
    }
    double k = 2.0 / ((double)(p + 1)), sum = 0;
    for (size_t i = 0; i < p; i++)
        sum += x[i];
    double v = sum / (double)p;
    y[p - 1] = v;
    for (size_t i = p; i < n; i++)
        y[i] = v = ((x[i] - v) * k) + v;
    return 1;
}

const IndDef ind_def_ema = {
    .name = "ema",
    .title = "Exponential Moving Average",
    .ninputs = 1,
    .inputs = {"real"},
    .nparams = 1,
    .params = period30_1,
    .noutputs = 1,
    .outputs = {"ema"},
    .has_mt5 = 1,
    .doc = "k = 2/(period+1). talib: seeded with the SMA of the first period values, then "
           "(x-prev)*k+prev. mt5: seeded with the first price, then x*k+prev*(1-k) (MT5 draws "
           "from bar period-1, so earlier bars are NaN here too); the two differ at the start "
           "and converge. Constant input gives that constant.",
    .lookback_doc = "period-1",
    .lookback = lb_p1,
    .state_size = ema_size,
    .init = ema_init,
    .update = ema_update,
    .batch = ema_batch,
};

/* ---- WMA (ta_WMA.c; MT5's LWMA is the same average, summed directly) ---- */

typedef struct {
    IndRing r;
    double sub, sum, trailing;
    int period, n;
} Wma;

static size_t wma_size(const IndSpec *s)
{
    return ind_align(sizeof(Wma)) + ind_ring_bytes((unsigned)s->p[0]);
}

static void wma_init(void *st, const IndSpec *s)
{
    Wma *w = st;
    size_t off = ind_align(sizeof(Wma));
    w->period = (int)s->p[0];
    ind_ring_init(&w->r, &off, (unsigned)w->period);
}

static void wma_update(void *st, const double *in, double *out)
{
    Wma *w = st;
    double x = in[0];
    int p = w->period;
    ind_ring_push(st, &w->r, x);
    if (w->n < p - 1) {
        w->sub += x;
        w->sum += x * (double)(w->n + 1);
        w->n++;
        out[0] = NAN;
        return;
    }
    w->sub += x;
    w->sub -= w->trailing;
    w->sum += x * (double)p;
    w->trailing = ind_ring_oldest(st, &w->r);
    out[0] = w->sum / (double)(((long long)p * (p + 1)) >> 1);
    w->sum -= w->sub;
}

/* Dedicated batch loop: wma_update's arithmetic, trailing value from the input. */
static int wma_step_batch(const IndSpec *s, size_t n, const double *const *in, double *const *out)
{
    const double *x = in[0];
    double *y = out[0];
    size_t p = (size_t)s->p[0];
    double sub = 0, sum = 0, trailing = 0, div = (double)(((long long)p * (long long)(p + 1)) >> 1);
    for (size_t i = 0; i < n && i + 1 < p; i++) {
        sub += x[i];
        sum += x[i] * (double)(i + 1);
        y[i] = NAN;
    }
    for (size_t i = p - 1; i < n; i++) {
        sub += x[i];
        sub -= trailing;
        sum += x[i] * (double)p;
        trailing = x[i + 1 - p];
        y[i] = sum / div;
        sum -= sub;
    }
    return 1;
}

const IndDef ind_def_wma = {
    .name = "wma",
    .title = "Weighted (linear) Moving Average",
    .ninputs = 1,
    .inputs = {"real"},
    .nparams = 1,
    .params = period30_1,
    .noutputs = 1,
    .outputs = {"wma"},
    .has_mt5 = 0,
    .doc = "Weights 1..period, newest heaviest, over period*(period+1)/2. mt5 falls back to "
           "talib: MT5's LWMA is the same average summed directly each bar (differs by rounding "
           "only). Constant input gives that constant.",
    .lookback_doc = "period-1",
    .lookback = lb_p1,
    .state_size = wma_size,
    .init = wma_init,
    .update = wma_update,
    .batch = wma_step_batch,
};

/* ---- DEMA / TEMA: chained EMAs ---- */

typedef struct {
    IndEmaT t[3];
    IndEmaM m[3];
    int conv, period, depth;
    long n;
} Xema;

static size_t xema_size(const IndSpec *s)
{
    return sizeof(Xema);
}

static void xema_init(Xema *e, const IndSpec *s, int depth)
{
    e->conv = s->conv;
    e->period = (int)s->p[0];
    e->depth = depth;
    for (int i = 0; i < 3; i++)
        ind_emat_init(&e->t[i], e->period), ind_emam_init(&e->m[i], e->period);
}

static void dema_init(void *st, const IndSpec *s)
{
    xema_init(st, s, 2);
}

static void tema_init(void *st, const IndSpec *s)
{
    xema_init(st, s, 3);
}

/* Returns 1 with e1..e3 when every level is defined at this bar. talib: each
 * level is a TA-Lib EMA of the previous level's defined outputs. mt5
 * (DEMA.mq5, TEMA.mq5): level k starts at bar k*(period-1) seeded with the
 * level below. */
static int xema_step(Xema *e, double x, double *v)
{
    long n = e->n++;
    long p1 = e->period - 1;
    if (e->conv == IND_MT5) {
        v[0] = ind_emam_step(&e->m[0], x);
        for (int k = 1; k < e->depth; k++) {
            if (n < k * p1) return 0;
            v[k] = ind_emam_step(&e->m[k], v[k - 1]);
        }
        return n >= e->depth * p1;
    }
    v[0] = ind_emat_step(&e->t[0], x);
    for (int k = 1; k < e->depth; k++) {
        if (isnan(v[k - 1])) return 0;
        v[k] = ind_emat_step(&e->t[k], v[k - 1]);
    }
    return !isnan(v[e->depth - 1]);
}

static void dema_update(void *st, const double *in, double *out)
{
    double v[3];
    out[0] = xema_step(st, in[0], v) ? (2.0 * v[0]) - v[1] : NAN;
}

static void tema_update(void *st, const double *in, double *out)
{
    double v[3];
    out[0] = xema_step(st, in[0], v) ? v[2] + ((3.0 * v[0]) - (3.0 * v[1])) : NAN;
}

static int dema_lb(const IndSpec *s)
{
    return 2 * ((int)s->p[0] - 1);
}

static int tema_lb(const IndSpec *s)
{
    return 3 * ((int)s->p[0] - 1);
}

IND_STEP_BATCH(dema_step_batch, dema_update, 1, 1)

static const double dema_mt5_defaults[] = {14}; /* DEMA.mq5 */

const IndDef ind_def_dema = {
    .name = "dema",
    .title = "Double Exponential Moving Average",
    .ninputs = 1,
    .inputs = {"real"},
    .nparams = 1,
    .params = period30_1,
    .noutputs = 1,
    .outputs = {"dema"},
    .has_mt5 = 1,
    .mt5_defaults = dema_mt5_defaults,
    .doc = "2*EMA - EMA(EMA). talib: each EMA seeded with an SMA. mt5 (DEMA.mq5): EMA seeded "
           "with the first price, EMA(EMA) started at bar period-1 with the EMA's value.",
    .lookback_doc = "2*(period-1)",
    .lookback = dema_lb,
    .state_size = xema_size,
    .init = dema_init,
    .update = dema_update,
    .batch = dema_step_batch,
};

IND_STEP_BATCH(tema_step_batch, tema_update, 1, 1)

static const double tema_mt5_defaults[] = {14}; /* TEMA.mq5 */

const IndDef ind_def_tema = {
    .name = "tema",
    .title = "Triple Exponential Moving Average",
    .ninputs = 1,
    .inputs = {"real"},
    .nparams = 1,
    .params = period30_1,
    .noutputs = 1,
    .outputs = {"tema"},
    .has_mt5 = 1,
    .mt5_defaults = tema_mt5_defaults,
    .doc = "3*EMA - 3*EMA(EMA) + EMA(EMA(EMA)). Seeding per level as for dema (mt5: level k "
           "starts at bar k*(period-1)).",
    .lookback_doc = "3*(period-1)",
    .lookback = tema_lb,
    .state_size = xema_size,
    .init = tema_init,
    .update = tema_update,
    .batch = tema_step_batch,
};

/* ---- TRIMA: SMA of an SMA, as a rolling sum of rolling sums ---- */

typedef struct {
    IndRing x, s; /* the last n1 inputs, the last n2 first-level sums */
    double s1, s2, inv;
    int n1, n2;
} Trima;

static void trima_periods(int p, int *n1, int *n2)
{
    if (p & 1)
        *n1 = *n2 = (p + 1) / 2;
    else
        *n1 = p / 2, *n2 = p / 2 + 1;
}

static size_t trima_size(const IndSpec *s)
{
    int n1, n2;
    trima_periods((int)s->p[0], &n1, &n2);
    return ind_align(sizeof(Trima)) + ind_ring_bytes((unsigned)n1) + ind_ring_bytes((unsigned)n2);
}

static void trima_init(void *st, const IndSpec *s)
{
    Trima *t = st;
    size_t off = ind_align(sizeof(Trima));
    trima_periods((int)s->p[0], &t->n1, &t->n2);
    t->inv = 1.0 / ((double)t->n1 * (double)t->n2);
    ind_ring_init(&t->x, &off, (unsigned)t->n1);
    ind_ring_init(&t->s, &off, (unsigned)t->n2);
}

static void trima_update(void *st, const double *in, double *out)
{
    Trima *t = st;
    out[0] = NAN;
    t->s1 += in[0];
    ind_ring_push(st, &t->x, in[0]);
    if (t->x.len < t->x.cap) return;
    double a = t->s1;
    t->s1 -= ind_ring_oldest(st, &t->x);
    t->s2 += a;
    ind_ring_push(st, &t->s, a);
    if (t->s.len < t->s.cap) return;
    out[0] = t->s2 * t->inv;
    t->s2 -= ind_ring_oldest(st, &t->s);
}

/* Dedicated batch loop: trima_update's sums; the first-level sum leaving the
 * second window is recomputed by a lagging copy of the first accumulator
 * (same operations, so the same bits) instead of being stored. */
static int trima_step_batch(const IndSpec *s, size_t n, const double *const *in, double *const *out)
{
    const double *x = in[0];
    double *y = out[0];
    int i1, i2;
    trima_periods((int)s->p[0], &i1, &i2);
    size_t n1 = (size_t)i1, n2 = (size_t)i2, lb = n1 - 1 + n2 - 1;
    double lead = 0, lag = 0, s2 = 0, inv = 1.0 / ((double)n1 * (double)n2);
    for (size_t i = 0; i < n && i < lb; i++) {
        y[i] = NAN;
        lead += x[i];
        if (i + 1 < n1) continue;
        s2 += lead;
        lead -= x[i + 1 - n1];
    }
    if (n > lb) {
        for (size_t k = 0; k + 1 < n1; k++)
            lag += x[k];
    }
    for (size_t i = lb; i < n; i++) {
        lead += x[i];
        double a = lead;
        lead -= x[i + 1 - n1];
        s2 += a;
        y[i] = s2 * inv;
        size_t j = i + 1 - n2; /* the first-level bar leaving the window */
        lag += x[j];
        double aj = lag;
        lag -= x[j + 1 - n1];
        s2 -= aj;
    }
    return 1;
}

const IndDef ind_def_trima = {
    .name = "trima",
    .title = "Triangular Moving Average",
    .ninputs = 1,
    .inputs = {"real"},
    .nparams = 1,
    .params = period30_1,
    .noutputs = 1,
    .outputs = {"trima"},
    .has_mt5 = 0,
    .doc = "Triangular weights (TA-Lib's definition): SMA((p+1)/2) of SMA((p+1)/2) for odd p, "
           "SMA(p/2+1) of SMA(p/2) for even p, computed as a rolling sum of rolling sums times "
           "1/(n1*n2); it differs from TA-Lib's incremental form by rounding only. MT5 ships no "
           "TRIMA: mt5 = talib.",
    .lookback_doc = "period-1",
    .lookback = lb_p1,
    .state_size = trima_size,
    .init = trima_init,
    .update = trima_update,
    .batch = trima_step_batch,
};

/* ---- KAMA ---- */

static const IndParam kama_params[] = {
    IND_PERIOD(30, 2),
    {"fast", IND_P_INT, 2, 1, 1000, NULL, "fast EMA period of the smoothing constant"},
    {"slow", IND_P_INT, 30, 1, 1000, NULL, "slow EMA period of the smoothing constant"},
};

typedef struct {
    IndRing r;
    double sum, kama, prev, fast_sc, slow_sc;
    int conv, period;
    long n;
} Kama;

static size_t kama_size(const IndSpec *s)
{
    return ind_align(sizeof(Kama)) + ind_ring_bytes((unsigned)s->p[0] + 1);
}

static void kama_init(void *st, const IndSpec *s)
{
    Kama *k = st;
    size_t off = ind_align(sizeof(Kama));
    k->conv = s->conv;
    k->period = (int)s->p[0];
    k->fast_sc = 2.0 / (s->p[1] + 1.0);
    k->slow_sc = 2.0 / (s->p[2] + 1.0);
    ind_ring_init(&k->r, &off, (unsigned)k->period + 1);
}

static void kama_update(void *st, const double *in, double *out)
{
    Kama *k = st;
    double x = in[0];
    int p = k->period;
    out[0] = NAN;
    if (k->n == 0) {
        ind_ring_push(st, &k->r, x);
        k->prev = x, k->n = 1;
        return;
    }
    double diff = fabs(k->prev - x);
    if (k->n > p) {
        k->sum -=
            fabs(ind_ring_back(st, &k->r, (unsigned)p) - ind_ring_back(st, &k->r, (unsigned)p - 1));
        k->sum += diff;
    } else {
        k->sum += diff;
    }
    if (k->n >= p) {
        if (k->n == p) k->kama = k->prev; /* seeded with the bar before the first output */
        double roc = x - ind_ring_back(st, &k->r, (unsigned)p - 1), sc;
        if (k->conv == IND_MT5) {
            double er = k->sum != 0.0 ? fabs(roc) / k->sum : 0.0;
            sc = er * (k->fast_sc - k->slow_sc) + k->slow_sc;
            k->kama = k->kama + sc * sc * (x - k->kama);
        } else {
            double er = (k->sum <= roc || IND_IS_ZERO(k->sum)) ? 1.0 : fabs(roc / k->sum);
            sc = (er * (k->fast_sc - k->slow_sc)) + k->slow_sc;
            sc *= sc;
            k->kama = ((x - k->kama) * sc) + k->kama;
        }
        out[0] = k->kama;
    }
    ind_ring_push(st, &k->r, x);
    k->prev = x;
    k->n++;
}

static int kama_lb(const IndSpec *s)
{
    return (int)s->p[0];
}

/* Dedicated batch loop: kama_update's arithmetic with locals. */
static int kama_step_batch(const IndSpec *s, size_t n, const double *const *in, double *const *out)
{
    const double *x = in[0];
    double *y = out[0];
    size_t p = (size_t)s->p[0];
    double fast = 2.0 / (s->p[1] + 1.0), slow = 2.0 / (s->p[2] + 1.0), sum = 0, kama = 0;
    int mt5 = s->conv == IND_MT5;
    if (n) y[0] = NAN;
    for (size_t i = 1; i < n; i++) {
        double diff = fabs(x[i - 1] - x[i]);
        if (i > p) sum -= fabs(x[i - p - 1] - x[i - p]);
        sum += diff;
        if (i < p) {
            y[i] = NAN;
            continue;
        }
        if (i == p) kama = x[i - 1];
        double roc = x[i] - x[i - p], sc;
        if (mt5) {
            double er = sum != 0.0 ? fabs(roc) / sum : 0.0;
            sc = er * (fast - slow) + slow;
            kama = kama + sc * sc * (x[i] - kama);
        } else {
            double er = (sum <= roc || IND_IS_ZERO(sum)) ? 1.0 : fabs(roc / sum);
            sc = (er * (fast - slow)) + slow;
            sc *= sc;
            kama = ((x[i] - kama) * sc) + kama;
        }
        y[i] = kama;
    }
    return 1;
}

static const double kama_mt5_defaults[] = {10, 2, 30}; /* AMA.mq5 */

const IndDef ind_def_kama = {
    .name = "kama",
    .title = "Kaufman Adaptive Moving Average",
    .ninputs = 1,
    .inputs = {"real"},
    .nparams = 3,
    .params = kama_params,
    .noutputs = 1,
    .outputs = {"kama"},
    .has_mt5 = 1,
    .mt5_defaults = kama_mt5_defaults,
    .doc = "ER = |x - x[-period]| / sum of |diffs| over period; sc = (ER*(fast_sc-slow_sc)+"
           "slow_sc)^2; seeded with the price of bar period-1. talib: ER = 1 when the noise sum is "
           "(near) zero or <= the signed change (ta_KAMA.c; fast/slow fixed at 2/30 there). mt5 "
           "(AMA.mq5, shift 0): ER = 0 when the noise is zero, so a flat series stays flat either "
           "way.",
    .lookback_doc = "period",
    .lookback = kama_lb,
    .state_size = kama_size,
    .init = kama_init,
    .update = kama_update,
    .batch = kama_step_batch,
};
