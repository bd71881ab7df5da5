/* Oscillators: RSI, MACD, STOCH, STOCHF, STOCHRSI, CCI, MFI, ROC, MOM, WILLR,
 * AROON, in TA-Lib and MetaTrader 5 form. One step function per indicator
 * serves streaming and batch alike. No I/O, no allocation. */
#include <string.h>

#include "ind_impl.h"

/* ---- RSI ---- */

static const char *const rsi_smoothing[] = {"wilder", "sma", NULL};
static const IndParam rsi_params[] = {
    IND_PERIOD(14, 2),
    {"smoothing", IND_P_ENUM, 0, 0, 1, rsi_smoothing,
     "wilder (default) or sma: simple rolling means of gains and losses, as the seed system did"},
};

typedef struct {
    IndRing r; /* sma smoothing: the last period differences */
    double prev, gain, loss;
    int conv, period, sma;
    long n;
} Rsi;

static size_t rsi_size_p(int period)
{
    return ind_align(sizeof(Rsi)) + ind_ring_bytes((unsigned)period);
}

static size_t rsi_size(const IndSpec *s)
{
    return rsi_size_p((int)s->p[0]);
}

static void rsi_setup(Rsi *r, size_t *off, int conv, int period, int sma)
{
    r->conv = conv, r->period = period, r->sma = sma;
    ind_ring_init(&r->r, off, (unsigned)period);
}

static void rsi_init(void *st, const IndSpec *s)
{
    size_t off = ind_align(sizeof(Rsi));
    rsi_setup(st, &off, s->conv, (int)s->p[0], s->p[1] == 1);
}

/* 100 - 100/(1+g/l), with the flat cases MT5 uses: no loss -> 100, neither -> 50. */
static double rsi_ratio(double g, double l)
{
    if (l != 0.0) return 100.0 - 100.0 / (1 + g / l);
    return g != 0.0 ? 100.0 : 50.0;
}

/* base is the block holding r's ring (r itself for rsi, the parent otherwise). */
static double rsi_step(void *base, Rsi *r, double x)
{
    long n = r->n++;
    int p = r->period;
    if (n == 0) {
        r->prev = x;
        return NAN;
    }
    double d = x - r->prev;
    r->prev = x;
    if (r->sma) { /* rolling means of the last period gains and losses */
        double old = ind_ring_push(base, &r->r, d);
        if (n > p) {
            if (old > 0)
                r->gain -= old;
            else
                r->loss += old;
        }
        if (d > 0)
            r->gain += d;
        else
            r->loss -= d;
        if (n < p) return NAN;
        double g = r->gain / p, l = r->loss / p;
        if (g < 0) g = 0; /* rounding residue of the rolling sums */
        if (l < 0) l = 0;
        return rsi_ratio(g, l);
    }
    if (r->conv == IND_MT5) { /* RSI.mq5 */
        double up = d > 0.0 ? d : 0.0, dn = d < 0.0 ? -d : 0.0;
        if (n < p) {
            r->gain += up, r->loss += dn;
            return NAN;
        }
        if (n == p) {
            r->gain += up, r->loss += dn;
            r->gain = r->gain / p, r->loss = r->loss / p;
        } else {
            r->gain = (r->gain * (p - 1) + up) / p;
            r->loss = (r->loss * (p - 1) + dn) / p;
        }
        return rsi_ratio(r->gain, r->loss);
    }
    /* ta_RSI.c */
    if (n > p) r->loss *= (p - 1), r->gain *= (p - 1);
    if (d < 0)
        r->loss -= d;
    else
        r->gain += d;
    if (n < p) return NAN;
    r->loss /= p, r->gain /= p;
    double t = r->gain + r->loss;
    return !IND_IS_ZERO(t) ? 100.0 * (r->gain / t) : 0.0;
}

static void rsi_update(void *st, const double *in, double *out)
{
    out[0] = rsi_step(st, st, in[0]);
}

static void fill_nan(double *y, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        y[i] = NAN;
}

/* Dedicated batch loop for Wilder smoothing: locals, same arithmetic as
 * rsi_step. The sma smoothing declines to the step loop. */
static int rsi_batch(const IndSpec *s, size_t n, const double *const *in, double *const *out)
{
    const double *x = in[0];
    double *y = out[0];
    size_t p = (size_t)s->p[0];
    if (s->p[1] == 1) return ind_step_batch(s, n, in, out, 1, 1, rsi_update);
    fill_nan(y, 0, n < p ? n : p);
    if (n <= p) return 1;
    double g = 0, l = 0, pd = (double)p, pm = (double)(p - 1);
    if (s->conv == IND_MT5) {
        for (size_t i = 1; i <= p; i++) {
            double d = x[i] - x[i - 1];
            g += d > 0.0 ? d : 0.0;
            l += d < 0.0 ? -d : 0.0;
        }
        g = g / pd, l = l / pd;
        y[p] = l != 0.0 ? 100.0 - 100.0 / (1 + g / l) : g != 0.0 ? 100.0 : 50.0;
        for (size_t i = p + 1; i < n; i++) {
            double d = x[i] - x[i - 1];
            g = (g * pm + (d > 0.0 ? d : 0.0)) / pd;
            l = (l * pm + (d < 0.0 ? -d : 0.0)) / pd;
            y[i] = l != 0.0 ? 100.0 - 100.0 / (1 + g / l) : g != 0.0 ? 100.0 : 50.0;
        }
        return 1;
    }
    for (size_t i = 1; i <= p; i++) {
        double d = x[i] - x[i - 1];
        if (d < 0)
            l -= d;
        else
            g += d;
    }
    l /= pd, g /= pd;
    for (size_t i = p;;) {
        double t = g + l;
        y[i] = !IND_IS_ZERO(t) ? 100.0 * (g / t) : 0.0;
        if (++i >= n) break;
        double d = x[i] - x[i - 1];
        l *= pm, g *= pm;
        if (d < 0)
            l -= d;
        else
            g += d;
        l /= pd, g /= pd;
    }
    return 1;
}

