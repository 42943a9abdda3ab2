/* The fast paths of the feature encoders (feature_encoding.OpenVocabulary.encode,
 * FeatureHashing.encode and the chunk's rows of feature_encoding.sparse_rows).
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
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

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


/* MurmurHash3 (x86, 32 bits) of the mmh3 library, the kept implementation river's FeatureHasher
 * agrees with: bound by bind_murmur to the function mmh3's own extension exports, so a token is
 * hashed without a Python call; feature_hashing checks the binding against mmh3.hash before it
 * trusts it. Unbound (another build of mmh3, no dlopen), every token goes through `python_murmur`
 * (mmh3.hash itself): the same hashes at a Python call each. */
typedef void (*murmur32_fn)(const void *key, Py_ssize_t len, uint32_t seed, void *out);
static murmur32_fn native_murmur = NULL;
static PyObject *python_murmur = NULL;

static PyObject *bind_murmur(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2 || !PyCallable_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "bind_murmur(path of mmh3's extension | None, mmh3.hash)");
        return NULL;
    }
    Py_XSETREF(python_murmur, Py_NewRef(args[1]));
    native_murmur = NULL;
    if (args[0] != Py_None) {
        const char *path = PyUnicode_AsUTF8(args[0]);
        if (path == NULL) return NULL;
        void *library = dlopen(path, RTLD_NOW | RTLD_NOLOAD); /* already loaded by `import mmh3` */
        if (library != NULL) native_murmur = (murmur32_fn)dlsym(library, "murmurhash3_x86_32");
    }
    return PyBool_FromLong(native_murmur != NULL);
}

/* The signed hash of `len` bytes at `key` (-1 with an exception set only on the Python path). */
static int hash_bytes(const char *key, Py_ssize_t len, uint32_t seed, long long *hash) {
    if (native_murmur != NULL) {
        uint32_t out[4] = {0, 0, 0, 0}; /* room for more than the 32 bits, whatever was bound */
        native_murmur(key, len, seed, out);
        *hash = (int32_t)out[0];
        return 0;
    }
    if (python_murmur == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "bind_murmur was not called");
        return -1;
    }
    PyObject *token = PyBytes_FromStringAndSize(key, len), *seeded = PyLong_FromUnsignedLong(seed);
    PyObject *h = NULL;
    if (token != NULL && seeded != NULL) {
        PyObject *call_args[2] = {token, seeded};
        h = PyObject_Vectorcall(python_murmur, call_args, 2, NULL);
    }
    Py_XDECREF(token);
    Py_XDECREF(seeded);
    if (h == NULL) return -1;
    *hash = PyLong_AsLongLong(h);
    Py_DECREF(h);
    return *hash == -1 && PyErr_Occurred() ? -1 : 0;
}

static PyObject *hash_token(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2 || !PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "hash_token(token: bytes, seed: int)");
        return NULL;
    }
    unsigned long seed = PyLong_AsUnsignedLong(args[1]);
    if (seed == (unsigned long)-1 && PyErr_Occurred()) return NULL;
    long long h;
    if (hash_bytes(PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]), (uint32_t)seed, &h)) return NULL;
    return PyLong_FromLongLong(h);
}

/* hash_features(features, n, seed, short, in_use, room) -> (buckets, values, scaled, fresh) | None
 *
 * FeatureHashing.encode's fast path: the token of a number is its name's UTF-8, of a string v of f
 * the UTF-8 of "f=v"; values summed per bucket in first-seen order, signed by the hash. The buckets
 * not yet marked in `in_use` (a bytearray of n) are marked there when there are at most `room` of
 * them, and `fresh` is how many (a negative `room`: none are marked or counted, a scorer's view). None for anything the Python encoder must see: a value that is not
 * a finite float, an integer a float64 holds, a string or a boolean; a name or value over `short`
 * characters; more than MOST_FEATURES features; more fresh buckets than `room` (nothing marked). */
#define LONGEST_TOKEN 8192

