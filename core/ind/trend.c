/* Trend and volume: ADX, +DI, -DI, PSAR, Ichimoku, linear regression, OBV,
 * VWAP, in TA-Lib and MetaTrader 5 form where they differ. One step function
 * per indicator serves streaming and batch. No I/O, no allocation. */
#include <string.h>

#include "ind_impl.h"

static const IndParam period14[] = {IND_PERIOD(14, 2)};

/* ---- Directional movement (ta_ADX.c, ta_PLUS_DI.c, ta_MINUS_DI.c) ---- */

typedef struct {
    double ph, pl, pc, pdm, mdm, tr, inv; /* inv = 1/period */
    int period;
    long n;
} Dm;

/* Returns 1 when the Wilder-smoothed +DM, -DM and TR are defined (bar >= period). */
static int dm_step(Dm *d, double h, double l, double c)
{
    long n = d->n++;
    int p = d->period;
    if (n == 0) {
        d->ph = h, d->pl = l, d->pc = c;
        return 0;
    }
    double dp = h - d->ph, dm = d->pl - l, tr = ind_tr_talib(h, l, d->pc);
    d->ph = h, d->pl = l, d->pc = c;
    if (n >= p) { /* Wilder's x - x/p with x*(1/p): off the loop-carried divider */
        d->mdm -= d->mdm * d->inv;
        d->pdm -= d->pdm * d->inv;
    }
    if (dm > 0 && dp < dm)
        d->mdm += dm;
    else if (dp > 0 && dp > dm)
        d->pdm += dp;
    if (n < p) {
        d->tr += tr;
        return 0;
    }
    d->tr = d->tr - (d->tr * d->inv) + tr;
    return 1;
}

/* MT5's ADX.mq5: per-bar DM/TR ratios smoothed by EMAs seeded with 0. */
typedef struct {
    double ph, pl, pc, pdi, ndi, adx, pr;
    long n;
} DmM;

static void dmm_step(DmM *d, double h, double l, double c)
{
    if (d->n++ == 0) {
        d->ph = h, d->pl = l, d->pc = c;
        return;
    }
    double pos = h - d->ph, neg = d->pl - l, pd = 0.0, nd = 0.0;
    if (pos < 0.0) pos = 0.0;
    if (neg < 0.0) neg = 0.0;
    if (pos > neg)
        neg = 0.0;
    else if (pos < neg)
        pos = 0.0;
    else
        pos = neg = 0.0;
    double a = fabs(h - l), b = fabs(h - d->pc), e = fabs(l - d->pc);
    double tr = (a > b ? a : b) > e ? (a > b ? a : b) : e;
    if (tr != 0.0) pd = 100.0 * pos / tr, nd = 100.0 * neg / tr;
    d->pdi = pd * d->pr + d->pdi * (1 - d->pr);
    d->ndi = nd * d->pr + d->ndi * (1 - d->pr);
    double t = d->pdi + d->ndi;
    t = t != 0.0 ? 100.0 * fabs((d->pdi - d->ndi) / t) : 0.0;
    d->adx = t * d->pr + d->adx * (1 - d->pr);
    d->ph = h, d->pl = l, d->pc = c;
}

typedef struct {
    Dm d;
    DmM m;
    double sumdx, adx;
    int conv, which; /* 0 adx, 1 +di, 2 -di */
} Dmi;

static size_t dmi_size(const IndSpec *s)
{
    return sizeof(Dmi);
}

static void dmi_setup(void *st, const IndSpec *s, int which)
{
    Dmi *x = st;
    x->conv = s->conv, x->which = which;
    x->d.period = (int)s->p[0];
    x->d.inv = 1.0 / s->p[0];
    x->m.pr = 2.0 / (s->p[0] + 1.0);
}

static void adx_init(void *st, const IndSpec *s)
{
    dmi_setup(st, s, 0);
}

