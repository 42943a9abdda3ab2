/* Optional compiled accelerator for the two hot paths of stream_neuron.neuron.
 *
 * The numpy code in linear.py is the reference; these loops compute the same thing row by row and
 * the tests hold both to 1e-12 of each other and of river. Loss codes: losses.py's kernel_code.
 * Inputs arrive already validated by the caller except where a return code says otherwise; nothing
 * here allocates per event. Built by setup.py when a C compiler is present; without it the numpy
 * path runs.
 *
 * The guard of both paths: a row whose logit is not finite, or whose step would leave the weights,
 * the bias or the scaler's statistics non-finite, changes nothing and is marked in refused_out
 * (REFUSED_SCORE or REFUSED_STEP); its output is NaN.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

enum { LOSS_LOG = 0, LOSS_PERCEPTRON = 1 };
enum { ACCEPTED = 0, REFUSED_SCORE = 1, REFUSED_STEP = 2 };

typedef struct {
    Py_buffer view;
    int held;
} Buffer;

static int get_buffer(PyObject *obj, Buffer *b, int writable, const char *format, Py_ssize_t itemsize,
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

static void release(Buffer *buffers, int n) {
    for (int i = 0; i < n; i++)
        if (buffers[i].held) PyBuffer_Release(&buffers[i].view);
}

static inline double sigmoid(double z) {
    if (z >= 0) return 1.0 / (1.0 + exp(-z));
    double e = exp(z);
    return e / (1.0 + e);
}

static inline double loss_gradient(int loss, double z, double label) {
    if (loss == LOSS_LOG) return sigmoid(z) - label;
    return label * z <= 0.0 ? -label : 0.0;
}

/* 0 when every feature is finite and every label is NaN or in the loss's domain ({0,1} for the log
 * loss, {-1,0,1} for the perceptron), -1 for a non-finite feature, -2 for a bad label. */
