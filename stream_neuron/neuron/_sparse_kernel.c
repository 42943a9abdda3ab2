/* The per-event step over sparse rows (open or hashed features): sparse.py's
 * score_then_learn_sparse for plain SGD, touching only the features each event has.
 *
 * sparse_score_then_learn(indptr, indices, values, scaled, labels, weights, bias, t0, lr_w, lr_b,
 *                         power, invscaling, scores_out, outputs_out, refused_out, loss,
 *                         counts, mean, var, squares) -> (bias, n_learned, squares)
 *
 * Row r's features are indices[indptr[r]:indptr[r+1]] (distinct), with values and scaled (uint8:
 * 1 for a number the scaler standardises, 0 for a one-hot value) at the same places. counts, mean
 * and var (writable, one per feature) are river's StandardScaler on dicts, or all None without a
 * scaler: a row is scored with the statistics from before it and learned with those after its
 * numbers are absorbed. weights and the statistics change in place. The guard is the dense kernel's:
 * a row whose logit or step would not be finite changes nothing and is marked in refused_out.
 * n_learned is -1 (a non-finite value), -2 (a bad label) or -3 (an index outside the weights), with
 * nothing changed, when the batch is invalid. squares is the weights' sum of squares before the rows
 * (NaN: not known), returned with each step's change to it added (the metrics' |w| without a pass
 * over every weight). */
#include "_kernel_common.h"

static int get_indices(PyObject *obj, Buffer *b, int writable, const char *name) {
    return get_entries(obj, b, writable, name, 0, NULL);
}

/* 0 for a usable batch, else the n_learned code above. */
static int check_sparse(const long long *indptr, const long long *idx, const double *x, const double *y,
                        Py_ssize_t n, Py_ssize_t nnz, Py_ssize_t d, int loss) {
    if (indptr[0] != 0 || indptr[n] != nnz) return -3;
    for (Py_ssize_t r = 0; r < n; r++)
        if (indptr[r + 1] < indptr[r]) return -3;
    for (Py_ssize_t k = 0; k < nnz; k++) {
        if (!isfinite(x[k])) return -1;
        if (idx[k] < 0 || idx[k] >= d) return -3;
    }
    return check_batch(x, y, n, 0, loss) == 0 ? 0 : -2; /* d = 0: the labels only */
}

static inline double scaled_value(double v, double mean, double var) {
    return var > 0.0 ? (v - mean) / sqrt(var) : 0.0;
}

/* w . values, then the bias, in river's order: TransformerUnion(numbers, one-hot) hands its model the
 * one-hot values (scaled 0) before the numbers, each in the event's order, and river sums left to
 * right (a hashed row is all numbers). The same order keeps a run's weights river's to the bit where
 * a large rate makes the descent amplify every rounding difference. */
static inline double sparse_logit(const double *w, const long long *j, const double *values, const unsigned char *s,
                                  Py_ssize_t m, double bias) {
    double z = 0.0;
    for (Py_ssize_t k = 0; k < m; k++)
        if (!s[k]) z += w[j[k]] * values[k];
    for (Py_ssize_t k = 0; k < m; k++)
        if (s[k]) z += w[j[k]] * values[k];
    return z + bias;
}