static void pdi_init(void *st, const IndSpec *s)
{
    dmi_setup(st, s, 1);
}

static void mdi_init(void *st, const IndSpec *s)
{
    dmi_setup(st, s, 2);
}

static void dmi_update(void *st, const double *in, double *out)
{
    Dmi *x = st;
    int p = x->d.period;
    out[0] = NAN;
    if (x->conv == IND_MT5) {
        dmm_step(&x->m, in[0], in[1], in[2]);
        long n = x->m.n - 1; /* this bar's index */
        if (x->which == 0 && n >= 2L * p) out[0] = x->m.adx;
        if (x->which == 1 && n >= p) out[0] = x->m.pdi;
        if (x->which == 2 && n >= p) out[0] = x->m.ndi;
        return;
    }
    if (!dm_step(&x->d, in[0], in[1], in[2])) return;
    long n = x->d.n - 1;
    double tr = x->d.tr;
    if (x->which == 1) {
        out[0] = !IND_IS_ZERO(tr) ? 100.0 * (x->d.pdm / tr) : 0.0;
        return;
    }
    if (x->which == 2) {
        out[0] = !IND_IS_ZERO(tr) ? 100.0 * (x->d.mdm / tr) : 0.0;
        return;
    }
    double dx = NAN;
    if (!IND_IS_ZERO(tr)) {
        double mdi = 100.0 * (x->d.mdm / tr), pdi = 100.0 * (x->d.pdm / tr), t = mdi + pdi;
        if (!IND_IS_ZERO(t)) dx = 100.0 * (fabs(mdi - pdi) / t);
    }
    if (n < 2L * p - 1) {
        if (!isnan(dx)) x->sumdx += dx;
        return;
    }
    if (n == 2L * p - 1) {
        if (!isnan(dx)) x->sumdx += dx;
        x->adx = x->sumdx / p;
    } else if (!isnan(dx)) {
        x->adx = x->adx * ((p - 1) * x->d.inv) + dx * x->d.inv;
    }
    out[0] = x->adx;
}

/* Dedicated talib batch loop for adx, plus_di and minus_di: dm_step and
 * dmi_update with locals, same arithmetic. mt5 declines to the step loop. */
static inline void dmi_batch_k(const IndSpec *s, size_t n, const double *const *in,
                               double *const *out, const int which)
{
    const double *h = in[0], *l = in[1], *c = in[2];
    double *y = out[0];
    size_t p = (size_t)s->p[0], lb = which ? p : 2 * p - 1;
    double pd = (double)p, inv = 1.0 / pd, keep = (pd - 1) * inv;
    double pdm = 0, mdm = 0, tr = 0, sumdx = 0, adx = 0;
    for (size_t i = 0; i < n && i < lb; i++)
        y[i] = NAN;
    for (size_t i = 1; i < n; i++) {
        double dp = h[i] - h[i - 1], dm = l[i - 1] - l[i], t = ind_tr_talib(h[i], l[i], c[i - 1]);
        if (i >= p) {
            mdm -= mdm * inv;
            pdm -= pdm * inv;
        }
        if (dm > 0 && dp < dm)
            mdm += dm;
        else if (dp > 0 && dp > dm)
            pdm += dp;
        if (i < p) {
            tr += t;
            continue;
        }
        tr = tr - (tr * inv) + t;
        if (which == 1) {
            y[i] = !IND_IS_ZERO(tr) ? 100.0 * (pdm / tr) : 0.0;
            continue;
        }
        if (which == 2) {
            y[i] = !IND_IS_ZERO(tr) ? 100.0 * (mdm / tr) : 0.0;
            continue;
        }
        double dx = NAN;
        if (!IND_IS_ZERO(tr)) {
            double mi = 100.0 * (mdm / tr), pi = 100.0 * (pdm / tr), sum = mi + pi;
            if (!IND_IS_ZERO(sum)) dx = 100.0 * (fabs(mi - pi) / sum);
        }
        if (i < lb) {
            if (!isnan(dx)) sumdx += dx;
            continue;
        }
        if (i == lb) {
            if (!isnan(dx)) sumdx += dx;
            adx = sumdx / pd;
        } else if (!isnan(dx)) {
            adx = adx * keep + dx * inv;
        }
        y[i] = adx;
    }
}