static PyObject *hash_features(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 6 || !PyDict_CheckExact(args[0]) || !PyByteArray_CheckExact(args[4])) {
        PyErr_SetString(PyExc_TypeError, "hash_features(features, n, seed, short, in_use, room)");
        return NULL;
    }
    PyObject *features = args[0];
    long long n = PyLong_AsLongLong(args[1]);
    unsigned long seed = PyLong_AsUnsignedLong(args[2]);
    Py_ssize_t shortest = PyLong_AsSsize_t(args[3]);
    Py_ssize_t room = PyLong_AsSsize_t(args[5]);
    if (PyErr_Occurred()) return NULL;
    if (PyDict_GET_SIZE(features) > MOST_FEATURES || n <= 0 || PyByteArray_GET_SIZE(args[4]) != n) Py_RETURN_NONE;
    char *in_use = PyByteArray_AS_STRING(args[4]);
    long long buckets[MOST_FEATURES];
    double sums[MOST_FEATURES];
    char token[LONGEST_TOKEN];
    Py_ssize_t m = 0, pos = 0;
    PyObject *name, *value;
    while (PyDict_Next(features, &pos, &name, &value)) {
        if (!PyUnicode_CheckExact(name) || PyUnicode_GET_LENGTH(name) > shortest) Py_RETURN_NONE;
        Py_ssize_t name_len;
        const char *name_utf8 = PyUnicode_AsUTF8AndSize(name, &name_len);
        if (name_utf8 == NULL) {
            PyErr_Clear(); /* a lone surrogate: the Python path names it */
            Py_RETURN_NONE;
        }
        double amount;
        long long h;
        if (PyUnicode_CheckExact(value)) {
            if (PyUnicode_GET_LENGTH(value) > shortest) Py_RETURN_NONE;
            Py_ssize_t value_len;
            const char *value_utf8 = PyUnicode_AsUTF8AndSize(value, &value_len);
            if (value_utf8 == NULL) {
                PyErr_Clear();
                Py_RETURN_NONE;
            }
            if (name_len + 1 + value_len > LONGEST_TOKEN) Py_RETURN_NONE;
            memcpy(token, name_utf8, (size_t)name_len);
            token[name_len] = '=';
            memcpy(token + name_len + 1, value_utf8, (size_t)value_len);
            if (hash_bytes(token, name_len + 1 + value_len, (uint32_t)seed, &h)) return NULL;
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
            if (hash_bytes(name_utf8, name_len, (uint32_t)seed, &h)) return NULL;
        }
        long long bucket = ((h % n) + n) % n; /* Python's floored modulo */
        double signed_amount = h < 0 ? -amount : amount;
        Py_ssize_t j = 0;
        while (j < m && buckets[j] != bucket) j++;
        if (j == m) {
            buckets[m] = bucket;
            sums[m] = 0.0;
            m++;
        }
        sums[j] += signed_amount;
    }
    Py_ssize_t fresh = 0;
    if (room >= 0) {
        for (Py_ssize_t j = 0; j < m; j++) fresh += !in_use[buckets[j]];
        if (fresh > room) Py_RETURN_NONE;
    }
    PyObject *out_buckets = PyList_New(m), *out_values = PyList_New(m), *out_scaled = PyList_New(m);
    if (out_buckets == NULL || out_values == NULL || out_scaled == NULL) goto error;
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
    }
    if (room >= 0)
        for (Py_ssize_t j = 0; j < m; j++) in_use[buckets[j]] = 1;
    return Py_BuildValue("(NNNn)", out_buckets, out_values, out_scaled, fresh);
error:
    Py_XDECREF(out_buckets);
    Py_XDECREF(out_values);
    Py_XDECREF(out_scaled);
    return NULL;
}

/* pack_entries(entries) -> (indptr, indices, values, scaled) | None
 *
 * feature_encoding.sparse_rows's fast path: a list of events' (indices, values, scaled) lists as the
 * raw int64, int64, float64 and bool bytes of their CSR rows. None when an entry is not a list of
 * three lists of equal length holding ints, floats and bools (the numpy path then takes it). */
