/* The fast paths of the feature encoders (feature_encoding.OpenVocabulary.encode and
 * FeatureHashing.encode).
 *
 * encode_known(features, index, short) -> (indices, values, scaled) | None
 *
 * An event whose every feature is already in the vocabulary, with names and string values of at most
 * `short` characters (within --max-feature-name-bytes whatever their UTF-8), finite floats, integers a
 * float64 holds, strings or booleans, and no feature given twice: its entries in the event's order,
 * exactly as the Python encoder makes them (a number under its name, a string or boolean v of f as
 * the one-hot "f_v" with 1.0). Anything else, a new name above all, gives None: the Python encoder
 * then takes the event, grows the vocabulary or names the problem. Built by setup.py when a C
 * compiler is present; without it the Python encoder does all of it. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

#define MOST_FEATURES 256 /* larger events take the Python path (its duplicate check is a set) */

static PyObject *encode_known(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 3 || !PyDict_CheckExact(args[0]) || !PyDict_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "encode_known(features: dict, index: dict, short: int)");
        return NULL;
    }
    PyObject *features = args[0], *index = args[1];
    Py_ssize_t shortest = PyLong_AsSsize_t(args[2]);
    if (shortest == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t n = PyDict_GET_SIZE(features);
    if (n > MOST_FEATURES) Py_RETURN_NONE;
    long long seen[MOST_FEATURES];
    PyObject *indices = PyList_New(n), *values = PyList_New(n), *scaled = PyList_New(n);
    if (indices == NULL || values == NULL || scaled == NULL) goto error;
    Py_ssize_t pos = 0, k = 0;
    PyObject *name, *value;
    while (PyDict_Next(features, &pos, &name, &value)) {
        if (!PyUnicode_CheckExact(name) || PyUnicode_GET_LENGTH(name) > shortest) goto slow;
        PyObject *key, *number;
        int numeric = 1;
        if (PyFloat_CheckExact(value)) {
            if (!isfinite(PyFloat_AS_DOUBLE(value))) goto slow;
            key = Py_NewRef(name);
            number = Py_NewRef(value);
        } else if (PyBool_Check(value)) {
            key = PyUnicode_FromFormat("%U_%s", name, value == Py_True ? "True" : "False");
            number = PyFloat_FromDouble(1.0);
            numeric = 0;
        } else if (PyLong_CheckExact(value)) {
            double v = PyLong_AsDouble(value);
            if (v == -1.0 && PyErr_Occurred()) { /* too large for a float64: the slow path names it */
                PyErr_Clear();
                goto slow;
            }
            key = Py_NewRef(name);
            number = PyFloat_FromDouble(v);
        } else if (PyUnicode_CheckExact(value)) {
            if (PyUnicode_GET_LENGTH(value) > shortest) goto slow;
            key = PyUnicode_FromFormat("%U_%U", name, value);
            number = PyFloat_FromDouble(1.0);
            numeric = 0;
        } else {
            goto slow;
        }
        if (key == NULL || number == NULL) {
            Py_XDECREF(key);
            Py_XDECREF(number);
            goto error;
        }
        PyObject *i = PyDict_GetItemWithError(index, key); /* borrowed */
        Py_DECREF(key);
        if (i == NULL) {
            Py_DECREF(number);
            if (PyErr_Occurred()) goto error;
            goto slow; /* a new name */
        }
        long long at = PyLong_AsLongLong(i);
        if (at == -1 && PyErr_Occurred()) {
            Py_DECREF(number);
            goto error;
        }
        for (Py_ssize_t j = 0; j < k; j++)
            if (seen[j] == at) { /* one feature twice: the slow path names it */
                Py_DECREF(number);
                goto slow;
            }
        seen[k] = at;
        PyList_SET_ITEM(indices, k, Py_NewRef(i));
        PyList_SET_ITEM(values, k, number);
        PyList_SET_ITEM(scaled, k, PyBool_FromLong(numeric));
        k++;
    }
    return Py_BuildValue("(NNN)", indices, values, scaled);
slow:
    Py_DECREF(indices);
    Py_DECREF(values);
    Py_DECREF(scaled);
    Py_RETURN_NONE;
error:
    Py_XDECREF(indices);
    Py_XDECREF(values);
    Py_XDECREF(scaled);
    return NULL;
}


/* hash_features(features, n, seed, murmur, named, short, in_use) -> (buckets, values, scaled, fresh)
 *                                                                   | None
 *
 * FeatureHashing.encode's fast path: each feature's token hashed by `murmur` (mmh3.hash, the kept
 * library: called, never reimplemented), a numeric feature's bucket and sign taken from `named` (the
 * name -> (bucket, negative) cache, filled there, up to NAME_CACHE names) when it is there; values
 * summed per bucket in first-seen order; `fresh`: the buckets not yet marked in `in_use` (a bytearray of
 * n, read only). None for anything the Python encoder must see (a value that
 * is not a finite float, an integer a float64 holds, a string or a boolean; a long name or value;
 * more than MOST_FEATURES features). */
#define NAME_CACHE 65536

static int token_bucket(PyObject *murmur, PyObject *token, PyObject *seed, long long n, long long *bucket,
                        int *negative) {
    PyObject *call_args[2] = {token, seed};
    PyObject *h = PyObject_Vectorcall(murmur, call_args, 2, NULL);
    if (h == NULL) return -1;
    long long value = PyLong_AsLongLong(h);
    Py_DECREF(h);
    if (value == -1 && PyErr_Occurred()) return -1;
    *bucket = ((value % n) + n) % n; /* Python's floored modulo */
    *negative = value < 0;
    return 0;
}