/* One copy per output, so the loop carries no test of which output it is. */
static int dmi_batch(const IndSpec *s, size_t n, const double *const *in, double *const *out)
{
    if (s->conv == IND_MT5) return ind_step_batch(s, n, in, out, 3, 1, dmi_update);
    if (s->def == &ind_def_adx)
        dmi_batch_k(s, n, in, out, 0);
    else if (s->def == &ind_def_plus_di)
        dmi_batch_k(s, n, in, out, 1);
    else
        dmi_batch_k(s, n, in, out, 2);
    return 1;
}

static int adx_lb(const IndSpec *s)
{
    return s->conv == IND_MT5 ? 2 * (int)s->p[0] : 2 * (int)s->p[0] - 1;
}

static int di_lb(const IndSpec *s)
{
    return (int)s->p[0];
}

#define DMI_DOC                                                                                    \
    " talib: Wilder sums of +DM, -DM and true range (first sums over period-1 bars), DI = "        \
    "100*DM/TR, 0 when TR is (near) zero; ADX = mean of the first period DX then Wilder, DX "      \
    "skipped when +DI + -DI is zero; the Wilder steps multiply by 1/period where TA-Lib "          \
    "divides (agreeing within 1e-15). "                                                            \
    "mt5 (ADX.mq5, not ADX Wilder): per-bar 100*DM/TR smoothed "                                   \
    "by EMA(period) seeded with 0, ADX = EMA of 100*|+DI - -DI|/(+DI + -DI); MT5 draws DI from "   \
    "bar period and ADX from bar 2*period. A constant series gives 0."

const IndDef ind_def_adx = {
    .name = "adx",
    .title = "Average Directional Movement Index",
    .ninputs = 3,
    .inputs = {"high", "low", "close"},
    .nparams = 1,
    .params = period14,
    .noutputs = 1,
    .outputs = {"adx"},
    .has_mt5 = 1,
    .doc = "Trend strength 0..100." DMI_DOC,
    .lookback_doc = "talib 2*period-1, mt5 2*period",
    .lookback = adx_lb,
    .state_size = dmi_size,
    .init = adx_init,
    .update = dmi_update,
    .batch = dmi_batch,
};

const IndDef ind_def_plus_di = {
    .name = "plus_di",
    .title = "Plus Directional Indicator",
    .ninputs = 3,
    .inputs = {"high", "low", "close"},
    .nparams = 1,
    .params = period14,
    .noutputs = 1,
    .outputs = {"plus_di"},
    .has_mt5 = 1,
    .doc = "+DI." DMI_DOC,
    .lookback_doc = "period",
    .lookback = di_lb,
    .state_size = dmi_size,
    .init = pdi_init,
    .update = dmi_update,
    .batch = dmi_batch,
};

const IndDef ind_def_minus_di = {
    .name = "minus_di",
    .title = "Minus Directional Indicator",
    .ninputs = 3,
    .inputs = {"high", "low", "close"},
    .nparams = 1,
    .params = period14,
    .noutputs = 1,
    .outputs = {"minus_di"},
    .has_mt5 = 1,
    .doc = "-DI." DMI_DOC,
    .lookback_doc = "period",
    .lookback = di_lb,
    .state_size = dmi_size,
    .init = mdi_init,
    .update = dmi_update,
    .batch = dmi_batch,
};

/* ---- PSAR (ta_SAR.c; ParabolicSAR.mq5) ---- */

static const IndParam psar_params[] = {
    {"acceleration", IND_P_REAL, 0.02, 0, 3e37, NULL, "acceleration factor step and start"},
    {"maximum", IND_P_REAL, 0.2, 0, 3e37, NULL, "acceleration factor cap"},
};