/* The rows of one call; bias, t are updated in place; scratch holds 4 doubles per entry of a row. */
static Py_ssize_t learn_sparse_rows(const long long *indptr, const long long *idx, const double *x,
                                    const unsigned char *sc, const double *y, Py_ssize_t n, double *w,
                                    double *bias_io, Py_ssize_t *t_io, double lr_w, double lr_b, double power,
                                    int invscaling, double *z_out, double *out, signed char *refused, int loss,
                                    long long *counts, double *mean, double *var, double *scratch,
                                    double *squares_io) {
    double bias = *bias_io, squares = *squares_io;
    Py_ssize_t t = *t_io, learned = 0;
    const int scaler = counts != NULL;
    for (Py_ssize_t r = 0; r < n; r++) {
        const Py_ssize_t a = (Py_ssize_t)indptr[r], m = (Py_ssize_t)(indptr[r + 1] - indptr[r]);
        const long long *j = idx + a;
        const double *v = x + a;
        const unsigned char *s = sc + a;
        double *scaled_learn = scratch, *new_mean = scratch + m, *new_var = scratch + 2 * m, *stepped = scratch + 3 * m;
        const double *learn = scaler ? scaled_learn : v;
        if (r + 1 < n) /* the next row's weights on their way while this row is worked (hashed buckets are
                          scattered over megabytes) */
            for (Py_ssize_t k = (Py_ssize_t)indptr[r + 1]; k < (Py_ssize_t)indptr[r + 2]; k++)
                __builtin_prefetch(w + idx[k], 1, 3);
        if (scaler) /* the values as scored: scaled with the statistics from before the row */
            for (Py_ssize_t k = 0; k < m; k++) scaled_learn[k] = s[k] ? scaled_value(v[k], mean[j[k]], var[j[k]]) : v[k];
        double z = sparse_logit(w, j, learn, s, m, bias);
        z_out[r] = z;
        if (!isfinite(z)) {
            refused[r] = REFUSED_SCORE;
            out[r] = NAN;
            continue;
        }
        refused[r] = ACCEPTED;
        out[r] = output(loss, z);
        if (isnan(y[r])) continue;
        int finite = 1;
        double z_learn = z;
        if (scaler) {
            for (Py_ssize_t k = 0; k < m; k++) {
                if (s[k]) {
                    double old = mean[j[k]], c = (double)(counts[j[k]] + 1);
                    new_mean[k] = old + (v[k] - old) / c;
                    new_var[k] = var[j[k]] + ((v[k] - old) * (v[k] - new_mean[k]) - var[j[k]]) / c;
                    finite &= isfinite(new_mean[k]) && isfinite(new_var[k]);
                    scaled_learn[k] = scaled_value(v[k], new_mean[k], new_var[k]);
                } else {
                    scaled_learn[k] = v[k];
                }
            }
            z_learn = sparse_logit(w, j, learn, s, m, bias);
            finite &= isfinite(z_learn);
        }
        double g = finite ? loss_gradient_one(loss, z_learn, canonical(loss, y[r])) : 0.0;
        double lr = rate(lr_w, invscaling, power, t); /* w -= lr * (g * x): river's SGD rounding */
        double new_bias = bias - rate(lr_b, invscaling, power, t) * g;
        finite &= isfinite(new_bias);
        double change = 0.0; /* to the sum of squares: the new weights' squares less the old ones' */
        if (finite && g != 0.0) {
            for (Py_ssize_t k = 0; k < m; k++) {
                double old = w[j[k]], next = old - lr * (g * learn[k]);
                stepped[k] = next;
                finite &= isfinite(next);
                change += next * next - old * old;
            }
        }
        if (!finite) {
            refused[r] = REFUSED_STEP;
            out[r] = NAN;
            continue;
        }
        if (g != 0.0) {
            for (Py_ssize_t k = 0; k < m; k++) w[j[k]] = stepped[k];
            squares += change;
        }
        if (scaler)
            for (Py_ssize_t k = 0; k < m; k++)
                if (s[k]) {
                    counts[j[k]] += 1;
                    mean[j[k]] = new_mean[k];
                    var[j[k]] = new_var[k];
                }
        bias = new_bias;
        t++;
        learned++;
    }
    *bias_io = bias;
    *t_io = t;
    *squares_io = squares;
    return learned;
}