static PyObject *hash_features(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 7 || !PyDict_CheckExact(args[0]) || !PyDict_CheckExact(args[4]) ||
        !PyByteArray_CheckExact(args[6])) {
        PyErr_SetString(PyExc_TypeError, "hash_features(features, n, seed, murmur, named, short, in_use)");
        return NULL;
    }
    PyObject *features = args[0], *seed = args[2], *murmur = args[3], *named = args[4];
    long long n = PyLong_AsLongLong(args[1]);
    Py_ssize_t shortest = PyLong_AsSsize_t(args[5]);
    if (PyErr_Occurred()) return NULL;
    if (PyDict_GET_SIZE(features) > MOST_FEATURES || n <= 0 || PyByteArray_GET_SIZE(args[6]) != n) Py_RETURN_NONE;
    const char *in_use = PyByteArray_AS_STRING(args[6]);
    long long buckets[MOST_FEATURES];
    double sums[MOST_FEATURES];
    Py_ssize_t m = 0, pos = 0;
    PyObject *name, *value;
    while (PyDict_Next(features, &pos, &name, &value)) {
        if (!PyUnicode_CheckExact(name) || PyUnicode_GET_LENGTH(name) > shortest) Py_RETURN_NONE;
        double amount;
        long long bucket;
        int negative;
        if (PyUnicode_CheckExact(value)) {
            if (PyUnicode_GET_LENGTH(value) > shortest) Py_RETURN_NONE;
            PyObject *token = PyUnicode_FromFormat("%U=%U", name, value);
            if (token == NULL) return NULL;
            int failed = token_bucket(murmur, token, seed, n, &bucket, &negative);
            Py_DECREF(token);
            if (failed) return NULL;
            amount = 1.0;
        } else {
            if (PyFloat_CheckExact(value)) {
                amount = PyFloat_AS_DOUBLE(value);
                if (!isfinite(amount)) Py_RETURN_NONE;
            } else if (PyBool_Check(value)) {
                amount = value == Py_True ? 1.0 : 0.0;
            } else if (PyLong_CheckExact(value)) {
                amount = PyLong_AsDouble(value);
                if (amount == -1.0 && PyErr_Occurred()) {
                    PyErr_Clear();
                    Py_RETURN_NONE;
                }
            } else {
                Py_RETURN_NONE;
            }
            PyObject *cached = PyDict_GetItemWithError(named, name); /* borrowed */
            if (cached != NULL && PyTuple_CheckExact(cached) && PyTuple_GET_SIZE(cached) == 2) {
                bucket = PyLong_AsLongLong(PyTuple_GET_ITEM(cached, 0));
                negative = PyObject_IsTrue(PyTuple_GET_ITEM(cached, 1));
                if (PyErr_Occurred()) return NULL;
            } else {
                if (PyErr_Occurred()) return NULL;
                if (token_bucket(murmur, name, seed, n, &bucket, &negative)) return NULL;
                if (PyDict_GET_SIZE(named) < NAME_CACHE) {
                    PyObject *entry = Py_BuildValue("(LO)", bucket, negative ? Py_True : Py_False);
                    if (entry == NULL || PyDict_SetItem(named, name, entry) < 0) {
                        Py_XDECREF(entry);
                        return NULL;
                    }
                    Py_DECREF(entry);
                }
            }
        }
        double signed_amount = negative ? -amount : amount;
        Py_ssize_t j = 0;
        while (j < m && buckets[j] != bucket) j++;
        if (j == m) {
            buckets[m] = bucket;
            sums[m] = 0.0;
            m++;
        }
        sums[j] += signed_amount;
    }
    PyObject *out_buckets = PyList_New(m), *out_values = PyList_New(m), *out_scaled = PyList_New(m);
    PyObject *fresh = PyList_New(0);
    if (out_buckets == NULL || out_values == NULL || out_scaled == NULL || fresh == NULL) goto error;
    for (Py_ssize_t j = 0; j < m; j++) {
        PyObject *b = PyLong_FromLongLong(buckets[j]), *v = PyFloat_FromDouble(sums[j]);
        if (b == NULL || v == NULL) {
            Py_XDECREF(b);
            Py_XDECREF(v);
            goto error;
        }
        PyList_SET_ITEM(out_buckets, j, b);
        PyList_SET_ITEM(out_values, j, v);
        PyList_SET_ITEM(out_scaled, j, Py_NewRef(Py_True));
        if (!in_use[buckets[j]] && PyList_Append(fresh, b) < 0) goto error;
    }
    return Py_BuildValue("(NNNN)", out_buckets, out_values, out_scaled, fresh);
error:
    Py_XDECREF(fresh);
    Py_XDECREF(out_buckets);
    Py_XDECREF(out_values);
    Py_XDECREF(out_scaled);
    return NULL;
}

static PyMethodDef methods[] = {
    {"encode_known", (PyCFunction)(void (*)(void))encode_known, METH_FASTCALL,
     "An event of known features encoded, or None (see the source)."},
    {"hash_features", (PyCFunction)(void (*)(void))hash_features, METH_FASTCALL,
     "An event's features hashed, or None (see the source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_encode", "Optional compiled fast path of the open vocabulary's encoding.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__encode(void) { return PyModule_Create(&module); }
