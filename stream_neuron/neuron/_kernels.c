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
#include "_kernel_common.h"

enum { OPT_SGD = 0, OPT_ADAGRAD = 1, OPT_ADAM = 2 };
#define ADAGRAD_EPS 1e-8
#define ADAM_BETA_1 0.9
#define ADAM_BETA_2 0.999
#define ADAM_EPS 1e-8

/* An optimizer with its penalty (optimizers.py's Rule) and its state: AdaGrad's G or Adam's m in
 * first, Adam's v in second, the L1 totals in cum and *max_cum. NULL arrays where the rule has none. */
typedef struct {
    int optimizer;
    double l2, l1;
    double *first, *second, *cum;
    double max_cum;
} Rule;

/* The weights and state after one step of the rule at count t (optimizers.py's Rule.step, in its
 * order of operations), from the loss gradient g times the features x: into pw, pf, ps, pc and
 * *pmax; nothing of the model changes. 0 when every proposed number is finite. */
/* Out of line (as is rule_commit): inlined, the rules' loops slow the plain loop by 7% even though
 * it never calls them. */
static __attribute__((noinline)) int rule_step(const Rule *rule, const double *w, const double *x, double g,
                                               double r_t, double r_next, Py_ssize_t t, Py_ssize_t d,
                                               double *pw, double *pf, double *ps, double *pc, double *pmax) {
    int finite = 1;
    double lr = r_t;
    if (rule->optimizer == OPT_ADAM) {
        lr = r_t * pow(1.0 - pow(ADAM_BETA_2, (double)(t + 1)), 0.5);
        lr /= 1.0 - pow(ADAM_BETA_1, (double)(t + 1));
    }
    for (Py_ssize_t j = 0; j < d; j++) {
        double fg = g * x[j];
        if (rule->l2 != 0.0) fg = fg + w[j] * rule->l2;
        if (rule->optimizer == OPT_SGD) {
            pw[j] = w[j] - r_t * fg;
        } else if (rule->optimizer == OPT_ADAGRAD) {
            pf[j] = rule->first[j] + fg * fg;
            pw[j] = w[j] - r_t / sqrt(pf[j] + ADAGRAD_EPS) * fg;
            finite &= isfinite(pf[j]);
        } else {
            pf[j] = ADAM_BETA_1 * rule->first[j] + (1.0 - ADAM_BETA_1) * fg;
            ps[j] = ADAM_BETA_2 * rule->second[j] + (1.0 - ADAM_BETA_2) * (fg * fg);
            pw[j] = w[j] - lr * pf[j] / (sqrt(ps[j]) + ADAM_EPS);
            finite &= isfinite(pf[j]) && isfinite(ps[j]);
        }
    }
    *pmax = rule->max_cum;
    if (rule->l1 != 0.0) { /* river's cumulative truncation, after the step, at the next rate */
        *pmax = rule->max_cum + rule->l1 * r_next;
        for (Py_ssize_t j = 0; j < d; j++) {
            double before = pw[j], c = rule->cum[j], after = before;
            if (before > 0.0) {
                after = before - (*pmax + c);
                if (after < 0.0) after = 0.0; /* np.maximum(0, x); NaN stays NaN */
            } else if (before < 0.0) {
                after = before + (*pmax - c);
                if (after > 0.0) after = 0.0;
            }
            pw[j] = after;
            pc[j] = c + (after - before);
            finite &= isfinite(pc[j]);
        }
        finite &= isfinite(*pmax);
    }
    for (Py_ssize_t j = 0; j < d && finite; j++) finite = isfinite(pw[j]);
    return finite ? 0 : -1;
}

static __attribute__((noinline)) void rule_commit(Rule *rule, double *w, const double *pw, const double *pf,
                                                  const double *ps, const double *pc, double pmax,
                                                  Py_ssize_t d) {
    memcpy(w, pw, (size_t)d * sizeof(double));
    if (rule->first != NULL) memcpy(rule->first, pf, (size_t)d * sizeof(double));
    if (rule->second != NULL) memcpy(rule->second, ps, (size_t)d * sizeof(double));
    if (rule->cum != NULL) memcpy(rule->cum, pc, (size_t)d * sizeof(double));
    rule->max_cum = pmax;
}

typedef struct {
    const double *X, *y;
    double *z_out, *out;
    signed char *refused;
    double *w, *mean, *var;
    Py_ssize_t n, d;
    int loss, scaled;
    double lr_w, lr_b, power;
    int invscaling;
} Rows;

typedef struct {
    double *xs, *xl, *new_mean, *new_var; /* scored row, learned row, the scaler after a row */
    double *pw, *pf, *ps, *pc;            /* the rule's proposed weights and state */
} Scratch;

/* The per-event loop of score_then_learn (see there); bias, t and count are updated in place. Always
 * inlined with a constant plain, so each rule gets its own copy of the loop. */
