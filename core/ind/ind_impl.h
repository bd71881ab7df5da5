/* Private to core/ind/: the building blocks the indicator files share (rings
 * inside a state block, window extremes, EMA/SMA sub-states) and the registry
 * entries each file defines. States are pointer-free: a ring is an offset
 * into its own state block, so a block can be copied or persisted. */
#ifndef IND_IMPL_H
#define IND_IMPL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "ind.h"
#include "mem.h"

/* TA-Lib's tolerance tests (ta_utility.h), kept because they decide values. */
#define IND_EPSILON 0.00000000000001 /* TA_EPSILON of TA-Lib 0.6 */
#define IND_IS_ZERO(v) (-IND_EPSILON < (v) && (v) < IND_EPSILON)
#define IND_IS_ZERO_OR_NEG(v) ((v) < IND_EPSILON)

static inline size_t ind_align(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

/* A ring of cap doubles stored at byte offset off of the state block. */
typedef struct {
    unsigned off, cap, pos, len;
} IndRing;

static inline size_t ind_ring_bytes(unsigned cap)
{
    return ind_align((size_t)cap * sizeof(double));
}

static inline void ind_ring_init(IndRing *r, size_t *off, unsigned cap)
{
    r->off = (unsigned)*off;
    r->cap = cap;
    r->pos = r->len = 0;
    *off += ind_ring_bytes(cap);
}

static inline double *ind_ring_buf(void *base, const IndRing *r)
{
    /* the block is 16-byte aligned and off a multiple of 16 */
    // cppcheck-suppress invalidPointerCast
    return (double *)((char *)base + r->off);
}

/* Appends x; returns the value it overwrote (cap bars old), NaN while filling. */
static inline double ind_ring_push(void *base, IndRing *r, double x)
{
    double *b = ind_ring_buf(base, r);
    double old = r->len == r->cap ? b[r->pos] : NAN;
    b[r->pos] = x;
    if (++r->pos == r->cap) r->pos = 0;
    if (r->len < r->cap) r->len++;
    return old;
}

/* The i-th most recent value (0 = newest); i < len. */
static inline double ind_ring_back(void *base, const IndRing *r, unsigned i)
{
    unsigned j = r->pos + r->cap - 1 - i;
    if (j >= r->cap) j -= r->cap;
    return ind_ring_buf(base, r)[j];
}

/* The oldest value (after len == cap this is cap-1 bars old). */
static inline double ind_ring_oldest(void *base, const IndRing *r)
{
    return ind_ring_back(base, r, r->len - 1);
}

/* Extreme (max or min) of the last w values of a ring, with its age. Ties go
 * to the most recent bar, as TA-Lib's AROON does. Amortised O(1): a rescan of
 * the window happens only when the extreme leaves it. */
typedef struct {
    double v;
    unsigned age;
    int valid;
} IndExt;

static inline void ind_ext_update(void *base, const IndRing *r, IndExt *e, double x, unsigned w,
                                  int want_max)
{
    e->age++;
    if (!e->valid || (want_max ? x >= e->v : x <= e->v)) {
        e->v = x, e->age = 0, e->valid = 1;
        return;
    }
    if (e->age < w) return;
    unsigned n = r->len < w ? r->len : w;
    e->v = ind_ring_back(base, r, n - 1);
    e->age = n - 1;
    for (unsigned i = n - 1; i-- > 0;) {
        double y = ind_ring_back(base, r, i);
        if (want_max ? y >= e->v : y <= e->v) e->v = y, e->age = i;
    }
}

/* TA-Lib EMA: seeded with the SMA of the first period values; NaN before. */
typedef struct {
    double k, sum, v;
    int period, n;
} IndEmaT;

static inline void ind_emat_init(IndEmaT *e, int period)
{
    e->k = 2.0 / ((double)(period + 1));
    e->sum = e->v = 0;
    e->period = period;
    e->n = 0;
}

static inline double ind_emat_step(IndEmaT *e, double x)
{
    if (e->n < e->period) {
        e->sum += x;
        if (++e->n < e->period) return NAN;
        e->v = e->sum / e->period;
        return e->v;
    }
    e->v = ((x - e->v) * e->k) + e->v;
    return e->v;
}

/* MetaTrader 5 EMA (MovingAverages.mqh): seeded with the first price. */
typedef struct {
    double sf, v;
    int started;
} IndEmaM;

static inline void ind_emam_init(IndEmaM *e, int period)
{
    e->sf = 2.0 / (1.0 + period);
    e->v = 0;
    e->started = 0;
}

static inline double ind_emam_step(IndEmaM *e, double x)
{
    if (!e->started)
        e->v = x, e->started = 1;
    else
        e->v = x * e->sf + e->v * (1.0 - e->sf);
    return e->v;
}

/* TA-Lib SMA (rolling sum; the trailing value is removed after the output is
 * taken, as ta_SMA.c does). Ring of period values. NaN before period values. */
typedef struct {
    IndRing r;
    double sum;
    int period;
} IndSmaT;

static inline void ind_smat_init(IndSmaT *s, size_t *off, int period)
{
    ind_ring_init(&s->r, off, (unsigned)period);
    s->sum = 0;
    s->period = period;
}

static inline double ind_smat_step(void *base, IndSmaT *s, double x)
{
    s->sum += x;
    ind_ring_push(base, &s->r, x);
    if (s->r.len < s->r.cap) return NAN;
    double out = s->sum / s->period;
    s->sum -= ind_ring_oldest(base, &s->r);
    return out;
}

/* MT5 SMA (SimpleMAOnBuffer): first value sum/period, then
 * prev + (x - x[-period]) / period. */
typedef struct {
    IndRing r;
    double sum, v;
    int period;
} IndSmaM;

static inline void ind_smam_init(IndSmaM *s, size_t *off, int period)
{
    ind_ring_init(&s->r, off, (unsigned)period);
    s->sum = s->v = 0;
    s->period = period;
}

static inline double ind_smam_step(void *base, IndSmaM *s, double x)
{
    if (s->r.len < s->r.cap) {
        s->sum += x;
        ind_ring_push(base, &s->r, x);
        if (s->r.len < s->r.cap) return NAN;
        s->v = s->sum / s->period;
        return s->v;
    }
    double old = ind_ring_push(base, &s->r, x);
    s->v = s->v + (x - old) / s->period;
    return s->v;
}

/* Counts consecutive equal values, so that a flat window of p values can be
 * given its exact result instead of rounding noise (TA-Lib turns a constant
 * series into +-66.67 in CCI and a 1e-6 band width in BBANDS). */
typedef struct {
    double last;
    long run;
} IndFlat;

/* Pushes x; returns 1 when the last p values were all equal. */
static inline int ind_flat_push(IndFlat *f, double x, long p)
{
    f->run = (f->run > 0 && x == f->last) ? f->run + 1 : 1;
    f->last = x;
    return f->run >= p;
}

/* Batch loops: the highest (want_max) or lowest of x[i-w+1..i], tracked by
 * index and value as TA-Lib does (rescan only when the extreme leaves the
 * window; ties go to the most recent). Call for every i >= w-1 in order,
 * with *idx starting at SIZE_MAX. */
typedef struct {
    size_t idx;
    double v;
} IndWin;

static inline double ind_win_ext(const double *x, size_t i, size_t w, IndWin *e, int want_max)
{
    size_t trail = i + 1 - w;
    double xi = x[i];
    if (e->idx - trail >= w) { /* left the window, or SIZE_MAX at the start (wraps) */
        size_t b = trail;
        double v = x[trail];
        for (size_t j = trail + 1; j <= i; j++) {
            double y = x[j];
            if (want_max ? y >= v : y <= v) b = j, v = y;
        }
        e->idx = b, e->v = v;
    } else if (want_max ? xi >= e->v : xi <= e->v) {
        e->idx = i, e->v = xi;
    }
    return e->v;
}

/* TA-Lib's TRUE_RANGE macro, in its order of comparisons. */
static inline double ind_tr_talib(double h, double l, double pc)
{
    double out = h - l, t = fabs(pc - h);
    if (t > out) out = t;
    t = fabs(pc - l);
    if (t > out) out = t;
    return out;
}

/* ATR.mq5: max(high, prev close) - min(low, prev close). */
static inline double ind_tr_mt5(double h, double l, double pc)
{
    return (h > pc ? h : pc) - (l < pc ? l : pc);
}

/* The batch loop over a step function, instantiated in each indicator's file
 * (IND_STEP_BATCH) so the step is inlined into the loop. Returns 1, or -1
 * when the state block cannot be had (the caller reports it). */
static inline int ind_step_batch(const IndSpec *s, size_t n, const double *const *in,
                                 double *const *out, int ni, int no,
                                 void (*update)(void *, const double *, double *))
{
    void *st = mem_alloc(ind_state_size(s));
    if (!st) return -1;
    ind_state_init(s, st);
    double x[IND_MAX_INPUTS], y[IND_MAX_OUTPUTS];
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < ni; k++)
            x[k] = in[k][i];
        update(st, x, y);
        for (int k = 0; k < no; k++)
            out[k][i] = y[k];
    }
    mem_free(st);
    return 1;
}

