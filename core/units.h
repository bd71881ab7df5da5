/* Sizes and durations written as text ("16MB", "5s"): the one parser behind
 * the config's sizes, tf.route's max_body, tf.job's intervals and options,
 * tf.size / tf.duration and the job modules' settings. Pure: no Lua, no I/O,
 * no allocation; it never guesses a unit it does not know. */
#ifndef UNITS_H
#define UNITS_H

/* A size: a number of bytes, or a number followed (after optional spaces) by
 * B, K/KB, M/MB or G/GB in any case ("16MB", "512 kb", "1.5G"; 1K = 1024).
 * 0 with the bytes in *bytes, or -1 when s is not a size (negative and
 * non-finite numbers are not sizes). */
int units_size(const char *s, double *bytes);

/* A duration: a number of seconds, or a number followed (after optional
 * spaces) by ms, s, m, h or d ("500ms", "5s", "2m", "1.5h", "90d").
 * 0 with the milliseconds in *ms, or -1 when s is not a duration. */
int units_duration_ms(const char *s, double *ms);

/* The message for a value that is not one of the above, for errors that
 * name the key: "a size such as \"16MB\" or a number of bytes". */
#define UNITS_SIZE_HINT "a size such as \"16MB\" or a number of bytes"
#define UNITS_DURATION_HINT                                                                        \
    "a duration such as \"500ms\", \"30s\", \"5m\", \"1h\", \"90d\" or a number of seconds"

#endif