static int lb_p(const IndSpec *s)
{
    return (int)s->p[0];
}

static int lb_p1(const IndSpec *s)
{
    return (int)s->p[0] - 1;
}

const IndDef ind_def_rsi = {
    .name = "rsi",
    .title = "Relative Strength Index",
    .ninputs = 1,
    .inputs = {"real"},
    .nparams = 2,
    .params = rsi_params,
    .noutputs = 1,
    .outputs = {"rsi"},
    .has_mt5 = 1,
    .doc = "Wilder-smoothed average gain and loss seeded with their simple means over the first "
           "period differences. talib: 100*g/(g+l), and 0 when g+l is (near) zero, so a "
           "constant series gives 0 (ta_RSI.c). mt5 (RSI.mq5): 100-100/(1+g/l), 100 when l = 0, "
           "50 when both are 0, so a constant series gives 50. smoothing=\"sma\" (either "
           "convention): simple rolling means of the last period gains and losses with the mt5 "
           "flat rules.",
    .lookback_doc = "period",
    .lookback = lb_p,
    .state_size = rsi_size,
    .init = rsi_init,
    .update = rsi_update,
    .batch = rsi_batch,
};

/* ---- MACD ---- */

static const IndParam macd_params[] = {
    {"fast", IND_P_INT, 12, 2, 100000, NULL, "fast EMA period"},
    {"slow", IND_P_INT, 26, 2, 100000, NULL, "slow EMA period"},
    {"signal", IND_P_INT, 9, 1, 100000, NULL, "signal line period (EMA in talib, SMA in mt5)"},
};

typedef struct {
    IndEmaT tf, ts, tsig;
    IndEmaM mf, ms;
    IndSmaM msig;
    int conv, fast, slow, signal;
    long n;
} Macd;

static void macd_periods(const IndSpec *s, int *fast, int *slow)
{
    *fast = (int)s->p[0], *slow = (int)s->p[1];
    if (*slow < *fast) { /* TA-Lib swaps them */
        int t = *slow;
        *slow = *fast, *fast = t;
    }
}

static int macd_lb(const IndSpec *s)
{
    int fast, slow;
    macd_periods(s, &fast, &slow);
    return slow - 1 + (int)s->p[2] - 1;
}

static size_t macd_size(const IndSpec *s)
{
    return ind_align(sizeof(Macd)) + ind_ring_bytes((unsigned)s->p[2]);
}

static void macd_init(void *st, const IndSpec *s)
{
    Macd *m = st;
    size_t off = ind_align(sizeof(Macd));
    m->conv = s->conv;
    macd_periods(s, &m->fast, &m->slow);
    m->signal = (int)s->p[2];
    ind_emat_init(&m->tf, m->fast);
    ind_emat_init(&m->ts, m->slow);
    ind_emat_init(&m->tsig, m->signal);
    ind_emam_init(&m->mf, m->fast);
    ind_emam_init(&m->ms, m->slow);
    ind_smam_init(&m->msig, &off, m->signal);
}

static void macd_update(void *st, const double *in, double *out)
{
    Macd *m = st;
    double x = in[0], line, sig;
    long n = m->n++;
    out[0] = out[1] = out[2] = NAN;
    if (m->conv == IND_MT5) { /* MACD.mq5: EMAs from bar 0, SMA signal from bar 0 */
        line = ind_emam_step(&m->mf, x) - ind_emam_step(&m->ms, x);
        sig = ind_smam_step(st, &m->msig, line);
        if (n < m->slow - 1 + m->signal - 1) return;
    } else { /* ta_MACD.c: the fast EMA's seed window ends where the slow one's does */
        double f = n >= m->slow - m->fast ? ind_emat_step(&m->tf, x) : NAN;
        double sl = ind_emat_step(&m->ts, x);
        if (isnan(sl)) return;
        line = f - sl;
        sig = ind_emat_step(&m->tsig, line);
        if (isnan(sig)) return;
    }
    out[0] = line;
    out[1] = sig;
    out[2] = line - sig;
}

/* Dedicated batch loop: the three averages as locals, same arithmetic as
 * macd_update (ind_emat_step / ind_emam_step / ind_smam_step). */
static int macd_batch(const IndSpec *s, size_t n, const double *const *in, double *const *out)
{
    const double *x = in[0];
    double *ym = out[0], *ys = out[1], *yh = out[2];
    int fi, si;
    macd_periods(s, &fi, &si);
    size_t f = (size_t)fi, sl = (size_t)si, g = (size_t)s->p[2], lb = sl - 1 + g - 1;
    size_t pre = n < lb ? n : lb;
    fill_nan(ym, 0, pre), fill_nan(ys, 0, pre), fill_nan(yh, 0, pre);
    if (n <= lb) return 1;
    if (s->conv == IND_MT5) {
        double kf = 2.0 / (1.0 + (double)f), ks = 2.0 / (1.0 + (double)sl), cf = 1.0 - kf,
               cs = 1.0 - ks;
        double ef = x[0], es = x[0], sum = 0, sig = 0, gd = (double)g;
        /* the signal SMA needs the last g macd values: they are recomputed
         * from ym, which holds the line from bar 0 during this loop */
        for (size_t i = 0; i < n; i++) {
            if (i) ef = x[i] * kf + ef * cf, es = x[i] * ks + es * cs;
            double m = ef - es;
            ym[i] = m;
            if (i + 1 < g) {
                sum += m;
            } else if (i + 1 == g) {
                sig = (sum + m) / gd;
            } else {
                sig = sig + (m - ym[i - g]) / gd;
            }
            if (i >= lb) ys[i] = sig, yh[i] = m - sig;
        }
        fill_nan(ym, 0, lb);
        return 1;
    }
    double kf = 2.0 / ((double)(f + 1)), ks = 2.0 / ((double)(sl + 1)),
           kg = 2.0 / ((double)(g + 1));
    double ef = 0, es = 0, sig = 0;
    for (size_t i = sl - f; i < sl; i++)
        ef += x[i];
    for (size_t i = 0; i < sl; i++)
        es += x[i];
    ef /= (double)f, es /= (double)sl;
    /* the first g macd values seed the signal */
    double sum = ef - es, m = 0;
    for (size_t i = sl; i < sl - 1 + g; i++) {
        ef = ((x[i] - ef) * kf) + ef;
        es = ((x[i] - es) * ks) + es;
        m = ef - es;
        sum += m;
    }
    if (g == 1) m = sum;
    sig = sum / (double)g;
    ym[lb] = m, ys[lb] = sig, yh[lb] = m - sig;
    for (size_t i = lb + 1; i < n; i++) {
        ef = ((x[i] - ef) * kf) + ef;
        es = ((x[i] - es) * ks) + es;
        m = ef - es;
        sig = ((m - sig) * kg) + sig;
        ym[i] = m, ys[i] = sig, yh[i] = m - sig;
    }
    return 1;
}