typedef struct {
    double acc, max, af, ep, sar, nh, nl, h0, l0;
    double hmax, lmin; /* mt5: extremes since the last reversal */
    int is_long, conv;
    long n;
} Psar;

static size_t psar_size(const IndSpec *s)
{
    return sizeof(Psar);
}

static void psar_init(void *st, const IndSpec *s)
{
    Psar *p = st;
    p->acc = s->p[0], p->max = s->p[1];
    p->conv = s->conv;
    if (p->acc > p->max && p->conv != IND_MT5) p->acc = p->max; /* TA-Lib's rule */
    p->af = p->acc;
}

/* ParabolicSAR.mq5 for one bar: starts short with SAR = the highest high so
 * far; at a reversal the SAR becomes the extreme since the previous reversal.
 * Returns the bar's final SAR (after its reversal check) and prepares the
 * next bar's. nh/nl hold the previous bar, ep/af the previous bar's EP/AF. */
static double psar_mt5_step(Psar *p, double h, double l)
{
    long n = p->n++;
    if (n == 0) {
        p->nh = p->hmax = h, p->nl = p->lmin = l;
        return NAN;
    }
    if (h > p->hmax) p->hmax = h;
    if (l < p->lmin) p->lmin = l;
    if (n == 1) p->is_long = 0, p->sar = p->hmax, p->ep = l, p->af = p->acc;
    int rev = 0;
    double ep = p->ep, af = p->af;
    if (p->is_long && p->sar > l) {
        p->is_long = 0, p->sar = p->hmax, ep = l, af = p->acc, rev = 1;
    } else if (!p->is_long && p->sar < h) {
        p->is_long = 1, p->sar = p->lmin, ep = h, af = p->acc, rev = 1;
    }
    double out = p->sar, next;
    if (p->is_long) {
        if (h > p->ep && !rev) {
            ep = h, af = p->af + p->acc;
            if (af > p->max) af = p->max;
        }
        next = p->sar + af * (ep - p->sar);
        if (next > l || next > p->nl) next = l < p->nl ? l : p->nl;
    } else {
        if (l < p->ep && !rev) {
            ep = l, af = p->af + p->acc;
            if (af > p->max) af = p->max;
        }
        next = p->sar + af * (ep - p->sar);
        if (next < h || next < p->nh) next = h > p->nh ? h : p->nh;
    }
    if (rev) p->hmax = h, p->lmin = l; /* the next reversal looks back to this bar */
    p->sar = next, p->ep = ep, p->af = af, p->nh = h, p->nl = l;
    return out;
}

/* One bar; inline so the batch loop keeps a local state in registers. */
static inline double psar_step(Psar *p, double h, double l)
{
    double out;
    long n = p->n++;
    if (n == 0) {
        p->h0 = h, p->l0 = l;
        return NAN;
    }
    if (n == 1) { /* direction from the first bar's -DM, as TA-Lib does */
        double dm = p->l0 - l, dp = h - p->h0;
        p->is_long = !(dm > 0 && dp < dm);
        if (p->is_long)
            p->ep = h, p->sar = p->l0;
        else
            p->ep = l, p->sar = p->h0;
        p->nl = l, p->nh = h;
    }
    double pl = p->nl, ph = p->nh;
    p->nl = l, p->nh = h;
    if (p->is_long) {
        if (l <= p->sar) {
            p->is_long = 0;
            p->sar = p->ep;
            if (p->sar < ph) p->sar = ph;
            if (p->sar < h) p->sar = h;
            out = p->sar;
            p->af = p->acc;
            p->ep = l;
            p->sar = p->sar + p->af * (p->ep - p->sar);
            if (p->sar < ph) p->sar = ph;
            if (p->sar < h) p->sar = h;
        } else {
            out = p->sar;
            if (h > p->ep) {
                p->ep = h;
                p->af += p->acc;
                if (p->af > p->max) p->af = p->max;
            }
            p->sar = p->sar + p->af * (p->ep - p->sar);
            if (p->sar > pl) p->sar = pl;
            if (p->sar > l) p->sar = l;
        }
    } else {
        if (h >= p->sar) {
            p->is_long = 1;
            p->sar = p->ep;
            if (p->sar > pl) p->sar = pl;
            if (p->sar > l) p->sar = l;
            out = p->sar;
            p->af = p->acc;
            p->ep = h;
            p->sar = p->sar + p->af * (p->ep - p->sar);
            if (p->sar > pl) p->sar = pl;
            if (p->sar > l) p->sar = l;
        } else {
            out = p->sar;
            if (l < p->ep) {
                p->ep = l;
                p->af += p->acc;
                if (p->af > p->max) p->af = p->max;
            }
            p->sar = p->sar + p->af * (p->ep - p->sar);
            if (p->sar < ph) p->sar = ph;
            if (p->sar < h) p->sar = h;
        }
    }
    return out;
}