#define IND_STEP_BATCH(fname, update, ni, no)                                                      \
    static int fname(const IndSpec *s, size_t n, const double *const *in, double *const *out)      \
    {                                                                                              \
        return ind_step_batch(s, n, in, out, ni, no, update);                                      \
    }

/* Registry entries, one per indicator, defined in the indicator files. */
// clang-format off
#define IND_DEFS(X)                                                                      \
    X(sma) X(ema) X(wma) X(dema) X(tema) X(trima) X(kama) X(rsi) X(macd) X(atr) X(natr) \
    X(trange) X(bbands) X(stddev) X(stoch) X(stochf) X(stochrsi) X(adx) X(plus_di)       \
    X(minus_di) X(cci) X(mfi) X(obv) X(roc) X(mom) X(willr) X(aroon) X(psar) X(vwap)     \
    X(donchian) X(keltner) X(ichimoku) X(linreg)
// clang-format on
#define IND_DECLARE(name) extern const IndDef ind_def_##name;
IND_DEFS(IND_DECLARE)
#undef IND_DECLARE

/* Common parameter blocks. */
#define IND_PERIOD(def, min)                                                                       \
    {                                                                                              \
        "period", IND_P_INT, def, min, 100000, NULL, "bars in the window"                          \
    }

#endif
