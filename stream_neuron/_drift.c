/* The compiled path of drift.Adwin: adwin_update(errors, scalars, rows, lengths, params, found) -> count
 *
 * Feeds the float64 `errors` in order to the ADWIN window held in numpy arrays (drift.CompiledAdwin
 * owns them): `scalars` = [total, variance, width, tick, detected, n_rows], `rows` = float64
 * [ROWS, max_buckets + 1, 2] (row i: its buckets of 2^i values, oldest first, as total and variance),
 * `lengths` = int64 [ROWS] (buckets in each row), `params` = [delta, clock, max_buckets,
 * min_window_length, grace_period]. Writes the positions of the detections to int64 `found` (as
 * long as `errors`) and returns how many. The arithmetic is drift.Adwin's, operation for operation,
 * so the floats and the detections are the same; the tests hold it to that and to river's. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

#define ROWS 64 /* a window of under 2^63 values */

typedef struct {
    double *total, *variance, *width, *tick, *detected, *n_rows;
    double *rows; /* [ROWS][slots][2] */
    long long *lengths;
    Py_ssize_t slots; /* max_buckets + 1 */
    double delta, min_window, grace;
    long long clock, max_buckets;
} Window;

static double *bucket(Window *w, Py_ssize_t row, Py_ssize_t k) { return w->rows + (row * w->slots + k) * 2; }

static void reset(Window *w) {
    *w->total = *w->variance = *w->width = *w->tick = *w->detected = 0.0;
    *w->n_rows = 1.0;
    memset(w->lengths, 0, ROWS * sizeof(long long));
}

static void drop_front(Window *w, Py_ssize_t row, Py_ssize_t n) {
    Py_ssize_t left = w->lengths[row] - n;
    memmove(bucket(w, row, 0), bucket(w, row, n), (size_t)left * 2 * sizeof(double));
    w->lengths[row] = left;
}

static int insert(Window *w, double value) {
    Py_ssize_t n_rows = (Py_ssize_t)*w->n_rows;
    double *slot = bucket(w, 0, w->lengths[0]++);
    slot[0] = value;
    slot[1] = 0.0;
    *w->width += 1.0;
    double gain = 0.0;
    if (*w->width > 1.0) {
        double deviation = value - *w->total / (*w->width - 1.0);
        gain = (*w->width - 1.0) * deviation * deviation / *w->width;
    }
    *w->variance += gain;
    *w->total += value;
    for (Py_ssize_t row = 0; w->lengths[row] == w->max_buckets + 1; row++) {
        double size = (double)(1LL << row);
        double *b0 = bucket(w, row, 0), *b1 = bucket(w, row, 1);
        double t0 = b0[0], v0 = b0[1], t1 = b1[0], v1 = b1[1];
        double mean0 = t0 / size, mean1 = t1 / size;
        if (row + 1 == n_rows) {
            if (n_rows == ROWS) return -1;
            w->lengths[n_rows++] = 0;
            *w->n_rows = (double)n_rows;
        }
        double *merged = bucket(w, row + 1, w->lengths[row + 1]++);
        merged[0] = t0 + t1;
        merged[1] = v0 + v1 + size * 0.5 * (mean0 - mean1) * (mean0 - mean1);
        drop_front(w, row, 2);
    }
    return 0;
}

static void drop_oldest(Window *w) {
    Py_ssize_t last = (Py_ssize_t)*w->n_rows - 1;
    double size = (double)(1LL << last);
    double *oldest = bucket(w, last, 0);
    double total = oldest[0], variance = oldest[1];
    *w->width -= size;
    *w->total -= total;
    double mean = total / size, rest_mean = *w->total / *w->width;
    *w->variance -= variance + size * *w->width * (mean - rest_mean) * (mean - rest_mean) / (size + *w->width);
    drop_front(w, last, 1);
    if (w->lengths[last] == 0) *w->n_rows = (double)last;
}

static int differ(const Window *w, double older_n, double newer_n, double gap) {
    double log_term = log(2.0 * log(*w->width) / w->delta);
    double harmonic = 1.0 / (older_n - w->min_window + 1.0) + 1.0 / (newer_n - w->min_window + 1.0);
    double epsilon =
        sqrt(2.0 * harmonic * (*w->variance / *w->width) * log_term) + 2.0 / 3.0 * log_term * harmonic;
    return fabs(gap) > epsilon;
}

