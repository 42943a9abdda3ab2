/* JSON tokens for the compiled event reader (_events.c): whitespace, plain strings, numbers read as
 * Python reads them, literals, and the scalar values of keys the contract does not name. Each takes
 * a cursor and returns the cursor after its token, or NULL to decline. */
#ifndef STREAM_NEURON_EVENT_TOKENS_H
#define STREAM_NEURON_EVENT_TOKENS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NUMBER_CHARS 63

typedef const unsigned char *Cursor;

static inline Cursor skip_space(Cursor p, Cursor end) {
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    return p;
}

/* A string without escapes or control characters, from its opening quote: the cursor after it (NULL:
 * declined), its text in [*start, *start + *length), *ascii whether all of it is. */
static inline Cursor plain_string(Cursor p, Cursor end, Cursor *start, Py_ssize_t *length, int *ascii) {
    Cursor q = ++p;
    int high = 0;
    while (q < end && *q != '"') {
        if (*q == '\\' || *q < 0x20) return NULL;
        high |= *q & 0x80;
        q++;
    }
    if (q >= end) return NULL;
    *start = p;
    *length = q - p;
    *ascii = !high;
    return q + 1;
}

/* Powers of ten that a double holds exactly (Clinger's fast path: a product or quotient of two exact
 * doubles is rounded once, so it is the correctly rounded value strtod gives). */
static const double EXACT_POWERS[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                      1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
#define EXACT_MANTISSA (1ULL << 53)

/* A JSON number: the cursor after it (NULL: not one, or longer than MAX_NUMBER_CHARS), its value
 * correctly rounded (Clinger's fast path when the digits and the exponent allow it, else strtod), and
 * *integer whether it has neither fraction nor exponent. */
static inline Cursor number(Cursor p, Cursor end, double *value, int *integer) {
    Cursor q = p;
    char text[MAX_NUMBER_CHARS + 1];
    unsigned long long mantissa = 0;
    int digits = 0, scale = 0, negative = 0;
    if (q < end && *q == '-') {
        negative = 1;
        q++;
    }
    if (q >= end) return NULL;
    if (*q == '0') {
        q++;
    } else if (*q >= '1' && *q <= '9') {
        while (q < end && *q >= '0' && *q <= '9') {
            if (digits++ < 19) mantissa = mantissa * 10 + (unsigned long long)(*q - '0');
            q++;
        }
    } else {
        return NULL;
    }
    *integer = 1;
    if (q < end && *q == '.') {
        *integer = 0;
        Cursor first = ++q;
        while (q < end && *q >= '0' && *q <= '9') {
            if (digits++ < 19) mantissa = mantissa * 10 + (unsigned long long)(*q - '0');
            scale--;
            q++;
        }
        if (q == first) return NULL;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        int exponent = 0, exponent_negative = 0;
        *integer = 0;
        q++;
        if (q < end && (*q == '+' || *q == '-')) exponent_negative = *q++ == '-';
        Cursor first = q;
        while (q < end && *q >= '0' && *q <= '9') {
            if (exponent < 100000) exponent = exponent * 10 + (*q - '0');
            q++;
        }
        if (q == first) return NULL;
        scale += exponent_negative ? -exponent : exponent;
    }
    if (q - p > MAX_NUMBER_CHARS) return NULL;
    if (digits <= 19 && mantissa <= EXACT_MANTISSA && scale >= -22 && scale <= 22) {
        double m = (double)mantissa;
        *value = scale < 0 ? m / EXACT_POWERS[-scale] : m * EXACT_POWERS[scale];
        if (negative) *value = -*value;
    } else {
        memcpy(text, p, (size_t)(q - p));
        text[q - p] = '\0';
        *value = strtod(text, NULL);
    }
    if (*integer && *value == 0.0) *value = 0.0; /* the integer -0 is Python's 0, not -0.0 */
    return q;
}

/* A finite number that is not a boolean: the cursor after it (NULL: declined). */
static inline Cursor feature(Cursor p, Cursor end, double *value) {
    int integer;
    p = number(p, end, value, &integer);
    return p != NULL && isfinite(*value) ? p : NULL;
}

/* Whether `n` bytes at `a` and `b` are equal: compared inline, since feature names are short and a
 * call to memcmp per feature costs more than the comparison. */
static inline int same_bytes(const unsigned char *a, const unsigned char *b, Py_ssize_t n) {
    for (Py_ssize_t j = 0; j < n; j++)
        if (a[j] != b[j]) return 0;
    return 1;
}

static inline int literal(Cursor p, Cursor end, const char *word) {
    size_t n = strlen(word);
    return (size_t)(end - p) >= n && memcmp(p, word, n) == 0;
}

/* A scalar of a key the contract does not name: checked as valid JSON, then left alone. */
static inline Cursor other_value(Cursor p, Cursor end) {
    if (p >= end) return NULL;
    if (*p == '"') {
        Cursor start;
        Py_ssize_t length;
        int ascii;
        p = plain_string(p, end, &start, &length, &ascii);
        return p != NULL && ascii ? p : NULL;
    }
    if (literal(p, end, "true") || literal(p, end, "null")) return p + 4;
    if (literal(p, end, "false")) return p + 5;
    double value;
    int integer;
    return number(p, end, &value, &integer);
}

#endif