const IndDef ind_def_macd = {
    .name = "macd",
    .title = "Moving Average Convergence/Divergence",
    .ninputs = 1,
    .inputs = {"real"},
    .nparams = 3,
    .params = macd_params,
    .noutputs = 3,
    .outputs = {"macd", "signal", "hist"},
    .has_mt5 = 1,
    .doc = "macd = EMA(fast) - EMA(slow), hist = macd - signal. talib: TA-Lib EMAs, the fast one "
           "seeded over the same last bars as the slow one, signal = EMA(signal) of macd; fast "
           "and slow are swapped when slow < fast. mt5 (MACD.mq5): EMAs seeded with the first "
           "price, signal = SMA(signal) of macd; MT5 has no histogram buffer, hist is "
           "computed the same way. All three outputs start at the lookback. A constant series "
           "gives 0, 0, 0.",
    .lookback_doc = "max(fast,slow)-1 + signal-1",
    .lookback = macd_lb,
    .state_size = macd_size,
    .init = macd_init,
    .update = macd_update,
    .batch = macd_batch,
};

/* ---- Stochastics ---- */

/* Fast %K core: highest high and lowest low of the last k bars. */
typedef struct {
    IndRing h, l;
    IndExt hi, lo;
    int k;
} FastK;

static size_t fastk_bytes(int k)
{
    return 2 * ind_ring_bytes((unsigned)k);
}

static void fastk_init(FastK *f, size_t *off, int k)
{
    f->k = k;
    ind_ring_init(&f->h, off, (unsigned)k);
    ind_ring_init(&f->l, off, (unsigned)k);
}

/* Returns 1 once k bars are in, with the window's highest and lowest. */
static int fastk_push(void *base, FastK *f, double h, double l, double *hh, double *ll)
{
    ind_ring_push(base, &f->h, h);
    ind_ring_push(base, &f->l, l);
    ind_ext_update(base, &f->h, &f->hi, h, (unsigned)f->k, 1);
    ind_ext_update(base, &f->l, &f->lo, l, (unsigned)f->k, 0);
    *hh = f->hi.v, *ll = f->lo.v;
    return f->h.len == f->h.cap;
}

/* ta_STOCH.c: (c - ll) / ((hh - ll)/100), 0 when hh == ll. */
static double fastk_talib(double hh, double ll, double c)
{
    double diff = (hh - ll) / 100.0;
    return diff != 0.0 ? (c - ll) / diff : 0.0;
}

static const IndParam stoch_params[] = {
    {"fastk", IND_P_INT, 5, 1, 100000, NULL, "%K window (mt5: K period)"},
    {"slowk", IND_P_INT, 3, 1, 100000, NULL, "%K smoothing, SMA (mt5: slowing)"},
    {"slowd", IND_P_INT, 3, 1, 100000, NULL, "%D period, SMA (mt5: D period)"},
};

typedef struct {
    FastK fk;
    IndSmaT sk, sd;
    IndRing num, den, main; /* mt5: the slowing sums and the %D window */
    int conv, slowk, slowd;
} Stoch;

static size_t stoch_size(const IndSpec *s)
{
    unsigned sk = (unsigned)s->p[1], sd = (unsigned)s->p[2];
    return ind_align(sizeof(Stoch)) + fastk_bytes((int)s->p[0]) + 2 * ind_ring_bytes(sk) +
           ind_ring_bytes(sd) + ind_ring_bytes(sk) + ind_ring_bytes(sd);
}

static void stoch_init(void *st, const IndSpec *s)
{
    Stoch *k = st;
    size_t off = ind_align(sizeof(Stoch));
    k->conv = s->conv;
    k->slowk = (int)s->p[1], k->slowd = (int)s->p[2];
    fastk_init(&k->fk, &off, (int)s->p[0]);
    ind_ring_init(&k->num, &off, (unsigned)k->slowk);
    ind_ring_init(&k->den, &off, (unsigned)k->slowk);
    ind_ring_init(&k->main, &off, (unsigned)k->slowd);
    ind_smat_init(&k->sk, &off, k->slowk);
    ind_smat_init(&k->sd, &off, k->slowd);
}

static void stoch_update(void *st, const double *in, double *out)
{
    Stoch *k = st;
    double hh, ll, c = in[2];
    out[0] = out[1] = NAN;
    if (!fastk_push(st, &k->fk, in[0], in[1], &hh, &ll)) return;
    if (k->conv == IND_MT5) { /* Stochastic.mq5, STO_LOWHIGH, MODE_SMA */
        ind_ring_push(st, &k->num, c - ll);
        ind_ring_push(st, &k->den, hh - ll);
        if (k->num.len < k->num.cap) return;
        double sumlow = 0.0, sumhigh = 0.0;
        for (unsigned i = k->num.len; i-- > 0;) {
            sumlow += ind_ring_back(st, &k->num, i);
            sumhigh += ind_ring_back(st, &k->den, i);
        }
        double m = sumhigh == 0.0 ? 100.0 : sumlow / sumhigh * 100;
        ind_ring_push(st, &k->main, m);
        if (k->main.len < k->main.cap) return;
        double sum = 0.0;
        for (unsigned i = 0; i < k->main.len; i++)
            sum += ind_ring_back(st, &k->main, i);
        out[0] = m;
        out[1] = sum / k->slowd;
        return;
    }
    double sk = ind_smat_step(st, &k->sk, fastk_talib(hh, ll, c));
    if (isnan(sk)) return;
    double sd = ind_smat_step(st, &k->sd, sk);
    if (isnan(sd)) return;
    out[0] = sk, out[1] = sd;
}

