/* Optional compiled accelerator for the two hot paths of stream_neuron.neuron.
 *
 * The numpy code in linear.py is the reference; these loops compute the same thing row by row and
 * the tests hold both to 1e-12 of each other and of river. Loss codes: losses.py's kernel_code. Inputs arrive
 * already validated by the caller except where a return code says otherwise; nothing here allocates
 * per event. Built by setup.py when a C compiler is present; without it the numpy path runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

enum { LOSS_LOG = 0, LOSS_HINGE = 1 };

static int get_doubles(PyObject *obj, Py_buffer *view, int writable, const char *name) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) return -1;
    if (view->itemsize != 8 || view->format == NULL || strcmp(view->format, "d") != 0) {
        PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous float64 array", name);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
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
 * loss, {-1,0,1} for the hinge), -1 for a non-finite feature, -2 for a bad label. */
static int check_batch(const double *X, const double *y, Py_ssize_t n, Py_ssize_t d, int loss) {
    for (Py_ssize_t i = 0; i < n * d; i++)
        if (!isfinite(X[i])) return -1;
    for (Py_ssize_t t = 0; t < n; t++) {
        double v = y[t];
        if (isnan(v) || v == 0.0 || v == 1.0 || (loss == LOSS_HINGE && v == -1.0)) continue;
        return -2;
    }
    return 0;
}

/* The loss's label for a checked raw label: the perceptron reads 0 as -1. */
static inline double canonical(int loss, double v) { return (loss == LOSS_HINGE && v == 0.0) ? -1.0 : v; }

/* What the model outputs for a logit: P(y=1), or the perceptron's +1/-1. */
static inline double output(int loss, double z) {
    if (loss == LOSS_LOG) return sigmoid(z);
    return z > 0.0 ? 1.0 : -1.0;
}

/* score_then_learn(rows, labels, weights, bias, rates_w, rates_b, scores_out, outputs_out, loss)
 *   -> (bias, n_labelled)
 * Per row in order: z with the weights from before it into scores_out (and the model's output into
 * outputs_out); when the label is not NaN, one SGD step. weights is updated in place. rates_* hold a
 * rate per row, or one rate for all. n_labelled is -1 (non-finite feature) or -2 (bad label), with
 * nothing changed, when the batch is invalid. */
static PyObject *score_then_learn(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "score_then_learn takes 9 arguments");
        return NULL;
    }
    Py_buffer rows, labels, weights, rates_w, rates_b, scores, outputs;
    double bias = PyFloat_AsDouble(args[3]);
    int loss = (int)PyLong_AsLong(args[8]);
    if (PyErr_Occurred()) return NULL;
    if (get_doubles(args[0], &rows, 0, "rows") < 0) return NULL;
    if (get_doubles(args[1], &labels, 0, "labels") < 0) goto release0;
    if (get_doubles(args[2], &weights, 1, "weights") < 0) goto release1;
    if (get_doubles(args[4], &rates_w, 0, "rates_w") < 0) goto release2;
    if (get_doubles(args[5], &rates_b, 0, "rates_b") < 0) goto release3;
    if (get_doubles(args[6], &scores, 1, "scores_out") < 0) goto release4;
    if (get_doubles(args[7], &outputs, 1, "outputs_out") < 0) goto release5;

    Py_ssize_t d = weights.len / 8, n = labels.len / 8;
    Py_ssize_t nw = rates_w.len / 8, nb = rates_b.len / 8;
    if (rows.len / 8 != n * d || (nw != n && nw != 1) || (nb != n && nb != 1) || scores.len / 8 != n ||
        outputs.len / 8 != n) {
        PyErr_SetString(PyExc_ValueError, "score_then_learn: inconsistent array sizes");
        goto release6;
    }
    const double *X = rows.buf, *y = labels.buf, *lw = rates_w.buf, *lb = rates_b.buf;
    double *w = weights.buf, *z_out = scores.buf, *out = outputs.buf;
    Py_ssize_t sw = nw == 1 ? 0 : 1, sb = nb == 1 ? 0 : 1, labelled = 0;
    int status = check_batch(X, y, n, d, loss);
    if (status == 0) {
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t t = 0; t < n; t++) {
            const double *x = X + t * d;
            /* river's order (dot product left to right, then the intercept): a perceptron's
             * answer at a tie z == 0 depends on it. */
            double z = 0.0;
            for (Py_ssize_t j = 0; j < d; j++) z += w[j] * x[j];
            z += bias;
            z_out[t] = z;
            out[t] = output(loss, z);
            if (isnan(y[t])) continue;
            labelled++;
            double g = loss_gradient(loss, z, canonical(loss, y[t]));
            if (g == 0.0) continue;
            double step = lw[t * sw] * g;
            for (Py_ssize_t j = 0; j < d; j++) w[j] -= step * x[j];
            bias -= lb[t * sb] * g;
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&outputs);
    PyBuffer_Release(&scores);
    PyBuffer_Release(&rates_b);
    PyBuffer_Release(&rates_w);
    PyBuffer_Release(&weights);
    PyBuffer_Release(&labels);
    PyBuffer_Release(&rows);
    return Py_BuildValue("(dn)", bias, status == 0 ? labelled : (Py_ssize_t)status);