static PyObject *pack_entries(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 1 || !PyList_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "pack_entries(entries: list)");
        return NULL;
    }
    PyObject *rows = args[0];
    Py_ssize_t n_rows = PyList_GET_SIZE(rows), size = 0;
    for (Py_ssize_t r = 0; r < n_rows; r++) {
        PyObject *row = PyList_GET_ITEM(rows, r);
        if (!PyTuple_CheckExact(row) || PyTuple_GET_SIZE(row) != 3) Py_RETURN_NONE;
        Py_ssize_t length = -1;
        for (int part = 0; part < 3; part++) {
            PyObject *list = PyTuple_GET_ITEM(row, part);
            if (!PyList_CheckExact(list) || (length >= 0 && PyList_GET_SIZE(list) != length)) Py_RETURN_NONE;
            length = PyList_GET_SIZE(list);
        }
        size += length;
    }
    PyObject *indptr = PyBytes_FromStringAndSize(NULL, (n_rows + 1) * (Py_ssize_t)sizeof(int64_t));
    PyObject *indices = PyBytes_FromStringAndSize(NULL, size * (Py_ssize_t)sizeof(int64_t));
    PyObject *values = PyBytes_FromStringAndSize(NULL, size * (Py_ssize_t)sizeof(double));
    PyObject *scaled = PyBytes_FromStringAndSize(NULL, size);
    if (indptr == NULL || indices == NULL || values == NULL || scaled == NULL) goto error;
    int64_t *ptr = (int64_t *)PyBytes_AS_STRING(indptr), *idx = (int64_t *)PyBytes_AS_STRING(indices);
    double *val = (double *)PyBytes_AS_STRING(values);
    char *sc = PyBytes_AS_STRING(scaled);
    Py_ssize_t at = 0;
    ptr[0] = 0;
    for (Py_ssize_t r = 0; r < n_rows; r++) {
        PyObject *row = PyList_GET_ITEM(rows, r);
        PyObject *is = PyTuple_GET_ITEM(row, 0), *vs = PyTuple_GET_ITEM(row, 1), *ss = PyTuple_GET_ITEM(row, 2);
        for (Py_ssize_t k = 0; k < PyList_GET_SIZE(is); k++, at++) {
            PyObject *i = PyList_GET_ITEM(is, k), *v = PyList_GET_ITEM(vs, k), *s = PyList_GET_ITEM(ss, k);
            if (!PyLong_CheckExact(i) || !PyBool_Check(s)) goto other;
            idx[at] = PyLong_AsLongLong(i);
            if (PyFloat_CheckExact(v)) {
                val[at] = PyFloat_AS_DOUBLE(v);
            } else {
                goto other;
            }
            if (idx[at] == -1 && PyErr_Occurred()) goto error;
            sc[at] = s == Py_True;
        }
        ptr[r + 1] = at;
    }
    return Py_BuildValue("(NNNN)", indptr, indices, values, scaled);
other:
    Py_DECREF(indptr);
    Py_DECREF(indices);
    Py_DECREF(values);
    Py_DECREF(scaled);
    Py_RETURN_NONE;
error:
    Py_XDECREF(indptr);
    Py_XDECREF(indices);
    Py_XDECREF(values);
    Py_XDECREF(scaled);
    return NULL;
}

static PyMethodDef methods[] = {
    {"encode_known", (PyCFunction)(void (*)(void))encode_known, METH_FASTCALL,
     "An event of known features encoded, or None (see the source)."},
    {"hash_features", (PyCFunction)(void (*)(void))hash_features, METH_FASTCALL,
     "An event's features hashed, or None (see the source)."},
    {"bind_murmur", (PyCFunction)(void (*)(void))bind_murmur, METH_FASTCALL,
     "Bind mmh3's own MurmurHash3 (see the source); True when bound natively."},
    {"hash_token", (PyCFunction)(void (*)(void))hash_token, METH_FASTCALL,
     "The signed MurmurHash3 of a token's bytes, as hash_features hashes it."},
    {"pack_entries", (PyCFunction)(void (*)(void))pack_entries, METH_FASTCALL,
     "Events' entries as CSR bytes, or None (see the source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_encode", "Optional compiled fast path of the open vocabulary's encoding.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__encode(void) { return PyModule_Create(&module); }