PyObject *sparse_score_then_learn(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 20) {
        PyErr_SetString(PyExc_TypeError, "sparse_score_then_learn takes 20 arguments");
        return NULL;
    }
    double bias = PyFloat_AsDouble(args[6]);
    Py_ssize_t t = PyLong_AsSsize_t(args[7]);
    double lr_w = PyFloat_AsDouble(args[8]), lr_b = PyFloat_AsDouble(args[9]);
    double power = PyFloat_AsDouble(args[10]);
    int invscaling = PyObject_IsTrue(args[11]);
    int loss = (int)PyLong_AsLong(args[15]);
    int scaler = args[16] != Py_None;
    double squares = PyFloat_AsDouble(args[19]);
    if (PyErr_Occurred()) return NULL;

    enum { INDPTR, INDICES, VALUES, SCALED, LABELS, WEIGHTS, SCORES, OUTPUTS, REFUSED, COUNTS, MEAN, VAR, N };
    Buffer b[N] = {{{0}}};
    PyObject *result = NULL;
    double *scratch = NULL;
    if (get_indices(args[0], &b[INDPTR], 0, "indptr") < 0 ||
        get_indices(args[1], &b[INDICES], 0, "indices") < 0 ||
        get_buffer(args[2], &b[VALUES], 0, "d", 8, "values") < 0 ||
        get_buffer(args[3], &b[SCALED], 0, "B", 1, "scaled") < 0 ||
        get_buffer(args[4], &b[LABELS], 0, "d", 8, "labels") < 0 ||
        get_buffer(args[5], &b[WEIGHTS], 1, "d", 8, "weights") < 0 ||
        get_buffer(args[12], &b[SCORES], 1, "d", 8, "scores_out") < 0 ||
        get_buffer(args[13], &b[OUTPUTS], 1, "d", 8, "outputs_out") < 0 ||
        get_buffer(args[14], &b[REFUSED], 1, "b", 1, "refused_out") < 0 ||
        (scaler && (get_indices(args[16], &b[COUNTS], 1, "counts") < 0 ||
                    get_buffer(args[17], &b[MEAN], 1, "d", 8, "mean") < 0 ||
                    get_buffer(args[18], &b[VAR], 1, "d", 8, "var") < 0)))
        goto done;
    Py_ssize_t n = b[LABELS].view.len / 8, nnz = b[INDICES].view.len / 8, d = b[WEIGHTS].view.len / 8;
    if (b[INDPTR].view.len / 8 != n + 1 || b[VALUES].view.len / 8 != nnz || b[SCALED].view.len != nnz ||
        b[SCORES].view.len / 8 != n || b[OUTPUTS].view.len / 8 != n || b[REFUSED].view.len != n ||
        (scaler && (b[COUNTS].view.len / 8 != d || b[MEAN].view.len / 8 != d || b[VAR].view.len / 8 != d))) {
        PyErr_SetString(PyExc_ValueError, "sparse_score_then_learn: inconsistent array sizes");
        goto done;
    }
    const long long *indptr = b[INDPTR].view.buf, *idx = b[INDICES].view.buf;
    const double *x = b[VALUES].view.buf, *y = b[LABELS].view.buf;
    int status = check_sparse(indptr, idx, x, y, n, nnz, d, loss);
    Py_ssize_t learned = 0;
    if (status == 0) {
        Py_ssize_t widest = 1;
        for (Py_ssize_t r = 0; r < n; r++)
            if (indptr[r + 1] - indptr[r] > widest) widest = (Py_ssize_t)(indptr[r + 1] - indptr[r]);
        scratch = PyMem_Malloc(4 * (size_t)widest * sizeof(double));
        if (scratch == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        long long *counts = scaler ? b[COUNTS].view.buf : NULL;
        double *mean = scaler ? b[MEAN].view.buf : NULL, *var = scaler ? b[VAR].view.buf : NULL;
        Py_BEGIN_ALLOW_THREADS
        learned = learn_sparse_rows(indptr, idx, x, b[SCALED].view.buf, y, n, b[WEIGHTS].view.buf, &bias, &t,
                                    lr_w, lr_b, power, invscaling, b[SCORES].view.buf, b[OUTPUTS].view.buf,
                                    b[REFUSED].view.buf, loss, counts, mean, var, scratch, &squares);
        Py_END_ALLOW_THREADS
    }
    result = Py_BuildValue("(dnd)", bias, status == 0 ? learned : (Py_ssize_t)status, squares);
done:
    PyMem_Free(scratch);
    release(b, N);
    return result;
}