static void psar_update(void *st, const double *in, double *out)
{
    Psar *p = st;
    out[0] = p->conv == IND_MT5 ? psar_mt5_step(p, in[0], in[1]) : psar_step(p, in[0], in[1]);
}

static int lb_1(const IndSpec *s)
{
    return 1;
}

/* Batch: psar_update on a local state, which the compiler keeps in registers. */
static int psar_step_batch(const IndSpec *s, size_t n, const double *const *in, double *const *out)
{
    const double *h = in[0], *l = in[1];
    double *y = out[0];
    if (s->conv == IND_MT5) return ind_step_batch(s, n, in, out, 2, 1, psar_update);
    Psar st;
    memset(&st, 0, sizeof st);
    psar_init(&st, s);
    if (n < 3) {
        for (size_t i = 0; i < n; i++)
            y[i] = psar_step(&st, h[i], l[i]);
        return 1;
    }
    y[0] = psar_step(&st, h[0], l[0]);
    y[1] = psar_step(&st, h[1], l[1]);
    /* psar_step from bar 2 on, with the state in locals */
    double acc = st.acc, max = st.max, af = st.af, ep = st.ep, sar = st.sar;
    double nh = st.nh, nl = st.nl;
    int is_long = st.is_long;
    for (size_t i = 2; i < n; i++) {
        double hi = h[i], lo = l[i], pl = nl, ph = nh;
        nl = lo, nh = hi;
        if (is_long) {
            if (lo <= sar) {
                is_long = 0;
                sar = ep;
                if (sar < ph) sar = ph;
                if (sar < hi) sar = hi;
                y[i] = sar;
                af = acc;
                ep = lo;
                sar = sar + af * (ep - sar);
                if (sar < ph) sar = ph;
                if (sar < hi) sar = hi;
            } else {
                y[i] = sar;
                if (hi > ep) {
                    ep = hi;
                    af += acc;
                    if (af > max) af = max;
                }
                sar = sar + af * (ep - sar);
                if (sar > pl) sar = pl;
                if (sar > lo) sar = lo;
            }
        } else {
            if (hi >= sar) {
                is_long = 1;
                sar = ep;
                if (sar > pl) sar = pl;
                if (sar > lo) sar = lo;
                y[i] = sar;
                af = acc;
                ep = hi;
                sar = sar + af * (ep - sar);
                if (sar > pl) sar = pl;
                if (sar > lo) sar = lo;
            } else {
                y[i] = sar;
                if (lo < ep) {
                    ep = lo;
                    af += acc;
                    if (af > max) af = max;
                }
                sar = sar + af * (ep - sar);
                if (sar < ph) sar = ph;
                if (sar < hi) sar = hi;
            }
        }
    }
    return 1;
}