static inline __attribute__((always_inline)) Py_ssize_t learn_rows(const int plain, const Rows *a,
                                                                   const Scratch *s, Rule *rule,
                                                                   double *bias_io, Py_ssize_t *t_io,
                                                                   Py_ssize_t *count_io) {
    const double *X = a->X, *y = a->y;
    double *z_out = a->z_out, *out = a->out, *w = a->w, *mean = a->mean, *var = a->var;
    signed char *refused = a->refused;
    const Py_ssize_t n = a->n, d = a->d;
    const int loss = a->loss, scaled = a->scaled, invscaling = a->invscaling;
    const double lr_w = a->lr_w, lr_b = a->lr_b, power = a->power;
    double *xs = s->xs, *xl = s->xl, *new_mean = s->new_mean, *new_var = s->new_var;
    double *pw = s->pw, *pf = s->pf, *ps = s->ps, *pc = s->pc;
    double bias = *bias_io, pmax = rule->max_cum;
    Py_ssize_t t = *t_io, count = *count_io, learned = 0;
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
        double g = finite ? loss_gradient_one(loss, z_learn, canonical(loss, y[r])) : 0.0;
        double lr = rate(lr_w, invscaling, power, t);
        double new_bias = bias - rate(lr_b, invscaling, power, t) * g;
        finite &= isfinite(new_bias);
        if (plain) {
            finite = finite && step_stays_finite(w, learn, lr, g, d);
        } else if (finite) {
            finite = rule_step(rule, w, learn, g, lr, rate(lr_w, invscaling, power, t + 1), t, d, pw, pf, ps, pc,
                               &pmax) == 0;
        }
        if (!finite) {
            refused[r] = REFUSED_STEP;
            out[r] = NAN;
            continue;
        }
        if (!plain)
            rule_commit(rule, w, pw, pf, ps, pc, pmax, d);
        else if (g != 0.0)
            take_step(w, learn, lr, g, d);
        bias = new_bias;
        if (scaled) {
            memcpy(mean, new_mean, (size_t)d * sizeof(double));
            memcpy(var, new_var, (size_t)d * sizeof(double));
            count++;
        }
        t++;
        learned++;
    }
    *bias_io = bias;
    *t_io = t;
    *count_io = count;
    return learned;
}

/* Each in a function of its own: inlined into one large function, the loops lose their vectorised
 * form (the plain step ran 20% slower). */
static __attribute__((noinline)) Py_ssize_t learn_rows_plain(const Rows *a, const Scratch *s, Rule *rule,
                                                             double *bias, Py_ssize_t *t, Py_ssize_t *count) {
    return learn_rows(1, a, s, rule, bias, t, count);
}

static __attribute__((noinline)) Py_ssize_t learn_rows_rule(const Rows *a, const Scratch *s, Rule *rule,
                                                            double *bias, Py_ssize_t *t, Py_ssize_t *count) {
    return learn_rows(0, a, s, rule, bias, t, count);
}

/* score_then_learn(rows, labels, weights, bias, t0, lr_w, lr_b, power, invscaling, scores_out,
 *                  outputs_out, refused_out, loss, mean, var, count, optimizer, l2, l1, first, second,
 *                  cum, max_cum) -> (bias, n_learned, count, max_cum)
 *
 * optimizer -1 is plain SGD (no penalty, no state); 0, 1, 2 are SGD, AdaGrad, Adam with the l2 or l1
 * penalty and the rule's state arrays (writable, d each, None where the rule keeps none), stepped
 * as optimizers.py's Rule.step. A step is committed only when the weights, the bias and the state
 * all stay finite.
 *
 * Per row in order: the logit with the weights (and scaler statistics) from before it into
 * scores_out, the model's output into outputs_out; when the label is not NaN, one SGD step, with the
 * rate of update number t0 + (steps taken so far). mean and var (writable) are the online scaler's
 * statistics over count rows, or None without a scaler: a row is then scored with the statistics
 * before it and learned with the statistics after absorbing it. weights, mean and var change in
 * place. n_learned is -1 (non-finite feature) or -2 (bad label), with nothing changed, when the
 * batch is invalid. */
