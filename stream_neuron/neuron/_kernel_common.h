/* What the compiled kernels share (_kernels.c, _sparse_kernel.c, _touched.c): buffers, the losses, the guards.
 * Everything is static inline: each file takes what it uses. */
#ifndef STREAM_NEURON_KERNEL_COMMON_H
#define STREAM_NEURON_KERNEL_COMMON_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>

enum { LOSS_LOG = 0, LOSS_PERCEPTRON = 1 };
enum { ACCEPTED = 0, REFUSED_SCORE = 1, REFUSED_STEP = 2 };

typedef struct {
    Py_buffer view;
    int held;
} Buffer;

static inline int get_buffer(PyObject *obj, Buffer *b, int writable, const char *format, Py_ssize_t itemsize,
                      const char *name) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    b->held = 0;
    if (PyObject_GetBuffer(obj, &b->view, flags) < 0) return -1;
    b->held = 1;
    if (b->view.itemsize != itemsize || b->view.format == NULL || strcmp(b->view.format, format) != 0) {
        PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous array of %s", name, format);
        return -1;
    }
    return 0;
}

/* An array of 8-byte entries: int64 ('l' or 'q'), or float64 ('d') too when `floats` (then *is_float
 * says which it is). */
static inline int get_entries(PyObject *obj, Buffer *b, int writable, const char *name, int floats, int *is_float) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    b->held = 0;
    if (PyObject_GetBuffer(obj, &b->view, flags) < 0) return -1;
    b->held = 1;
    const char *f = b->view.format;
    int is_int = f != NULL && b->view.itemsize == 8 && (!strcmp(f, "l") || !strcmp(f, "q"));
    int is_double = floats && f != NULL && b->view.itemsize == 8 && !strcmp(f, "d");
    if (!is_int && !is_double) {
        PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous array of %s", name,
                     floats ? "float64 or int64" : "int64");
        return -1;
    }
    if (is_float != NULL) *is_float = is_double;
    return 0;
}

static inline void release(Buffer *buffers, int n) {
    for (int i = 0; i < n; i++)
        if (buffers[i].held) PyBuffer_Release(&buffers[i].view);
}

static inline double sigmoid(double z) {
    if (z >= 0) return 1.0 / (1.0 + exp(-z));
    double e = exp(z);
    return e / (1.0 + e);
}

/* The loss's derivative at z for a batch's mean (river's learn_many). */
static inline double loss_gradient(int loss, double z, double label) {
    if (loss == LOSS_LOG) return sigmoid(z) - label;
    return label * z <= 0.0 ? -label : 0.0;
}

/* The loss's derivative at z for one event's step, as river's learn_one takes it (optim.losses.Log:
 * beyond a margin of 18 it is e^-m or exactly 1). sigmoid(z) - label differs from it by up to 1.5e-8
 * where a model is confidently wrong, which on unscaled features moves weights past 1e-9 of river's. */
static inline double loss_gradient_one(int loss, double z, double label) {
    if (loss != LOSS_LOG) return loss_gradient(loss, z, label);
    double sign = label == 1.0 ? 1.0 : -1.0, margin = sign * z;
    if (margin > 18.0) return -sign * exp(-margin);
    if (margin < -18.0) return -sign;
    return -sign / (exp(margin) + 1.0);
}

/* 0 when every feature is finite and every label is NaN or in the loss's domain ({0,1} for the log
 * loss, {-1,0,1} for the perceptron), -1 for a non-finite feature, -2 for a bad label. */
static inline int check_batch(const double *X, const double *y, Py_ssize_t n, Py_ssize_t d, int loss) {
    for (Py_ssize_t i = 0; i < n * d; i++)
        if (!isfinite(X[i])) return -1;
    for (Py_ssize_t t = 0; t < n; t++) {
        double v = y[t];
        if (isnan(v) || v == 0.0 || v == 1.0 || (loss == LOSS_PERCEPTRON && v == -1.0)) continue;
        return -2;
    }
    return 0;
}

/* The loss's label for a checked raw label: the perceptron reads 0 as -1. */
static inline double canonical(int loss, double v) {
    return (loss == LOSS_PERCEPTRON && v == 0.0) ? -1.0 : v;
}

/* What the model outputs for a logit: P(y=1), or the perceptron's +1/-1. */
static inline double output(int loss, double z) {
    if (loss == LOSS_LOG) return sigmoid(z);
    return z > 0.0 ? 1.0 : -1.0;
}

/* x scaled by running statistics (river's StandardScaler: zero variance scales to 0). */
static inline void standardize(const double *x, const double *mean, const double *var, double *out,
                               Py_ssize_t d) {
    for (Py_ssize_t j = 0; j < d; j++) out[j] = var[j] > 0.0 ? (x[j] - mean[j]) / sqrt(var[j]) : 0.0;
}

/* river's order: the dot product left to right, then the intercept (a perceptron's answer at a tie
 * z == 0 depends on it). */
static inline double logit(const double *w, const double *x, double bias, Py_ssize_t d) {
    double z = 0.0;
    for (Py_ssize_t j = 0; j < d; j++) z += w[j] * x[j];
    return z + bias;
}

static inline double rate(double learning_rate, int invscaling, double power, Py_ssize_t t) {
    return invscaling ? learning_rate / pow((double)t + 1.0, power) : learning_rate;
}

/* The plain SGD step w -= lr * (g * x), rounded as river's SGD rounds it (the gradient g * x first),
 * as two loops the compiler vectorises: the check has no early exit and (like the step) says its
 * arrays do not overlap, which x never does with w (x is a row of the batch or scratch).
 * fabs(v) <= DBL_MAX is isfinite(v), NaN included. */
static inline int step_stays_finite(const double *restrict w, const double *restrict x, double lr, double g,
                                    Py_ssize_t d) {
    int finite = 1;
    for (Py_ssize_t j = 0; j < d; j++) finite &= fabs(w[j] - lr * (g * x[j])) <= DBL_MAX;
    return finite;
}

static inline void take_step(double *restrict w, const double *restrict x, double lr, double g, Py_ssize_t d) {
    for (Py_ssize_t j = 0; j < d; j++) w[j] -= lr * (g * x[j]);
}

PyObject *sparse_score_then_learn(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *touched_bits(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *gather_bits(PyObject *self, PyObject *const *args, Py_ssize_t nargs);

#endif