const IndDef ind_def_psar = {
    .name = "psar",
    .title = "Parabolic SAR",
    .ninputs = 2,
    .inputs = {"high", "low"},
    .nparams = 2,
    .params = psar_params,
    .noutputs = 1,
    .outputs = {"sar"},
    .has_mt5 = 1,
    .doc = "Wilder's stop and reverse. talib (ta_SAR.c): the first direction from bar 1's -DM, "
           "the SAR kept outside the last two bars' range, acceleration capped at maximum. mt5 "
           "(ParabolicSAR.mq5): starts short at the highest high of bars 0-1; at a reversal the "
           "SAR becomes the extreme since the previous reversal (kept incrementally, O(1)). The "
           "value of a bar is the one after its own reversal check, i.e. what MT5 shows once "
           "the bar has closed (MT5 shows the forming bar's value before that check).",
    .lookback_doc = "1",
    .lookback = lb_1,
    .state_size = psar_size,
    .init = psar_init,
    .update = psar_update,
    .batch = psar_step_batch,
};

/* ---- Ichimoku ---- */

static const IndParam ichimoku_params[] = {
    {"tenkan", IND_P_INT, 9, 1, 100000, NULL, "conversion line window"},
    {"kijun", IND_P_INT, 26, 1, 100000, NULL, "base line window (and the spans' displacement)"},
    {"senkou", IND_P_INT, 52, 1, 100000, NULL, "leading span B window"},
};

typedef struct {
    IndRing h, l;
    IndExt hi[3], lo[3];
    int w[3];
} Ichi;

static unsigned ichi_cap(const IndSpec *s)
{
    double m = s->p[0] > s->p[1] ? s->p[0] : s->p[1];
    return (unsigned)(m > s->p[2] ? m : s->p[2]);
}

static size_t ichi_size(const IndSpec *s)
{
    return ind_align(sizeof(Ichi)) + 2 * ind_ring_bytes(ichi_cap(s));
}

static void ichi_init(void *st, const IndSpec *s)
{
    Ichi *k = st;
    size_t off = ind_align(sizeof(Ichi));
    for (int i = 0; i < 3; i++)
        k->w[i] = (int)s->p[i];
    ind_ring_init(&k->h, &off, ichi_cap(s));
    ind_ring_init(&k->l, &off, ichi_cap(s));
}

static void ichi_update(void *st, const double *in, double *out)
{
    Ichi *k = st;
    double mid[3];
    ind_ring_push(st, &k->h, in[0]);
    ind_ring_push(st, &k->l, in[1]);
    for (int i = 0; i < 3; i++) {
        ind_ext_update(st, &k->h, &k->hi[i], in[0], (unsigned)k->w[i], 1);
        ind_ext_update(st, &k->l, &k->lo[i], in[1], (unsigned)k->w[i], 0);
        mid[i] = (k->hi[i].v + k->lo[i].v) / 2;
    }
    if (k->h.len < k->h.cap) {
        out[0] = out[1] = out[2] = out[3] = NAN;
        return;
    }
    out[0] = mid[0];
    out[1] = mid[1];
    out[2] = (mid[0] + mid[1]) / 2;
    out[3] = mid[2];
}

static int ichi_lb(const IndSpec *s)
{
    return (int)ichi_cap(s) - 1;
}

IND_STEP_BATCH(ichimoku_step_batch, ichi_update, 2, 4)

const IndDef ind_def_ichimoku = {
    .name = "ichimoku",
    .title = "Ichimoku Kinko Hyo",
    .ninputs = 2,
    .inputs = {"high", "low"},
    .nparams = 3,
    .params = ichimoku_params,
    .noutputs = 4,
    .outputs = {"tenkan", "kijun", "senkou_a", "senkou_b"},
    .has_mt5 = 0,
    .doc = "tenkan/kijun = midpoint of the highest high and lowest low over their windows, "
           "senkou_a = (tenkan+kijun)/2, senkou_b = midpoint over senkou bars, as Ichimoku.mq5 "
           "computes them. The spans are given at the bar they are computed on: MT5 plots them "
           "kijun bars ahead (and the chikou line is the close plotted kijun bars back). Not in "
           "TA-Lib; the same in both conventions.",
    .lookback_doc = "max(tenkan, kijun, senkou)-1",
    .lookback = ichi_lb,
    .state_size = ichi_size,
    .init = ichi_init,
    .update = ichi_update,
    .batch = ichimoku_step_batch,
};