static int check_batch(const double *X, const double *y, Py_ssize_t n, Py_ssize_t d, int loss) {
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

/* score_then_learn(rows, labels, weights, bias, t0, lr_w, lr_b, power, invscaling, scores_out,
 *                  outputs_out, refused_out, loss, mean, var, count) -> (bias, n_learned, count)
 *
 * Per row in order: the logit with the weights (and scaler statistics) from before it into
 * scores_out, the model's output into outputs_out; when the label is not NaN, one SGD step, with the
 * rate of update number t0 + (steps taken so far). mean and var (writable) are the online scaler's
 * statistics over count rows, or None without a scaler: a row is then scored with the statistics
 * before it and learned with the statistics after absorbing it. weights, mean and var change in
 * place. n_learned is -1 (non-finite feature) or -2 (bad label), with nothing changed, when the
 * batch is invalid. */
static PyObject *score_then_learn(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 16) {
        PyErr_SetString(PyExc_TypeError, "score_then_learn takes 16 arguments");
        return NULL;
    }
    double bias = PyFloat_AsDouble(args[3]);
    Py_ssize_t t = PyLong_AsSsize_t(args[4]);
    double lr_w = PyFloat_AsDouble(args[5]), lr_b = PyFloat_AsDouble(args[6]);
    double power = PyFloat_AsDouble(args[7]);
    int invscaling = PyObject_IsTrue(args[8]);
    int loss = (int)PyLong_AsLong(args[12]);
    Py_ssize_t count = PyLong_AsSsize_t(args[15]);
    int scaled = args[13] != Py_None;
    if (PyErr_Occurred()) return NULL;

    enum { ROWS, LABELS, WEIGHTS, SCORES, OUTPUTS, REFUSED, MEAN, VAR, N_BUFFERS };
    Buffer b[N_BUFFERS] = {{{0}}};
    PyObject *result = NULL;
    double *scratch = NULL;
    if (get_buffer(args[0], &b[ROWS], 0, "d", 8, "rows") < 0 ||
        get_buffer(args[1], &b[LABELS], 0, "d", 8, "labels") < 0 ||
        get_buffer(args[2], &b[WEIGHTS], 1, "d", 8, "weights") < 0 ||
        get_buffer(args[9], &b[SCORES], 1, "d", 8, "scores_out") < 0 ||
        get_buffer(args[10], &b[OUTPUTS], 1, "d", 8, "outputs_out") < 0 ||
        get_buffer(args[11], &b[REFUSED], 1, "b", 1, "refused_out") < 0 ||
        (scaled && get_buffer(args[13], &b[MEAN], 1, "d", 8, "mean") < 0) ||
        (scaled && get_buffer(args[14], &b[VAR], 1, "d", 8, "var") < 0))
        goto done;
    Py_ssize_t d = b[WEIGHTS].view.len / 8, n = b[LABELS].view.len / 8;
    if (b[ROWS].view.len / 8 != n * d || b[SCORES].view.len / 8 != n || b[OUTPUTS].view.len / 8 != n ||
        b[REFUSED].view.len != n || (scaled && (b[MEAN].view.len / 8 != d || b[VAR].view.len / 8 != d))) {
        PyErr_SetString(PyExc_ValueError, "score_then_learn: inconsistent array sizes");
        goto done;
    }
    const double *X = b[ROWS].view.buf, *y = b[LABELS].view.buf;
    double *w = b[WEIGHTS].view.buf, *z_out = b[SCORES].view.buf, *out = b[OUTPUTS].view.buf;
    signed char *refused = b[REFUSED].view.buf;
    double *mean = scaled ? b[MEAN].view.buf : NULL, *var = scaled ? b[VAR].view.buf : NULL;
    Py_ssize_t learned = 0;
    int status = check_batch(X, y, n, d, loss);
    if (status == 0) {
        /* scored row, learned row, and the scaler's statistics after absorbing a row */
        scratch = PyMem_Malloc((size_t)(scaled ? 4 : 1) * (size_t)(d > 0 ? d : 1) * sizeof(double));
        if (scratch == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        double *xs = scratch, *xl = scratch + d, *new_mean = scratch + 2 * d, *new_var = scratch + 3 * d;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t r = 0; r < n; r++) {
            const double *x = X + r * d;
            const double *scored = x, *learn = x;
            if (scaled) {
                standardize(x, mean, var, xs, d);
                scored = xs;
            }
            double z = logit(w, scored, bias, d);
            z_out[r] = z;
            if (!isfinite(z)) {
                refused[r] = REFUSED_SCORE;
                out[r] = NAN;
                continue;
            }
            refused[r] = ACCEPTED;
            out[r] = output(loss, z);
            if (isnan(y[r])) continue;
            double z_learn = z, c = (double)(count + 1);
            int finite = 1;
            if (scaled) {
                for (Py_ssize_t j = 0; j < d; j++) {
                    double old = mean[j];
                    new_mean[j] = old + (x[j] - old) / c;
                    new_var[j] = var[j] + ((x[j] - old) * (x[j] - new_mean[j]) - var[j]) / c;
                    finite &= isfinite(new_mean[j]) && isfinite(new_var[j]);
                }
                standardize(x, new_mean, new_var, xl, d);
                learn = xl;
                z_learn = logit(w, learn, bias, d);
                finite &= isfinite(z_learn);
            }
            double g = finite ? loss_gradient(loss, z_learn, canonical(loss, y[r])) : 0.0;
            double step = rate(lr_w, invscaling, power, t) * g;
            double new_bias = bias - rate(lr_b, invscaling, power, t) * g;
            finite &= isfinite(new_bias);
            for (Py_ssize_t j = 0; j < d && finite; j++) finite = isfinite(w[j] - step * learn[j]);
            if (!finite) {
                refused[r] = REFUSED_STEP;
                out[r] = NAN;
                continue;
            }
            if (g != 0.0)
                for (Py_ssize_t j = 0; j < d; j++) w[j] -= step * learn[j];
            bias = new_bias;
            if (scaled) {
                memcpy(mean, new_mean, (size_t)d * sizeof(double));
                memcpy(var, new_var, (size_t)d * sizeof(double));
                count++;
            }
            t++;
            learned++;
        }
        Py_END_ALLOW_THREADS
    }
    result = Py_BuildValue("(dnn)", bias, status == 0 ? learned : (Py_ssize_t)status, count);
done:
    PyMem_Free(scratch);
    release(b, N_BUFFERS);
    return result;
}

/* score_then_step(rows, labels, weights, bias, rate_w, rate_b, scores_out, outputs_out, refused_out,
 *                 loss) -> (bias, n_learned)
 * Logits (and outputs) of every row with the weights from before the batch, then one step with the
 * mean gradient over the rows whose label is not NaN and whose logit is finite (the others are marked
 * REFUSED_SCORE). Invalid batches as in score_then_learn; -3 when the step itself would not be finite
 * (nothing changed, the weights and bias are as before): the caller finds the rows to blame. */