/* Fast %K of bars fk-1..n-1 into y (TA-Lib's expression); extremes tracked
 * by index over the inputs. */
static void fastk_pass(const double *h, const double *l, const double *c, size_t n, size_t fk,
                       double *y)
{
    IndWin hi = {SIZE_MAX, 0}, lo = {SIZE_MAX, 0};
    for (size_t i = fk - 1; i < n; i++) {
        double hh = ind_win_ext(h, i, fk, &hi, 1), ll = ind_win_ext(l, i, fk, &lo, 0);
        double diff = (hh - ll) / 100.0;
        y[i] = diff != 0.0 ? (c[i] - ll) / diff : 0.0;
    }
}

/* y[i] = SMA(p) of x over bars from..i, for i >= from+p-1, as ind_smat_step
 * computes it (trailing value removed after the output). x may equal y only
 * when reading trails writing, which it does not here: x != y. */
static void sma_pass(const double *x, size_t from, size_t n, size_t p, double *y)
{
    double sum = 0, pd = (double)p;
    for (size_t i = from; i < n; i++) {
        sum += x[i];
        if (i + 1 < from + p) continue;
        y[i] = sum / pd;
        sum -= x[i + 1 - p];
    }
}

/* Dedicated talib batch loop, in passes over the caller's buffers. */
static int stoch_batch(const IndSpec *s, size_t n, const double *const *in, double *const *out)
{
    if (s->conv == IND_MT5) return ind_step_batch(s, n, in, out, 3, 2, stoch_update);
    double *yk = out[0], *yd = out[1];
    size_t fk = (size_t)s->p[0], sk = (size_t)s->p[1], sd = (size_t)s->p[2];
    size_t lb = fk - 1 + sk - 1 + sd - 1;
    if (n > lb) {
        fastk_pass(in[0], in[1], in[2], n, fk, yd);
        sma_pass(yd, fk - 1, n, sk, yk);
        sma_pass(yk, fk - 1 + sk - 1, n, sd, yd);
    }
    fill_nan(yk, 0, n < lb ? n : lb);
    fill_nan(yd, 0, n < lb ? n : lb);
    return 1;
}

static int stoch_lb(const IndSpec *s)
{
    return (int)s->p[0] - 1 + (int)s->p[1] - 1 + (int)s->p[2] - 1;
}

const IndDef ind_def_stoch = {
    .name = "stoch",
    .title = "Stochastic (slow)",
    .ninputs = 3,
    .inputs = {"high", "low", "close"},
    .nparams = 3,
    .params = stoch_params,
    .noutputs = 2,
    .outputs = {"k", "d"},
    .has_mt5 = 1,
    .doc = "talib: fast %K = (c-ll)/((hh-ll)/100), 0 when hh = ll; slow %K = SMA(slowk) of it; "
           "%D = SMA(slowd) of slow %K (moving-average types other than SMA are not offered). "
           "mt5 (Stochastic.mq5, low/high, SMA): %K = sum(c-ll)/sum(hh-ll)*100 over slowk bars "
           "(a ratio of sums), 100 when the range sum is 0; %D = SMA(slowd) of %K. A constant "
           "series gives 0 (talib) or 100 (mt5).",
    .lookback_doc = "fastk-1 + slowk-1 + slowd-1",
    .lookback = stoch_lb,
    .state_size = stoch_size,
    .init = stoch_init,
    .update = stoch_update,
    .batch = stoch_batch,
};

/* STOCHF: fast %K and its SMA. Also the tail of STOCHRSI. */
static const IndParam stochf_params[] = {
    {"fastk", IND_P_INT, 5, 1, 100000, NULL, "%K window"},
    {"fastd", IND_P_INT, 3, 1, 100000, NULL, "%D period, SMA"},
};

typedef struct {
    FastK fk;
    IndSmaT fd;
} StochF;

static size_t stochf_bytes(int fastk, int fastd)
{
    return fastk_bytes(fastk) + ind_ring_bytes((unsigned)fastd);
}

static void stochf_setup(StochF *f, size_t *off, int fastk, int fastd)
{
    fastk_init(&f->fk, off, fastk);
    ind_smat_init(&f->fd, off, fastd);
}

static void stochf_step(void *base, StochF *f, double h, double l, double c, double *out)
{
    double hh, ll;
    out[0] = out[1] = NAN;
    if (!fastk_push(base, &f->fk, h, l, &hh, &ll)) return;
    double k = fastk_talib(hh, ll, c), d = ind_smat_step(base, &f->fd, k);
    if (isnan(d)) return;
    out[0] = k, out[1] = d;
}

static size_t stochf_size(const IndSpec *s)
{
    return ind_align(sizeof(StochF)) + stochf_bytes((int)s->p[0], (int)s->p[1]);
}

static void stochf_init(void *st, const IndSpec *s)
{
    size_t off = ind_align(sizeof(StochF));
    stochf_setup(st, &off, (int)s->p[0], (int)s->p[1]);
}

static void stochf_update(void *st, const double *in, double *out)
{
    stochf_step(st, st, in[0], in[1], in[2], out);
}