/* ---- Linear regression (ta_LINEARREG*.c, ta_TSF.c) ---- */

typedef struct {
    IndRing r;
    IndFlat flat;
    int period;
} Lr;

static size_t lr_size(const IndSpec *s)
{
    return ind_align(sizeof(Lr)) + ind_ring_bytes((unsigned)s->p[0]);
}

static void lr_init(void *st, const IndSpec *s)
{
    Lr *r = st;
    size_t off = ind_align(sizeof(Lr));
    r->period = (int)s->p[0];
    ind_ring_init(&r->r, &off, (unsigned)r->period);
}

static int lr_lb(const IndSpec *s)
{
    return (int)s->p[0] - 1;
}

static void lr_update(void *st, const double *in, double *out)
{
    Lr *r = st;
    int p = r->period;
    int flat = ind_flat_push(&r->flat, in[0], p);
    ind_ring_push(st, &r->r, in[0]);
    if (r->r.len < r->r.cap) {
        out[0] = out[1] = out[2] = out[3] = NAN;
        return;
    }
    if (flat) { /* a flat line: exact, not rounding noise */
        out[0] = out[2] = out[3] = in[0];
        out[1] = 0.0;
        return;
    }
    double sum_x = p * (p - 1) * 0.5;
    double sum_x2 = (double)(p * (p - 1) * (2 * p - 1) / 6);
    double div = sum_x * sum_x - p * sum_x2, sum_xy = 0, sum_y = 0;
    for (int i = p; i-- != 0;) {
        double y = ind_ring_back(st, &r->r, (unsigned)i);
        sum_y += y;
        sum_xy += (double)i * y;
    }
    double m = (p * sum_xy - sum_x * sum_y) / div, b = (sum_y - m * sum_x) / (double)p;
    out[0] = b + m * (double)(p - 1);
    out[1] = m;
    out[2] = b;
    out[3] = b + m * (double)p;
}

IND_STEP_BATCH(linreg_step_batch, lr_update, 1, 4)

const IndDef ind_def_linreg = {
    .name = "linreg",
    .title = "Linear Regression",
    .ninputs = 1,
    .inputs = {"real"},
    .nparams = 1,
    .params = period14,
    .noutputs = 4,
    .outputs = {"value", "slope", "intercept", "forecast"},
    .has_mt5 = 0,
    .doc = "Least-squares line through the last period values: value at this bar (LINEARREG), "
           "slope per bar, intercept at the window's first bar, forecast one bar ahead (TSF). "
           "O(period) per bar, summed as TA-Lib does. A flat window gives slope exactly 0 and "
           "the others exactly the price (TA-Lib: a 1e-16 slope). Not built into MT5: mt5 = talib.",
    .lookback_doc = "period-1",
    .lookback = lr_lb,
    .state_size = lr_size,
    .init = lr_init,
    .update = lr_update,
    .batch = linreg_step_batch,
};

/* ---- OBV (ta_OBV.c; OBV.mq5 is the same sum) ---- */

typedef struct {
    double obv, prev;
    long n;
} Obv;

static size_t obv_size(const IndSpec *s)
{
    return sizeof(Obv);
}

static void obv_init(void *st, const IndSpec *s) {}

static void obv_update(void *st, const double *in, double *out)
{
    Obv *o = st;
    double x = in[0], v = in[1];
    if (o->n++ == 0)
        o->obv = v;
    else if (x > o->prev)
        o->obv += v;
    else if (x < o->prev)
        o->obv -= v;
    o->prev = x;
    out[0] = o->obv;
}