release6: PyBuffer_Release(&outputs);
release5: PyBuffer_Release(&scores);
release4: PyBuffer_Release(&rates_b);
release3: PyBuffer_Release(&rates_w);
release2: PyBuffer_Release(&weights);
release1: PyBuffer_Release(&labels);
release0: PyBuffer_Release(&rows);
    return NULL;
}

/* score_then_step(rows, labels, weights, bias, rate_w, rate_b, scores_out, outputs_out, loss)
 *   -> (bias, n_labelled)
 * Logits (and outputs) of every row with the weights from before the batch, then one step with the
 * mean gradient over the rows whose label is not NaN. Invalid batches as in score_then_learn; a
 * non-finite logit (overflow) is also -1, so the caller can fall back to the reference path. */
static PyObject *score_then_step(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "score_then_step takes 9 arguments");
        return NULL;
    }
    Py_buffer rows, labels, weights, scores, outputs;
    double bias = PyFloat_AsDouble(args[3]);
    double rate_w = PyFloat_AsDouble(args[4]);
    double rate_b = PyFloat_AsDouble(args[5]);
    int loss = (int)PyLong_AsLong(args[8]);
    if (PyErr_Occurred()) return NULL;
    if (get_doubles(args[0], &rows, 0, "rows") < 0) return NULL;
    if (get_doubles(args[1], &labels, 0, "labels") < 0) goto release0;
    if (get_doubles(args[2], &weights, 1, "weights") < 0) goto release1;
    if (get_doubles(args[6], &scores, 1, "scores_out") < 0) goto release2;
    if (get_doubles(args[7], &outputs, 1, "outputs_out") < 0) goto release3;

    Py_ssize_t d = weights.len / 8, n = labels.len / 8;
    if (rows.len / 8 != n * d || scores.len / 8 != n || outputs.len / 8 != n) {
        PyErr_SetString(PyExc_ValueError, "score_then_step: inconsistent array sizes");
        goto release4;
    }
    const double *X = rows.buf, *y = labels.buf;
    double *w = weights.buf, *z_out = scores.buf, *out = outputs.buf;
    Py_ssize_t labelled = 0;
    int status = check_batch(X, y, n, d, loss);
    for (Py_ssize_t t = 0; t < n && status == 0; t++) {
        const double *x = X + t * d;
        /* river's order (dot product left to right, then the intercept): a perceptron's
         * answer at a tie z == 0 depends on it. */
        double z = 0.0;
        for (Py_ssize_t j = 0; j < d; j++) z += w[j] * x[j];
        z += bias;
        if (!isfinite(z)) status = -1;
        z_out[t] = z;
        out[t] = output(loss, z);
        labelled += !isnan(y[t]);
    }
    if (status == 0 && labelled > 0) {
        /* Every row's gradient needs the weights from before the step: accumulate, then step. */
        double stack[256];
        double *grad = d <= 256 ? stack : PyMem_Malloc((size_t)d * sizeof(double));
        if (grad == NULL) {
            PyErr_NoMemory();
            goto release4;
        }
        for (Py_ssize_t j = 0; j < d; j++) grad[j] = 0.0;
        double bias_grad = 0.0;
        for (Py_ssize_t t = 0; t < n; t++) {
            if (isnan(y[t])) continue;
            double g = loss_gradient(loss, z_out[t], canonical(loss, y[t]));
            const double *x = X + t * d;
            for (Py_ssize_t j = 0; j < d; j++) grad[j] += g * x[j];
            bias_grad += g;
        }
        double scale_w = rate_w / (double)labelled;
        for (Py_ssize_t j = 0; j < d; j++) w[j] -= scale_w * grad[j];
        bias -= rate_b * (bias_grad / (double)labelled);
        if (grad != stack) PyMem_Free(grad);
    }
    PyBuffer_Release(&outputs);
    PyBuffer_Release(&scores);
    PyBuffer_Release(&weights);
    PyBuffer_Release(&labels);
    PyBuffer_Release(&rows);
    return Py_BuildValue("(dn)", bias, status == 0 ? labelled : (Py_ssize_t)status);
release4: PyBuffer_Release(&outputs);
release3: PyBuffer_Release(&scores);
release2: PyBuffer_Release(&weights);
release1: PyBuffer_Release(&labels);
release0: PyBuffer_Release(&rows);
    return NULL;
}

static PyMethodDef methods[] = {
    {"score_then_learn", (PyCFunction)(void (*)(void))score_then_learn, METH_FASTCALL,
     "Per-event SGD over a batch (see module docstring)."},
    {"score_then_step", (PyCFunction)(void (*)(void))score_then_step, METH_FASTCALL,
     "Score a batch, then one mean-gradient step."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernels",
    "Optional compiled accelerator for stream_neuron's hot paths; numpy is the reference.", -1, methods,
};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