static int cut_found(const Window *w) {
    double older_n = 0.0, newer_n = *w->width, older_total = 0.0, newer_total = *w->total;
    for (Py_ssize_t row = (Py_ssize_t)*w->n_rows - 1; row >= 0; row--) {
        double size = (double)(1LL << row);
        Py_ssize_t length = w->lengths[row];
        for (Py_ssize_t k = 0; k < length; k++) {
            double total = w->rows[(row * w->slots + k) * 2];
            older_n += size;
            newer_n -= size;
            older_total += total;
            newer_total -= total;
            if (row == 0 && k == length - 1) return 0;
            if (newer_n >= w->min_window && older_n >= w->min_window &&
                differ(w, older_n, newer_n, older_total / older_n - newer_total / newer_n))
                return 1;
        }
    }
    return 0;
}

static int detect(Window *w) {
    *w->tick += 1.0;
    long long tick = (long long)*w->tick;
    if (tick % w->clock || *w->width <= w->grace) return 0;
    int detected = 0;
    while (cut_found(w)) {
        detected = 1;
        drop_oldest(w);
    }
    return detected;
}

/* A C-contiguous buffer of float64 (`integer` 0) or int64 (numpy says "l" or "q") items. */
static int as_array(PyObject *obj, Py_buffer *view, int integer, int writable) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    const char *f = view->format[0] == '<' || view->format[0] == '=' ? view->format + 1 : view->format;
    int fits = integer ? (strcmp(f, "l") == 0 || strcmp(f, "q") == 0) : strcmp(f, "d") == 0;
    if (view->itemsize != 8 || !fits) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_TypeError, "adwin_update: an array of the wrong type");
        return -1;
    }
    return 0;
}

static PyObject *adwin_update(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "adwin_update(errors, scalars, rows, lengths, params, found)");
        return NULL;
    }
    Py_buffer views[6];
    const int integer[6] = {0, 0, 0, 1, 0, 1}, writable[6] = {0, 1, 1, 1, 0, 1};
    int got = 0;
    PyObject *result = NULL;
    for (; got < 6; got++)
        if (as_array(args[got], &views[got], integer[got], writable[got]) < 0) goto done;
    const double *errors = views[0].buf, *params = views[4].buf;
    Py_ssize_t n = views[0].len / 8;
    double *scalars = views[1].buf;
    Window w = {
        scalars, scalars + 1, scalars + 2, scalars + 3, scalars + 4, scalars + 5, views[2].buf, views[3].buf,
        (Py_ssize_t)params[2] + 1, params[0], params[3], params[4], (long long)params[1], (long long)params[2],
    };
    if (views[1].len != 6 * 8 || views[3].len != ROWS * 8 || views[2].len != ROWS * w.slots * 2 * 8 ||
        views[5].len < n * 8 || w.clock < 1 || w.max_buckets < 2) {
        PyErr_SetString(PyExc_ValueError, "adwin_update: arrays of the wrong shape");
        goto done;
    }
    long long *found = views[5].buf;
    Py_ssize_t count = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (*w.detected != 0.0) reset(&w);
        if (insert(&w, errors[i]) < 0) {
            PyErr_SetString(PyExc_OverflowError, "adwin_update: the window outgrew 2^64 values");
            goto done;
        }
        *w.detected = (double)detect(&w);
        if (*w.detected != 0.0) found[count++] = i;
    }
    result = PyLong_FromSsize_t(count);
done:
    for (int i = 0; i < got; i++) PyBuffer_Release(&views[i]);
    return result;
}

static PyMethodDef methods[] = {
    {"adwin_update", (PyCFunction)(void (*)(void))adwin_update, METH_FASTCALL,
     "Errors fed to an ADWIN window held in arrays (see the source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_drift", "Optional compiled path of drift.Adwin.", -1, methods,
};

PyMODINIT_FUNC PyInit__drift(void) { return PyModule_Create(&module); }