static int stochf_batch(const IndSpec *s, size_t n, const double *const *in, double *const *out)
{
    double *yk = out[0], *yd = out[1];
    size_t fk = (size_t)s->p[0], fd = (size_t)s->p[1], lb = fk - 1 + fd - 1;
    if (n > lb) {
        fastk_pass(in[0], in[1], in[2], n, fk, yk);
        sma_pass(yk, fk - 1, n, fd, yd);
    }
    fill_nan(yk, 0, n < lb ? n : lb);
    fill_nan(yd, 0, n < lb ? n : lb);
    return 1;
}

static int stochf_lb(const IndSpec *s)
{
    return (int)s->p[0] - 1 + (int)s->p[1] - 1;
}

const IndDef ind_def_stochf = {
    .name = "stochf",
    .title = "Stochastic Fast",
    .ninputs = 3,
    .inputs = {"high", "low", "close"},
    .nparams = 2,
    .params = stochf_params,
    .noutputs = 2,
    .outputs = {"k", "d"},
    .has_mt5 = 0,
    .doc = "Fast %K = (c-ll)/((hh-ll)/100), 0 when hh = ll; %D = SMA(fastd) of %K. MT5 ships no "
           "separate fast stochastic: mt5 = talib (use stoch with slowk = 1 in mt5 for MT5's "
           "Stochastic without slowing).",
    .lookback_doc = "fastk-1 + fastd-1",
    .lookback = stochf_lb,
    .state_size = stochf_size,
    .init = stochf_init,
    .update = stochf_update,
    .batch = stochf_batch,
};

/* STOCHRSI: STOCHF over RSI values (high = low = close = rsi). */
static const IndParam stochrsi_params[] = {
    IND_PERIOD(14, 2),
    {"fastk", IND_P_INT, 5, 1, 100000, NULL, "%K window over RSI"},
    {"fastd", IND_P_INT, 3, 1, 100000, NULL, "%D period, SMA"},
};

typedef struct {
    Rsi rsi;
    StochF sf;
} StochRsi;

static size_t stochrsi_size(const IndSpec *s)
{
    return ind_align(sizeof(StochRsi)) + rsi_size_p((int)s->p[0]) +
           stochf_bytes((int)s->p[1], (int)s->p[2]);
}

static void stochrsi_init(void *st, const IndSpec *s)
{
    StochRsi *r = st;
    size_t off = ind_align(sizeof(StochRsi));
    rsi_setup(&r->rsi, &off, IND_TALIB, (int)s->p[0], 0);
    stochf_setup(&r->sf, &off, (int)s->p[1], (int)s->p[2]);
}

static void stochrsi_update(void *st, const double *in, double *out)
{
    StochRsi *r = st;
    double v = rsi_step(st, &r->rsi, in[0]);
    if (isnan(v)) {
        out[0] = out[1] = NAN;
        return;
    }
    stochf_step(st, &r->sf, v, v, v, out);
}

static int stochrsi_lb(const IndSpec *s)
{
    return (int)s->p[0] + (int)s->p[1] - 1 + (int)s->p[2] - 1;
}

/* Dedicated batch loop in passes over the caller's buffers: RSI into out[1],
 * fast %K of it into out[0], %D into out[1]; the step functions' arithmetic. */
static int stochrsi_step_batch(const IndSpec *s, size_t n, const double *const *in,
                               double *const *out)
{
    IndSpec r = *s;
    r.def = &ind_def_rsi;
    r.conv = IND_TALIB;
    r.p[1] = 0; /* wilder */
    size_t p = (size_t)s->p[0], fk = (size_t)s->p[1], fd = (size_t)s->p[2];
    size_t lb = p + fk - 1 + fd - 1;
    double *yk = out[0], *yd = out[1];
    if (n > lb) {
        const double *rin[1] = {in[0]};
        double *rout[1] = {yd};
        rsi_batch(&r, n, rin, rout);
        fastk_pass(yd + p, yd + p, yd + p, n - p, fk, yk + p);
        sma_pass(yk + p, fk - 1, n - p, fd, yd + p);
    }
    fill_nan(yk, 0, n < lb ? n : lb);
    fill_nan(yd, 0, n < lb ? n : lb);
    return 1;
}

const IndDef ind_def_stochrsi = {
    .name = "stochrsi",
    .title = "Stochastic RSI",
    .ninputs = 1,
    .inputs = {"real"},
    .nparams = 3,
    .params = stochrsi_params,
    .noutputs = 2,
    .outputs = {"k", "d"},
    .has_mt5 = 0,
    .doc = "STOCHF(fastk, fastd) applied to RSI(period) (TA-Lib's RSI). A window where RSI is "
           "flat gives %K = 0. MT5 ships no Stochastic RSI: mt5 = talib.",
    .lookback_doc = "period + fastk-1 + fastd-1",
    .lookback = stochrsi_lb,
    .state_size = stochrsi_size,
    .init = stochrsi_init,
    .update = stochrsi_update,
    .batch = stochrsi_step_batch,
};

/* ---- CCI ---- */

static const IndParam cci_params[] = {IND_PERIOD(14, 2)};

typedef struct {
    IndRing r;
    IndFlat flat;
    int conv, period;
} Cci;

static size_t cci_size(const IndSpec *s)
{
    return ind_align(sizeof(Cci)) + ind_ring_bytes((unsigned)s->p[0]);
}

static void cci_init(void *st, const IndSpec *s)
{
    Cci *c = st;
    size_t off = ind_align(sizeof(Cci));
    c->conv = s->conv, c->period = (int)s->p[0];
    ind_ring_init(&c->r, &off, (unsigned)c->period);
}

/* ta_CCI.c's formula over the window b, summed in slot order as TA-Lib's
 * circular buffer is. */
static inline double cci_talib(const double *b, int p, double tp)
{
    double avg = 0.0, dev = 0.0;
    for (int i = 0; i < p; i++)
        avg += b[i];
    avg /= p;
    for (int i = 0; i < p; i++)
        dev += fabs(b[i] - avg);
    double t = tp - avg;
    return (t != 0.0 && dev != 0.0) ? t / (0.015 * (dev / p)) : 0.0;
}