static PyObject *score_then_step(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError, "score_then_step takes 10 arguments");
        return NULL;
    }
    double bias = PyFloat_AsDouble(args[3]);
    double rate_w = PyFloat_AsDouble(args[4]);
    double rate_b = PyFloat_AsDouble(args[5]);
    int loss = (int)PyLong_AsLong(args[9]);
    if (PyErr_Occurred()) return NULL;

    enum { ROWS, LABELS, WEIGHTS, SCORES, OUTPUTS, REFUSED, N_BUFFERS };
    Buffer b[N_BUFFERS] = {{{0}}};
    PyObject *result = NULL;
    double *grad = NULL;
    if (get_buffer(args[0], &b[ROWS], 0, "d", 8, "rows") < 0 ||
        get_buffer(args[1], &b[LABELS], 0, "d", 8, "labels") < 0 ||
        get_buffer(args[2], &b[WEIGHTS], 1, "d", 8, "weights") < 0 ||
        get_buffer(args[6], &b[SCORES], 1, "d", 8, "scores_out") < 0 ||
        get_buffer(args[7], &b[OUTPUTS], 1, "d", 8, "outputs_out") < 0 ||
        get_buffer(args[8], &b[REFUSED], 1, "b", 1, "refused_out") < 0)
        goto done;
    Py_ssize_t d = b[WEIGHTS].view.len / 8, n = b[LABELS].view.len / 8;
    if (b[ROWS].view.len / 8 != n * d || b[SCORES].view.len / 8 != n || b[OUTPUTS].view.len / 8 != n ||
        b[REFUSED].view.len != n) {
        PyErr_SetString(PyExc_ValueError, "score_then_step: inconsistent array sizes");
        goto done;
    }
    const double *X = b[ROWS].view.buf, *y = b[LABELS].view.buf;
    double *w = b[WEIGHTS].view.buf, *z_out = b[SCORES].view.buf, *out = b[OUTPUTS].view.buf;
    signed char *refused = b[REFUSED].view.buf;
    Py_ssize_t labelled = 0;
    int status = check_batch(X, y, n, d, loss);
    for (Py_ssize_t r = 0; r < n && status == 0; r++) {
        double z = logit(w, X + r * d, bias, d);
        z_out[r] = z;
        if (!isfinite(z)) {
            refused[r] = REFUSED_SCORE;
            out[r] = NAN;
            continue;
        }
        refused[r] = ACCEPTED;
        out[r] = output(loss, z);
        labelled += !isnan(y[r]);
    }
    if (status == 0 && labelled > 0) {
        /* Every row's gradient needs the weights from before the step: accumulate, then step. */
        grad = PyMem_Malloc((size_t)(d > 0 ? d : 1) * sizeof(double));
        if (grad == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        for (Py_ssize_t j = 0; j < d; j++) grad[j] = 0.0;
        double bias_grad = 0.0;
        for (Py_ssize_t r = 0; r < n; r++) {
            if (isnan(y[r]) || refused[r] != ACCEPTED) continue;
            double g = loss_gradient(loss, z_out[r], canonical(loss, y[r]));
            const double *x = X + r * d;
            for (Py_ssize_t j = 0; j < d; j++) grad[j] += g * x[j];
            bias_grad += g;
        }
        double scale_w = rate_w / (double)labelled;
        double new_bias = bias - rate_b * (bias_grad / (double)labelled);
        int finite = isfinite(new_bias);
        for (Py_ssize_t j = 0; j < d && finite; j++) finite = isfinite(w[j] - scale_w * grad[j]);
        if (finite) {
            for (Py_ssize_t j = 0; j < d; j++) w[j] -= scale_w * grad[j];
            bias = new_bias;
        } else {
            status = -3;
        }
    }
    result = Py_BuildValue("(dn)", bias, status == 0 ? labelled : (Py_ssize_t)status);
done:
    PyMem_Free(grad);
    release(b, N_BUFFERS);
    return result;
}

/* welford(rows, mean, var, count) -> count
 * Absorb every row into the running mean and population variance, in order (river's recurrence, as
 * scaler.py's absorbed): the statistics an online scaler has after seeing these rows. */
static PyObject *welford(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "welford takes 4 arguments");
        return NULL;
    }
    Py_ssize_t count = PyLong_AsSsize_t(args[3]);
    if (PyErr_Occurred()) return NULL;
    enum { ROWS, MEAN, VAR, N_BUFFERS };
    Buffer b[N_BUFFERS] = {{{0}}};
    PyObject *result = NULL;
    if (get_buffer(args[0], &b[ROWS], 0, "d", 8, "rows") < 0 ||
        get_buffer(args[1], &b[MEAN], 1, "d", 8, "mean") < 0 ||
        get_buffer(args[2], &b[VAR], 1, "d", 8, "var") < 0)
        goto done;
    Py_ssize_t d = b[MEAN].view.len / 8;
    if (b[VAR].view.len / 8 != d || d == 0 || b[ROWS].view.len / 8 % d != 0) {
        PyErr_SetString(PyExc_ValueError, "welford: inconsistent array sizes");
        goto done;
    }
    Py_ssize_t n = b[ROWS].view.len / 8 / d;
    const double *X = b[ROWS].view.buf;
    double *mean = b[MEAN].view.buf, *var = b[VAR].view.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < n; r++) {
        const double *x = X + r * d;
        double c = (double)(++count);
        for (Py_ssize_t j = 0; j < d; j++) {
            double old = mean[j];
            mean[j] = old + (x[j] - old) / c;
            var[j] = var[j] + ((x[j] - old) * (x[j] - mean[j]) - var[j]) / c;
        }
    }
    Py_END_ALLOW_THREADS
    result = PyLong_FromSsize_t(count);
done:
    release(b, N_BUFFERS);
    return result;
}

static PyMethodDef methods[] = {
    {"welford", (PyCFunction)(void (*)(void))welford, METH_FASTCALL,
     "Absorb rows into running mean and variance."},
    {"score_then_learn", (PyCFunction)(void (*)(void))score_then_learn, METH_FASTCALL,
     "Per-event SGD over a batch (see the source)."},
    {"score_then_step", (PyCFunction)(void (*)(void))score_then_step, METH_FASTCALL,
     "Score a batch, then one mean-gradient step."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernels",
    "Optional compiled accelerator for stream_neuron's hot paths; numpy is the reference.", -1, methods,
};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