static PyObject *score_then_learn(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 23) {
        PyErr_SetString(PyExc_TypeError, "score_then_learn takes 23 arguments");
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
    int plain = PyLong_AsLong(args[16]) < 0;
    Rule rule = {(int)PyLong_AsLong(args[16]), PyFloat_AsDouble(args[17]), PyFloat_AsDouble(args[18]),
                 NULL, NULL, NULL, PyFloat_AsDouble(args[22])};
    if (PyErr_Occurred()) return NULL;

    enum { ROWS, LABELS, WEIGHTS, SCORES, OUTPUTS, REFUSED, MEAN, VAR, FIRST, SECOND, CUM, N_BUFFERS };
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
        (scaled && get_buffer(args[14], &b[VAR], 1, "d", 8, "var") < 0) ||
        (args[19] != Py_None && get_buffer(args[19], &b[FIRST], 1, "d", 8, "first") < 0) ||
        (args[20] != Py_None && get_buffer(args[20], &b[SECOND], 1, "d", 8, "second") < 0) ||
        (args[21] != Py_None && get_buffer(args[21], &b[CUM], 1, "d", 8, "cum") < 0))
        goto done;
    Py_ssize_t d = b[WEIGHTS].view.len / 8, n = b[LABELS].view.len / 8;
    if (b[ROWS].view.len / 8 != n * d || b[SCORES].view.len / 8 != n || b[OUTPUTS].view.len / 8 != n ||
        b[REFUSED].view.len != n || (scaled && (b[MEAN].view.len / 8 != d || b[VAR].view.len / 8 != d)) ||
        (b[FIRST].held && b[FIRST].view.len / 8 != d) || (b[SECOND].held && b[SECOND].view.len / 8 != d) ||
        (b[CUM].held && b[CUM].view.len / 8 != d)) {
        PyErr_SetString(PyExc_ValueError, "score_then_learn: inconsistent array sizes");
        goto done;
    }
    rule.first = b[FIRST].held ? b[FIRST].view.buf : NULL;
    rule.second = b[SECOND].held ? b[SECOND].view.buf : NULL;
    rule.cum = b[CUM].held ? b[CUM].view.buf : NULL;
    if (!plain && ((rule.optimizer != OPT_SGD && rule.first == NULL) ||
                   (rule.optimizer == OPT_ADAM && rule.second == NULL) || (rule.l1 != 0.0 && rule.cum == NULL) ||
                   rule.optimizer > OPT_ADAM)) {
        PyErr_SetString(PyExc_ValueError, "score_then_learn: the rule's state arrays are missing");
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
        /* ... and the rule's proposed weights and state */
        size_t dd = (size_t)(d > 0 ? d : 1);
        scratch = PyMem_Malloc((scaled ? 4 : 1) * dd * sizeof(double) + (plain ? 0 : 4) * dd * sizeof(double));
        if (scratch == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        double *xs = scratch, *xl = scratch + d, *new_mean = scratch + 2 * d, *new_var = scratch + 3 * d;
        double *proposed = scratch + (scaled ? 4 : 1) * dd;
        double *pw = proposed, *pf = proposed + dd, *ps = proposed + 2 * dd, *pc = proposed + 3 * dd;
        Rows rows = {X, y, z_out, out, refused, w, mean, var, n, d, loss, scaled, lr_w, lr_b, power, invscaling};
        Scratch scr = {xs, xl, new_mean, new_var, pw, pf, ps, pc};
        Py_BEGIN_ALLOW_THREADS
        /* Specialised by the constant: the plain loop stays as small as it was before the rules. */
        learned = plain ? learn_rows_plain(&rows, &scr, &rule, &bias, &t, &count)
                        : learn_rows_rule(&rows, &scr, &rule, &bias, &t, &count);
        Py_END_ALLOW_THREADS
    }
    result = Py_BuildValue("(dnnd)", bias, status == 0 ? learned : (Py_ssize_t)status, count, rule.max_cum);
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

/* The sum of the squares of a float64 array, in this thread: numpy's dot hands a long array to
 * OpenBLAS's worker threads, whose wake-ups cost a streaming process more than the sum (a 2^20-bucket
 * model's norm for the metrics took a sixth of a hashed run's main thread on two busy cores). */
static PyObject *sum_of_squares(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 1) {
        PyErr_SetString(PyExc_TypeError, "sum_of_squares takes 1 argument");
        return NULL;
    }
    Buffer b = {{0}};
    if (get_buffer(args[0], &b, 0, "d", 8, "weights") < 0) {
        release(&b, 1);
        return NULL;
    }
    const double *w = b.view.buf;
    Py_ssize_t n = b.view.len / 8, j = 0;
    double acc[4] = {0.0, 0.0, 0.0, 0.0};
    for (; j + 4 <= n; j += 4)
        for (int k = 0; k < 4; k++) acc[k] += w[j + k] * w[j + k];
    for (; j < n; j++) acc[0] += w[j] * w[j];
    release(&b, 1);
    return PyFloat_FromDouble((acc[0] + acc[1]) + (acc[2] + acc[3]));
}

static PyMethodDef methods[] = {
    {"sum_of_squares", (PyCFunction)(void (*)(void))sum_of_squares, METH_FASTCALL,
     "The sum of squares of a float64 array, in one thread."},
    {"welford", (PyCFunction)(void (*)(void))welford, METH_FASTCALL,
     "Absorb rows into running mean and variance."},
    {"score_then_learn", (PyCFunction)(void (*)(void))score_then_learn, METH_FASTCALL,
     "Per-event SGD over a batch (see the source)."},
    {"score_then_step", (PyCFunction)(void (*)(void))score_then_step, METH_FASTCALL,
     "Score a batch, then one mean-gradient step."},
    {"sparse_score_then_learn", (PyCFunction)(void (*)(void))sparse_score_then_learn, METH_FASTCALL,
     "Per-event SGD over sparse rows (see _sparse_kernel.c)."},
    {"touched_bits", (PyCFunction)(void (*)(void))touched_bits, METH_FASTCALL,
     "A bit per feature where any array is not 0 (see _touched.c)."},
    {"gather_bits", (PyCFunction)(void (*)(void))gather_bits, METH_FASTCALL,
     "An array's entries at the bits set (see _touched.c)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernels",
    "Optional compiled accelerator for stream_neuron's hot paths; numpy is the reference.", -1, methods,
};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