static void cci_update(void *st, const double *in, double *out)
{
    Cci *c = st;
    double tp = (in[0] + in[1] + in[2]) / 3;
    int p = c->period;
    int flat = ind_flat_push(&c->flat, tp, c->period);
    ind_ring_push(st, &c->r, tp);
    out[0] = NAN;
    if (c->r.len < c->r.cap) return;
    if (flat) { /* exactly 0, where summing rounding would give +-66.67 */
        out[0] = 0.0;
        return;
    }
    const double *b = ind_ring_buf(st, &c->r);
    if (c->conv == IND_MT5) { /* CCI.mq5: newest first, 0.015/period factor */
        double ma = 0.0, dev = 0.0;
        for (int i = 0; i < p; i++)
            ma += ind_ring_back(st, &c->r, (unsigned)i);
        ma /= p;
        for (int i = 0; i < p; i++)
            dev += fabs(ind_ring_back(st, &c->r, (unsigned)i) - ma);
        double d = dev * (0.015 / p), m = tp - ma;
        out[0] = d != 0.0 ? m / d : 0.0;
        return;
    }
    out[0] = cci_talib(b, p, tp);
}

/* Dedicated talib batch loop: the same slot-ordered window in a scratch
 * buffer allocated once, the same sums. */
static int cci_step_batch(const IndSpec *s, size_t n, const double *const *in, double *const *out)
{
    if (s->conv == IND_MT5) return ind_step_batch(s, n, in, out, 3, 1, cci_update);
    const double *h = in[0], *l = in[1], *c = in[2];
    double *y = out[0];
    int p = (int)s->p[0];
    double *b = mem_alloc((size_t)p * sizeof *b);
    if (!b) return -1;
    IndFlat flat = {0, 0};
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        double tp = (h[i] + l[i] + c[i]) / 3;
        int f = ind_flat_push(&flat, tp, p);
        b[k] = tp;
        if (++k == p) k = 0;
        if (i + 1 < (size_t)p)
            y[i] = NAN;
        else
            y[i] = f ? 0.0 : cci_talib(b, p, tp);
    }
    mem_free(b);
    return 1;
}

const IndDef ind_def_cci = {
    .name = "cci",
    .title = "Commodity Channel Index",
    .ninputs = 3,
    .inputs = {"high", "low", "close"},
    .nparams = 1,
    .params = cci_params,
    .noutputs = 1,
    .outputs = {"cci"},
    .has_mt5 = 1,
    .doc = "(tp - SMA(tp)) / (0.015 * mean absolute deviation), tp = (h+l+c)/3; 0 when the "
           "deviation is 0, and exactly 0 when the window's tp are all equal (TA-Lib and MT5 give "
           "+-66.67 there for constants whose sum does not round-trip, e.g. 1.1: deliberately "
           "not reproduced). O(period) per bar in both forms (the mean "
           "deviation has no O(1) update). talib sums in TA-Lib's circular-buffer order, mt5 "
           "newest first with the 0.015/period factor (CCI.mq5); they differ by rounding.",
    .lookback_doc = "period-1",
    .lookback = lb_p1,
    .state_size = cci_size,
    .init = cci_init,
    .update = cci_update,
    .batch = cci_step_batch,
};

/* ---- MFI ---- */

static const IndParam mfi_params[] = {IND_PERIOD(14, 2)};

typedef struct {
    IndRing pos, neg;
    double prev, psum, nsum;
    int conv, period;
    long n;
} Mfi;

static size_t mfi_size(const IndSpec *s)
{
    return ind_align(sizeof(Mfi)) + 2 * ind_ring_bytes((unsigned)s->p[0]);
}

static void mfi_init(void *st, const IndSpec *s)
{
    Mfi *m = st;
    size_t off = ind_align(sizeof(Mfi));
    m->conv = s->conv, m->period = (int)s->p[0];
    ind_ring_init(&m->pos, &off, (unsigned)m->period);
    ind_ring_init(&m->neg, &off, (unsigned)m->period);
}

static void mfi_update(void *st, const double *in, double *out)
{
    Mfi *m = st;
    double tp = (in[0] + in[1] + in[2]) / 3.0;
    long n = m->n++;
    out[0] = NAN;
    if (n == 0) {
        m->prev = tp;
        return;
    }
    double d = tp - m->prev, mf = tp * in[3], pos = 0.0, neg = 0.0;
    m->prev = tp;
    if (d < 0)
        neg = mf;
    else if (d > 0)
        pos = mf;
    if (m->conv == IND_MT5) { /* MFI.mq5: sums newest first, recomputed each bar */
        ind_ring_push(st, &m->pos, pos);
        ind_ring_push(st, &m->neg, neg);
        if (n < m->period) return;
        double ps = 0.0, ns = 0.0;
        for (unsigned i = 0; i < m->pos.len; i++) {
            ps += ind_ring_back(st, &m->pos, i);
            ns += ind_ring_back(st, &m->neg, i);
        }
        out[0] = ns != 0.0 ? 100.0 - 100.0 / (1 + ps / ns) : 100.0;
        return;
    }
    /* ta_MFI.c: rolling sums, the leaving flow removed before the new one is added */
    double oldp = ind_ring_push(st, &m->pos, pos), oldn = ind_ring_push(st, &m->neg, neg);
    if (n > m->period) m->psum -= oldp, m->nsum -= oldn;
    m->psum += pos, m->nsum += neg;
    if (n < m->period) return;
    double t = m->psum + m->nsum;
    out[0] = t < 1.0 ? 0.0 : 100.0 * (m->psum / t);
}

/* Dedicated talib batch loop: mfi_update's arithmetic with locals; the
 * flows of the window in one scratch ring, allocated once. */
