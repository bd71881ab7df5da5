/* The registry and the dispatch of core/ind/: looks indicators up by name,
 * fills and checks parameter specs, and runs batch and streaming calls through
 * each definition. Pure C: no I/O, no Lua; the only allocation is one state
 * block per batch call for indicators without a dedicated batch loop. */
#include "ind.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ind_impl.h"
#include "mem.h"

#define IND_REF(name) &ind_def_##name,
static const IndDef *const registry[] = {IND_DEFS(IND_REF)};
#undef IND_REF

#define NDEFS (sizeof registry / sizeof registry[0])

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

size_t ind_count(void)
{
    return NDEFS;
}

const IndDef *ind_at(size_t i)
{
    return i < NDEFS ? registry[i] : NULL;
}

const IndDef *ind_find(const char *name)
{
    for (size_t i = 0; name && i < NDEFS; i++) {
        if (strcmp(registry[i]->name, name) == 0) return registry[i];
    }
    return NULL;
}

const char *ind_conv_name(IndConv c)
{
    return c == IND_MT5 ? "mt5" : "talib";
}

int ind_conv_parse(const char *name, IndConv *c)
{
    if (name && strcmp(name, "talib") == 0)
        *c = IND_TALIB;
    else if (name && strcmp(name, "mt5") == 0)
        *c = IND_MT5;
    else
        return -1;
    return 0;
}

int ind_param_index(const IndDef *d, const char *param)
{
    for (int i = 0; param && i < d->nparams; i++) {
        if (strcmp(d->params[i].name, param) == 0) return i;
    }
    return -1;
}

int ind_spec_init(IndSpec *s, const char *name, IndConv conv, char *err, size_t errlen)
{
    const IndDef *d = ind_find(name);
    if (!d) return fail(err, errlen, "unknown indicator '%s'", name ? name : "(null)");
    memset(s, 0, sizeof *s);
    s->def = d;
    s->conv = (conv == IND_MT5 && d->has_mt5) ? IND_MT5 : IND_TALIB;
    for (int i = 0; i < d->nparams; i++)
        s->p[i] = (s->conv == IND_MT5 && d->mt5_defaults) ? d->mt5_defaults[i] : d->params[i].def;
    return 0;
}

int ind_spec_set(IndSpec *s, const char *param, double v, char *err, size_t errlen)
{
    const IndDef *d = s->def;
    int i = ind_param_index(d, param);
    if (i < 0) return fail(err, errlen, "%s: unknown parameter '%s'", d->name, param);
    const IndParam *p = &d->params[i];
    if (isnan(v)) return fail(err, errlen, "%s: %s is NaN", d->name, param);
    if (p->type != IND_P_REAL && v != floor(v)) {
        return fail(err, errlen, "%s: %s must be an integer, got %g", d->name, param, v);
    }
    if (v < p->min || v > p->max) {
        return fail(err, errlen, "%s: %s must be in [%g, %g], got %g", d->name, param, p->min,
                    p->max, v);
    }
    s->p[i] = v;
    return 0;
}

int ind_spec_set_choice(IndSpec *s, const char *param, const char *choice, char *err, size_t errlen)
{
    const IndDef *d = s->def;
    int i = ind_param_index(d, param);
    if (i < 0) return fail(err, errlen, "%s: unknown parameter '%s'", d->name, param);
    const IndParam *p = &d->params[i];
    if (p->type != IND_P_ENUM) return fail(err, errlen, "%s: %s is a number", d->name, param);
    for (int k = 0; p->choices[k]; k++) {
        if (strcmp(p->choices[k], choice) == 0) {
            s->p[i] = k;
            return 0;
        }
    }
    return fail(err, errlen, "%s: %s has no choice '%s'", d->name, param, choice);
}

int ind_lookback(const IndSpec *s)
{
    assert(s && s->def);
    return s->def->lookback(s);
}

size_t ind_state_size(const IndSpec *s)
{
    return ind_align(s->def->state_size(s));
}

void ind_state_init(const IndSpec *s, void *st)
{
    memset(st, 0, ind_state_size(s));
    s->def->init(st, s);
}

void ind_state_update(const IndSpec *s, void *st, const double *in, double *out)
{
    s->def->update(st, in, out);
}

int ind_batch(const IndSpec *s, size_t n, const double *const *in, double *const *out, char *err,
              size_t errlen)
{
    const IndDef *d = s->def;
    int rc = d->batch ? d->batch(s, n, in, out) : 0;
    if (rc > 0) return 0;
    if (rc == 0) rc = ind_step_batch(s, n, in, out, d->ninputs, d->noutputs, d->update); /* generic loop */
    if (rc < 0) return fail(err, errlen, "%s: out of memory for its state", d->name);
    return 0;
}