static int lb_0(const IndSpec *s)
{
    return 0;
}

static int obv_step_batch(const IndSpec *s, size_t n, const double *const *in, double *const *out)
{
    const double *x = in[0], *v = in[1];
    double *y = out[0];
    if (!n) return 1;
    double obv = v[0];
    y[0] = obv;
    for (size_t i = 1; i < n; i++) {
        if (x[i] > x[i - 1])
            obv += v[i];
        else if (x[i] < x[i - 1])
            obv -= v[i];
        y[i] = obv;
    }
    return 1;
}

const IndDef ind_def_obv = {
    .name = "obv",
    .title = "On Balance Volume",
    .ninputs = 2,
    .inputs = {"real", "volume"},
    .nparams = 0,
    .params = NULL,
    .noutputs = 1,
    .outputs = {"obv"},
    .has_mt5 = 0,
    .doc = "Starts at the first bar's volume, then adds the volume when the price rose, subtracts "
           "it when it fell, keeps it when unchanged. OBV.mq5 computes the same: one form for "
           "both conventions.",
    .lookback_doc = "0",
    .lookback = lb_0,
    .state_size = obv_size,
    .init = obv_init,
    .update = obv_update,
    .batch = obv_step_batch,
};

/* ---- VWAP ---- */

static const char *const vwap_anchor[] = {"day", "week", "none", NULL};
static const IndParam vwap_params[] = {
    {"anchor", IND_P_ENUM, 0, 0, 2, vwap_anchor,
     "restart at each day, each week (Monday), or never"},
    {"offset", IND_P_REAL, 0, -48, 48, NULL,
     "hours added to bar times before cutting days: 3 makes days start at 21:00 of the bar clock"},
};

typedef struct {
    double pv, vol, offset;
    long long key;
    int anchor, started;
} Vwap;

static size_t vwap_size(const IndSpec *s)
{
    return sizeof(Vwap);
}

static void vwap_init(void *st, const IndSpec *s)
{
    Vwap *w = st;
    w->anchor = (int)s->p[0];
    w->offset = s->p[1] * 3600.0;
}

static void vwap_update(void *st, const double *in, double *out)
{
    Vwap *w = st;
    double tp = (in[1] + in[2] + in[3]) / 3.0, v = in[4];
    long long key = 0;
    if (w->anchor != 2) {
        long long day = (long long)floor((in[0] + w->offset) / 86400.0);
        key = w->anchor == 0
                  ? day
                  : (long long)floor((double)(day + 3) / 7.0); /* 1970-01-01 was a Thursday */
    }
    if (!w->started || key != w->key) w->pv = w->vol = 0, w->key = key, w->started = 1;
    w->pv += tp * v;
    w->vol += v;
    out[0] = w->vol > 0 ? w->pv / w->vol : tp;
}

IND_STEP_BATCH(vwap_step_batch, vwap_update, 5, 1)

const IndDef ind_def_vwap = {
    .name = "vwap",
    .title = "Volume Weighted Average Price (anchored)",
    .ninputs = 5,
    .inputs = {"time", "high", "low", "close", "volume"},
    .nparams = 2,
    .params = vwap_params,
    .noutputs = 1,
    .outputs = {"vwap"},
    .has_mt5 = 0,
    .doc = "sum(tp*volume)/sum(volume), tp = (h+l+c)/3.0, restarted when the anchor period "
           "(day or week of time + offset hours, time in epoch seconds) changes. While the "
           "session's volume is 0 the value is tp. Neither TA-Lib nor MT5 ships it: one form.",
    .lookback_doc = "0",
    .lookback = lb_0,
    .state_size = vwap_size,
    .init = vwap_init,
    .update = vwap_update,
    .batch = vwap_step_batch,
};