static int mfi_step_batch(const IndSpec *s, size_t n, const double *const *in, double *const *out)
{
    if (s->conv == IND_MT5) return ind_step_batch(s, n, in, out, 4, 1, mfi_update);
    const double *h = in[0], *l = in[1], *c = in[2], *v = in[3];
    double *y = out[0];
    size_t p = (size_t)s->p[0], k = 0;
    fill_nan(y, 0, n < p ? n : p);
    if (n < 2) return 1;
    double *flow = mem_alloc(2 * p * sizeof *flow); /* positive, negative flow per bar */
    if (!flow) return -1;
    double prev = (h[0] + l[0] + c[0]) / 3.0, psum = 0, nsum = 0;
    for (size_t i = 1; i < n; i++) {
        double tp = (h[i] + l[i] + c[i]) / 3.0, d = tp - prev, mf = tp * v[i];
        prev = tp;
        if (i > p) { /* the flows of bar i-p leave; one is 0, which changes nothing */
            psum -= flow[2 * k];
            nsum -= flow[2 * k + 1];
        }
        double pos = 0, neg = 0;
        if (d < 0)
            nsum += mf, neg = mf;
        else if (d > 0)
            psum += mf, pos = mf;
        flow[2 * k] = pos, flow[2 * k + 1] = neg;
        if (++k == p) k = 0;
        if (i < p) continue;
        double t = psum + nsum;
        y[i] = t < 1.0 ? 0.0 : 100.0 * (psum / t);
    }
    mem_free(flow);
    return 1;
}

const IndDef ind_def_mfi = {
    .name = "mfi",
    .title = "Money Flow Index",
    .ninputs = 4,
    .inputs = {"high", "low", "close", "volume"},
    .nparams = 1,
    .params = mfi_params,
    .noutputs = 1,
    .outputs = {"mfi"},
    .has_mt5 = 1,
    .doc = "Money flow tp*volume, tp = (h+l+c)/3.0, positive when tp rose, negative when it "
           "fell. talib: 100*pos/(pos+neg), and 0 when pos+neg < 1 (TA-Lib's own cut-off; so 0 "
           "on a constant series or zero volume). mt5 (MFI.mq5): 100-100/(1+pos/neg), 100 when "
           "neg = 0 (so 100 on a constant series); O(period) per bar.",
    .lookback_doc = "period",
    .lookback = lb_p,
    .state_size = mfi_size,
    .init = mfi_init,
    .update = mfi_update,
    .batch = mfi_step_batch,
};

/* ---- ROC, MOM ---- */

static const IndParam period10[] = {IND_PERIOD(10, 1)};

typedef struct {
    IndRing r;
    int conv;
} Lag;

static size_t lag_size(const IndSpec *s)
{
    return ind_align(sizeof(Lag)) + ind_ring_bytes((unsigned)s->p[0]);
}

static void lag_init(void *st, const IndSpec *s)
{
    Lag *g = st;
    size_t off = ind_align(sizeof(Lag));
    g->conv = s->conv;
    ind_ring_init(&g->r, &off, (unsigned)s->p[0]);
}

static void roc_update(void *st, const double *in, double *out)
{
    Lag *g = st;
    double old = ind_ring_push(st, &g->r, in[0]);
    out[0] = isnan(old) ? NAN : old != 0.0 ? ((in[0] / old) - 1.0) * 100.0 : 0.0;
}

static void mom_update(void *st, const double *in, double *out)
{
    Lag *g = st;
    double x = in[0], old = ind_ring_push(st, &g->r, x);
    if (isnan(old))
        out[0] = NAN;
    else if (g->conv == IND_MT5)
        out[0] = old != 0.0 ? x * 100 / old : 100.0; /* Momentum.mq5 */
    else
        out[0] = x - old;
}

static int roc_step_batch(const IndSpec *s, size_t n, const double *const *in, double *const *out)
{
    const double *x = in[0];
    double *y = out[0];
    size_t p = (size_t)s->p[0];
    fill_nan(y, 0, n < p ? n : p);
    for (size_t i = p; i < n; i++) {
        double old = x[i - p];
        y[i] = old != 0.0 ? ((x[i] / old) - 1.0) * 100.0 : 0.0;
    }
    return 1;
}

const IndDef ind_def_roc = {
    .name = "roc",
    .title = "Rate of Change",
    .ninputs = 1,
    .inputs = {"real"},
    .nparams = 1,
    .params = period10,
    .noutputs = 1,
    .outputs = {"roc"},
    .has_mt5 = 0,
    .doc = "((x / x[-period]) - 1) * 100; 0 when x[-period] is 0 (ta_ROC.c). MT5 ships no ROC "
           "(only an example): mt5 = talib.",
    .lookback_doc = "period",
    .lookback = lb_p,
    .state_size = lag_size,
    .init = lag_init,
    .update = roc_update,
    .batch = roc_step_batch,
};

static int mom_step_batch(const IndSpec *s, size_t n, const double *const *in, double *const *out)
{
    const double *restrict x = in[0];
    double *restrict y = out[0]; /* distinct buffers: lets the compiler vectorise */
    size_t p = (size_t)s->p[0];
    fill_nan(y, 0, n < p ? n : p);
    if (s->conv == IND_MT5) {
        for (size_t i = p; i < n; i++)
            y[i] = x[i - p] != 0.0 ? x[i] * 100 / x[i - p] : 100.0;
    } else {
        for (size_t i = p; i < n; i++)
            y[i] = x[i] - x[i - p];
    }
    return 1;
}

static const double mom_mt5_defaults[] = {14}; /* Momentum.mq5 */

const IndDef ind_def_mom = {
    .name = "mom",
    .title = "Momentum",
    .ninputs = 1,
    .inputs = {"real"},
    .nparams = 1,
    .params = period10,
    .noutputs = 1,
    .outputs = {"mom"},
    .has_mt5 = 1,
    .mt5_defaults = mom_mt5_defaults,
    .doc = "talib: x - x[-period]. mt5 (Momentum.mq5): x * 100 / x[-period], a ratio around "
           "100; 100 when x[-period] is 0 (MT5 would divide by zero).",
    .lookback_doc = "period",
    .lookback = lb_p,
    .state_size = lag_size,
    .init = lag_init,
    .update = mom_update,
    .batch = mom_step_batch,
};

