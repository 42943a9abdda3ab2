/* The fast paths of the feature encoders (feature_encoding.OpenVocabulary.encode and the chunk's rows
 * of feature_encoding.sparse_rows; FeatureHashing's are in _encode_hash.c).
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
#include "_encode_common.h"

/* An event of known features into `at`, `val` and `sc` (`*count` entries): 1; 0 for anything the
 * Python encoder must see; -1 with an exception set. */
static int encode_event(PyObject *features, PyObject *index, Py_ssize_t shortest, long long *at, double *val,
                        char *sc, Py_ssize_t *count) {
    Py_ssize_t n = PyDict_GET_SIZE(features);
    if (n > MOST_FEATURES) return 0;
    KeyFilter placed = {0};
    Py_ssize_t pos = 0, k = 0;
    PyObject *name, *value;
    while (PyDict_Next(features, &pos, &name, &value)) {
        if (!PyUnicode_CheckExact(name) || PyUnicode_GET_LENGTH(name) > shortest) return 0;
        PyObject *key;
        double number;
        int numeric = 1;
        if (PyFloat_CheckExact(value)) {
            number = PyFloat_AS_DOUBLE(value);
            if (!isfinite(number)) return 0;
            key = Py_NewRef(name);
        } else if (PyBool_Check(value)) {
            key = PyUnicode_FromFormat("%U_%s", name, value == Py_True ? "True" : "False");
            number = 1.0;
            numeric = 0;
        } else if (PyLong_CheckExact(value)) {
            number = PyLong_AsDouble(value);
            if (number == -1.0 && PyErr_Occurred()) { /* too large for a float64: the slow path names it */
                PyErr_Clear();
                return 0;
            }
            key = Py_NewRef(name);
        } else if (PyUnicode_CheckExact(value)) {
            if (PyUnicode_GET_LENGTH(value) > shortest) return 0;
            key = PyUnicode_FromFormat("%U_%U", name, value);
            number = 1.0;
            numeric = 0;
        } else {
            return 0;
        }
        if (key == NULL) return -1;
        PyObject *i = PyDict_GetItemWithError(index, key); /* borrowed */
        Py_DECREF(key);
        if (i == NULL) return PyErr_Occurred() ? -1 : 0; /* 0: a new name */
        long long where = PyLong_AsLongLong(i);
        if (where == -1 && PyErr_Occurred()) return -1;
        if (find_or_place_in(placed, at, k, where) >= 0) return 0; /* one feature twice: the slow path names it */
        at[k] = where;
        val[k] = number;
        sc[k] = (char)numeric;
        k++;
    }
    *count = k;
    return 1;
}

static PyObject *encode_known(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 3 || !PyDict_CheckExact(args[0]) || !PyDict_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "encode_known(features: dict, index: dict, short: int)");
        return NULL;
    }
    Py_ssize_t shortest = PyLong_AsSsize_t(args[2]);
    if (shortest == -1 && PyErr_Occurred()) return NULL;
    long long at[MOST_FEATURES];
    double val[MOST_FEATURES];
    char sc[MOST_FEATURES];
    Py_ssize_t k;
    int known = encode_event(args[0], args[1], shortest, at, val, sc, &k);
    if (known < 0) return NULL;
    if (known == 0) Py_RETURN_NONE;
    PyObject *indices = PyList_New(k), *values = PyList_New(k), *scaled = PyList_New(k);
    if (indices == NULL || values == NULL || scaled == NULL) goto error;
    for (Py_ssize_t j = 0; j < k; j++) {
        PyObject *i = PyLong_FromLongLong(at[j]), *v = PyFloat_FromDouble(val[j]);
        if (i == NULL || v == NULL) {
            Py_XDECREF(i);
            Py_XDECREF(v);
            goto error;
        }
        PyList_SET_ITEM(indices, j, i);
        PyList_SET_ITEM(values, j, v);
        PyList_SET_ITEM(scaled, j, PyBool_FromLong(sc[j]));
    }
    return Py_BuildValue("(NNN)", indices, values, scaled);
error:
    Py_XDECREF(indices);
    Py_XDECREF(values);
    Py_XDECREF(scaled);
    return NULL;
}

/* `size` bytes of `data` written at byte `offset` of `array`, which doubles when it is too short: a
 * chunk's arrays are kept from chunk to chunk, so they soon stop growing at all. */
