/* The indicator library: pure C math over double arrays, no I/O, no Lua, no
 * allocation inside loops. One registry (ind_at/ind_find) describes every
 * indicator — inputs, parameters with defaults and ranges, outputs, lookback —
 * and drives dispatch, the Lua binding and the docs. Every indicator runs in
 * batch (ind_batch) and streaming (ind_state_*) form with equal outputs. */
#ifndef IND_H
#define IND_H

#include <stddef.h>

#define IND_MAX_INPUTS 5
#define IND_MAX_PARAMS 6
#define IND_MAX_OUTPUTS 5

typedef enum {
    IND_TALIB = 0, /* TA-Lib default compatibility: lookbacks, seeding, expressions */
    IND_MT5 = 1,   /* MetaTrader 5 built-in indicator sources; talib where MT5 has none */
} IndConv;

typedef enum { IND_P_INT, IND_P_REAL, IND_P_ENUM } IndParamType;

typedef struct {
    const char *name;
    IndParamType type;
    double def, min, max;       /* IND_P_ENUM: index into choices */
    const char *const *choices; /* IND_P_ENUM only: NULL-terminated */
    const char *doc;
} IndParam;

typedef struct IndDef IndDef;

/* A fully specified indicator: definition, effective convention, parameter
 * values (in registry order). Plain data: copy it, persist it. */
typedef struct {
    const IndDef *def;
    IndConv conv; /* effective: IND_TALIB when def has no mt5 form */
    double p[IND_MAX_PARAMS];
} IndSpec;

struct IndDef {
    const char *name;  /* lower-case, as in Lua: "rsi" */
    const char *title; /* "Relative Strength Index" */
    int ninputs;
    const char
        *inputs[IND_MAX_INPUTS]; /* "real", "open", "high", "low", "close", "volume", "time" */
    int nparams;
    const IndParam *params;
    int noutputs;
    const char *outputs[IND_MAX_OUTPUTS];
    int has_mt5;                /* 0: the mt5 convention falls back to talib */
    const double *mt5_defaults; /* MT5's defaults per parameter when they differ; or NULL */
    const char *doc;            /* conventions, flat/degenerate behaviour, mt5 notes */
    const char *lookback_doc;   /* lookback as a formula of the parameters */
    /* Implementation (used through the functions below, not directly). */
    int (*lookback)(const IndSpec *s);
    size_t (*state_size)(const IndSpec *s);
    void (*init)(void *st, const IndSpec *s);
    void (*update)(void *st, const double *in, double *out);
    /* Optional dedicated batch loop: 1 done, 0 declined (the step loop runs),
     * -1 out of memory for its state. */
    int (*batch)(const IndSpec *s, size_t n, const double *const *in, double *const *out);
};

/* The registry, in a stable order. */
size_t ind_count(void);
const IndDef *ind_at(size_t i);
const IndDef *ind_find(const char *name); /* NULL when unknown */
const char *ind_conv_name(IndConv c);
int ind_conv_parse(const char *name, IndConv *c); /* 0 or -1 */

/* Fills s with name's defaults in convention conv (MT5's own defaults where
 * they differ, e.g. bbands period 20). 0, or -1 with a message. */
int ind_spec_init(IndSpec *s, const char *name, IndConv conv, char *err, size_t errlen);
/* Sets one parameter, checking type and range (an enum takes its index). */
int ind_spec_set(IndSpec *s, const char *param, double v, char *err, size_t errlen);
/* Sets an enum parameter by choice name. */
int ind_spec_set_choice(IndSpec *s, const char *param, const char *choice, char *err,
                        size_t errlen);
int ind_param_index(const IndDef *d, const char *param); /* -1 when unknown */

/* Bars of input consumed before the first defined output. Outputs at bar
 * indexes < lookback are NaN; a series of n <= lookback bars is all NaN. */
int ind_lookback(const IndSpec *s);

/* Batch: in[k] is the k-th input array (def->inputs order), out[k] the k-th
 * output array, each of n doubles, caller-owned; outputs must not overlap
 * inputs or each other. Outputs before the lookback
 * are NaN. Allocates one state block for indicators without a dedicated batch
 * loop (never inside the loop): 0, or -1 with a message on OOM. */
int ind_batch(const IndSpec *s, size_t n, const double *const *in, double *const *out, char *err,
              size_t errlen);

/* Streaming: the caller owns a block of ind_state_size(s) bytes (any
 * allocator, 16-byte aligned), initialises it, then feeds one bar at a time:
 * in holds def->ninputs values, out receives def->noutputs values (NaN until
 * the lookback is passed). O(1) per bar except where the docs say otherwise.
 * The block holds no pointers: it can be copied or persisted byte for byte
 * and resumed with the same spec by the same build (layout and byte order are
 * this build's; IND_STATE_VERSION changes with the layout). */
size_t ind_state_size(const IndSpec *s);
#define IND_STATE_VERSION 1 /* bump when any state layout changes */
void ind_state_init(const IndSpec *s, void *st);
void ind_state_update(const IndSpec *s, void *st, const double *in, double *out);

#endif