/* ---- WILLR ---- */

static const IndParam willr_params[] = {IND_PERIOD(14, 2)};

typedef struct {
    FastK fk;
    double last;
    int conv;
} Willr;

static size_t willr_size(const IndSpec *s)
{
    return ind_align(sizeof(Willr)) + fastk_bytes((int)s->p[0]);
}

static void willr_init(void *st, const IndSpec *s)
{
    Willr *w = st;
    size_t off = ind_align(sizeof(Willr));
    w->conv = s->conv;
    fastk_init(&w->fk, &off, (int)s->p[0]);
}

static void willr_update(void *st, const double *in, double *out)
{
    Willr *w = st;
    double hh, ll, c = in[2];
    out[0] = NAN;
    if (!fastk_push(st, &w->fk, in[0], in[1], &hh, &ll)) return;
    if (w->conv == IND_MT5) { /* WPR.mq5: a flat window repeats the previous value */
        if (hh != ll) w->last = -(hh - c) * 100 / (hh - ll);
        out[0] = w->last;
        return;
    }
    double diff = (hh - ll) / (-100.0);
    out[0] = diff != 0.0 ? (hh - c) / diff : 0.0;
}

static int willr_batch(const IndSpec *s, size_t n, const double *const *in, double *const *out)
{
    const double *h = in[0], *l = in[1], *c = in[2];
    double *y = out[0], last = 0;
    size_t p = (size_t)s->p[0];
    IndWin hi = {SIZE_MAX, 0}, lo = {SIZE_MAX, 0};
    fill_nan(y, 0, n < p - 1 ? n : p - 1);
    for (size_t i = p - 1; i < n; i++) {
        double hh = ind_win_ext(h, i, p, &hi, 1), ll = ind_win_ext(l, i, p, &lo, 0);
        if (s->conv == IND_MT5) {
            if (hh != ll) last = -(hh - c[i]) * 100 / (hh - ll);
            y[i] = last;
        } else {
            double diff = (hh - ll) / (-100.0);
            y[i] = diff != 0.0 ? (hh - c[i]) / diff : 0.0;
        }
    }
    return 1;
}

const IndDef ind_def_willr = {
    .name = "willr",
    .title = "Williams' %R",
    .ninputs = 3,
    .inputs = {"high", "low", "close"},
    .nparams = 1,
    .params = willr_params,
    .noutputs = 1,
    .outputs = {"willr"},
    .has_mt5 = 1,
    .doc = "-100 * (hh - c) / (hh - ll) over period bars. Flat window: talib gives 0; mt5 "
           "(WPR.mq5) repeats the previous value (0 before any).",
    .lookback_doc = "period-1",
    .lookback = lb_p1,
    .state_size = willr_size,
    .init = willr_init,
    .update = willr_update,
    .batch = willr_batch,
};

/* ---- AROON ---- */

static const IndParam aroon_params[] = {IND_PERIOD(14, 2)};

typedef struct {
    IndRing h, l;
    IndExt hi, lo;
    int period;
} Aroon;

static size_t aroon_size(const IndSpec *s)
{
    return ind_align(sizeof(Aroon)) + 2 * ind_ring_bytes((unsigned)s->p[0] + 1);
}

static void aroon_init(void *st, const IndSpec *s)
{
    Aroon *a = st;
    size_t off = ind_align(sizeof(Aroon));
    a->period = (int)s->p[0];
    ind_ring_init(&a->h, &off, (unsigned)a->period + 1);
    ind_ring_init(&a->l, &off, (unsigned)a->period + 1);
}

static void aroon_update(void *st, const double *in, double *out)
{
    Aroon *a = st;
    unsigned w = (unsigned)a->period + 1;
    ind_ring_push(st, &a->h, in[0]);
    ind_ring_push(st, &a->l, in[1]);
    ind_ext_update(st, &a->h, &a->hi, in[0], w, 1);
    ind_ext_update(st, &a->l, &a->lo, in[1], w, 0);
    out[0] = out[1] = NAN;
    if (a->h.len < w) return;
    double factor = 100.0 / a->period;
    out[0] = factor * (a->period - (int)a->lo.age);
    out[1] = factor * (a->period - (int)a->hi.age);
}

/* Dedicated batch loop: extremes tracked by index over p+1 bars, ties to
 * the most recent bar, as aroon_update does with its rings. */
static int aroon_step_batch(const IndSpec *s, size_t n, const double *const *in, double *const *out)
{
    const double *h = in[0], *l = in[1];
    double *yd = out[0], *yu = out[1];
    int p = (int)s->p[0];
    size_t w = (size_t)p + 1;
    IndWin hi = {SIZE_MAX, 0}, lo = {SIZE_MAX, 0};
    double factor = 100.0 / p;
    for (size_t i = 0; i < n && i + 1 < w; i++)
        yd[i] = yu[i] = NAN;
    for (size_t i = w - 1; i < n; i++) {
        ind_win_ext(h, i, w, &hi, 1);
        ind_win_ext(l, i, w, &lo, 0);
        yd[i] = factor * (p - (int)(i - lo.idx));
        yu[i] = factor * (p - (int)(i - hi.idx));
    }
    return 1;
}

const IndDef ind_def_aroon = {
    .name = "aroon",
    .title = "Aroon",
    .ninputs = 2,
    .inputs = {"high", "low"},
    .nparams = 1,
    .params = aroon_params,
    .noutputs = 2,
    .outputs = {"down", "up"},
    .has_mt5 = 0,
    .doc = "100/period * (period - bars since the lowest low / highest high) over period+1 bars; "
           "ties go to the most recent bar (ta_AROON.c), so a flat window gives 100, 100. MT5 "
           "ships no Aroon: mt5 = talib.",
    .lookback_doc = "period",
    .lookback = lb_p,
    .state_size = aroon_size,
    .init = aroon_init,
    .update = aroon_update,
    .batch = aroon_step_batch,
};