static int write_bytes(PyObject *array, Py_ssize_t offset, const void *data, Py_ssize_t size) {
    Py_ssize_t length = PyByteArray_GET_SIZE(array);
    if (offset + size > length) {
        Py_ssize_t doubled = 2 * length > offset + size ? 2 * length : 2 * (offset + size);
        if (PyByteArray_Resize(array, doubled) < 0) return -1;
    }
    memcpy(PyByteArray_AS_STRING(array) + offset, data, (size_t)size);
    return 0;
}

/* `k` entries written from entry `end` on into a chunk's bytearrays of raw int64 indices, float64
 * values and bool flags (the rows row_sink.SparseSink builds): the new end, or -1 with an exception
 * set. */
Py_ssize_t encode_write_entries(PyObject *const *arrays, Py_ssize_t end, const long long *at, const double *val,
                                const char *sc, Py_ssize_t k) {
    if (!PyByteArray_CheckExact(arrays[0]) || !PyByteArray_CheckExact(arrays[1]) ||
        !PyByteArray_CheckExact(arrays[2])) {
        PyErr_SetString(PyExc_TypeError, "indices, values and scaled must be bytearrays");
        return -1;
    }
    if (end < 0) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "the end of the entries must be >= 0");
        return -1;
    }
    if (write_bytes(arrays[0], end * (Py_ssize_t)sizeof(long long), at, k * (Py_ssize_t)sizeof(long long)) ||
        write_bytes(arrays[1], end * (Py_ssize_t)sizeof(double), val, k * (Py_ssize_t)sizeof(double)) ||
        write_bytes(arrays[2], end, sc, k))
        return -1;
    return end + k;
}

/* encode_known_into(features, index, short, indices, values, scaled, end) -> new end | None
 *
 * encode_known without a Python object per entry: the entries written from entry `end` on by
 * write_entries. None: nothing written, and the Python encoder takes the event. */
static PyObject *encode_known_into(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 7 || !PyDict_CheckExact(args[0]) || !PyDict_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError,
                        "encode_known_into(features: dict, index: dict, short: int, indices, values, scaled, end)");
        return NULL;
    }
    Py_ssize_t shortest = PyLong_AsSsize_t(args[2]);
    if (shortest == -1 && PyErr_Occurred()) return NULL;
    long long at[MOST_FEATURES];
    double val[MOST_FEATURES];
    char sc[MOST_FEATURES];
    Py_ssize_t k;
    int known = encode_event(args[0], args[1], shortest, at, val, sc, &k);
    if (known < 0) return NULL;
    if (known == 0) Py_RETURN_NONE;
    Py_ssize_t end = encode_write_entries(args + 3, PyLong_AsSsize_t(args[6]), at, val, sc, k);
    return end < 0 ? NULL : PyLong_FromSsize_t(end);
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
    {"encode_known_into", (PyCFunction)(void (*)(void))encode_known_into, METH_FASTCALL,
     "An event of known features appended to a chunk's bytearrays, or None (see the source)."},
    {"hash_features", (PyCFunction)(void (*)(void))encode_hash_features, METH_FASTCALL,
     "An event's features hashed, or None (see the source)."},
    {"hash_into", (PyCFunction)(void (*)(void))encode_hash_into, METH_FASTCALL,
     "An event's features hashed onto a chunk's bytearrays, or None (see the source)."},
    {"hash_events_into", (PyCFunction)(void (*)(void))encode_hash_events_into, METH_FASTCALL,
     "Events' features hashed onto a chunk's bytearrays, up to the first declined (see the source)."},
    {"bind_murmur", (PyCFunction)(void (*)(void))encode_bind_murmur, METH_FASTCALL,
     "Bind mmh3's own MurmurHash3 (see the source); True when bound natively."},
    {"hash_token", (PyCFunction)(void (*)(void))encode_hash_token, METH_FASTCALL,
     "The signed MurmurHash3 of a token's bytes, as hash_features hashes it."},
    {"key_table", (PyCFunction)(void (*)(void))encode_key_table, METH_FASTCALL,
     "A new table of byte strings to indices, in a capsule (see _key_table.c)."},
    {"parse_named", (PyCFunction)(void (*)(void))encode_parse_named, METH_FASTCALL,
     "A poll's events of named features read into a chunk's entries, up to the first declined (see "
     "_named_events.c)."},
    {"pack_entries", (PyCFunction)(void (*)(void))pack_entries, METH_FASTCALL,
     "Events' entries as CSR bytes, or None (see the source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_encode", "Optional compiled fast path of the open vocabulary's encoding.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__encode(void) { return PyModule_Create(&module); }
