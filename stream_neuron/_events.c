/* The compiled fast path of decode.decode_event, schema.FeatureSchema.fill_row and schema.label_of for
 * the usual dense event, a poll at a time:
 *
 *   parse_dense(records, rows, labels, names, label_set, max_bytes, EventRef, positions, budget)
 *       -> (status, refs)
 *
 * records: a list of InputRecord (topic, partition, offset, key, value, ...); rows: a writable
 * C-contiguous float64 buffer of at least len(records) x n_features (row i for records[i]); labels: a
 * writable float64 buffer of at least len(records) (NaN: no label); names: the schema's feature names
 * as a tuple of UTF-8 bytes, or an int (their number: the schema is positional); label_set: 0 for
 * {0, 1}, 1 for {-1, 0, 1}; max_bytes: the record size limit; EventRef: the class of refs; positions:
 * the processor's dict of (topic, partition) -> next offset, moved past every record; budget: the
 * prediction budget (6 bytes an id character plus the key's bytes; beyond it the record is declined,
 * and the reference path decides whether its prediction fits). status (bytes, one a record) is 0 where
 * the record was taken (its row and label written, refs[i] its EventRef), 1 where it was declined
 * (refs[i] None).
 *
 * It takes only the plain case: an object whose keys are "features" (an array of the schema's width,
 * or an object of its names in its order), "label", "id", "ts" and other keys with scalar values, no
 * escapes, no text outside the id that is not ASCII, numbers of at most 63 characters. Anything else
 * is declined, and the Python path, the reference, decides it and names what is wrong: the fast path
 * never refuses, so a reason always comes from one place. It takes only what the reference takes, with
 * the same numbers (strtod rounds correctly, as Python's float() and int-to-float do);
 * tests/test_decode_differential.py holds the two to the same outcome record by record. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "_event_tokens.h"

#define MAX_OTHER_KEYS 16

typedef struct {
    Py_ssize_t n_features;
    const char **names; /* NULL: positional */
    Py_ssize_t *name_lengths;
    int label_set;
} Schema;

static Cursor features(Cursor p, Cursor end, const Schema *schema, double *row) {
    Py_ssize_t n = schema->n_features;
    if (*p == '[') {
        p = skip_space(p + 1, end);
        for (Py_ssize_t k = 0; k < n; k++) {
            if (k) {
                if (p >= end || *p != ',') return NULL;
                p = skip_space(p + 1, end);
            }
            if ((p = feature(p, end, &row[k])) == NULL) return NULL;
            p = skip_space(p, end);
        }
        return p < end && *p == ']' ? p + 1 : NULL;
    }
    if (*p != '{' || schema->names == NULL) return NULL;
    p = skip_space(p + 1, end);
    for (Py_ssize_t k = 0; k < n; k++) {
        Cursor start;
        Py_ssize_t length;
        int ascii;
        if (k) {
            if (p >= end || *p != ',') return NULL;
            p = skip_space(p + 1, end);
        }
        if (p >= end || *p != '"' || (p = plain_string(p, end, &start, &length, &ascii)) == NULL) return NULL;
        if (length != schema->name_lengths[k] || memcmp(start, schema->names[k], (size_t)length) != 0) {
            return NULL; /* another name, or the schema's names in another order */
        }
        p = skip_space(p, end);
        if (p >= end || *p != ':') return NULL;
        p = skip_space(p + 1, end);
        if ((p = feature(p, end, &row[k])) == NULL) return NULL;
        p = skip_space(p, end);
    }
    return p < end && *p == '}' ? p + 1 : NULL;
}

static Cursor label(Cursor p, Cursor end, int label_set, double *out) {
    if (literal(p, end, "null")) {
        *out = NAN;
        return p + 4;
    }
    if (literal(p, end, "true")) {
        *out = 1.0;
        return p + 4;
    }
    if (literal(p, end, "false")) {
        *out = 0.0;
        return p + 5;
    }
    int integer;
    p = number(p, end, out, &integer);
    if (p == NULL) return NULL;
    int taken = *out == 0.0 || *out == 1.0 || (label_set == 1 && *out == -1.0);
    return taken ? p : NULL;
}

/* The id as the Python path has it: a str (a JSON integer as its decimal text), or None. */
static Cursor event_id(Cursor p, Cursor end, PyObject **out) {
    if (literal(p, end, "null")) {
        *out = Py_None;
        Py_INCREF(Py_None);
        return p + 4;
    }
    if (*p == '"') {
        Cursor start;
        Py_ssize_t length;
        int ascii;
        p = plain_string(p, end, &start, &length, &ascii);
        if (p == NULL) return NULL;
        *out = ascii ? PyUnicode_FromKindAndData(PyUnicode_1BYTE_KIND, start, length)
                     : PyUnicode_DecodeUTF8((const char *)start, length, "strict");
        if (*out == NULL) { /* not UTF-8 (an encoded surrogate, say): the reference names it */
            PyErr_Clear();
            return NULL;
        }
        return p;
    }
    double value;
    int integer;
    Cursor q = number(p, end, &value, &integer);
    /* str(int(text)) is the text itself unless it is -0 or too long to keep exact */
    if (q == NULL || !integer || q - p > 18 || (q - p == 2 && p[0] == '-' && p[1] == '0')) return NULL;
    *out = PyUnicode_FromStringAndSize((const char *)p, q - p);
    if (*out == NULL) {
        PyErr_Clear();
        return NULL;
    }
    return q;
}

static Cursor timestamp(Cursor p, Cursor end) {
    if (literal(p, end, "null")) return p + 4;
    if (*p != '"') return NULL;
    Cursor start;
    Py_ssize_t length;
    int ascii;
    p = plain_string(p, end, &start, &length, &ascii);
    return p != NULL && ascii ? p : NULL;
}

static int key_is(Cursor start, Py_ssize_t length, const char *name) {
    return (size_t)length == strlen(name) && memcmp(start, name, (size_t)length) == 0;
}

/* One event: 1 when taken (row, *label_out, *id_out written), 0 when declined. */
static int parse_event(Cursor p, Cursor end, const Schema *schema, double *row, double *label_out,
                       PyObject **id_out) {
    int has_features = 0, has_label = 0, has_ts = 0;
    Cursor others[MAX_OTHER_KEYS];
    Py_ssize_t other_lengths[MAX_OTHER_KEYS];
    int n_others = 0;
    *label_out = NAN;
    *id_out = NULL;
    p = skip_space(p, end);
    if (p >= end || *p != '{') return 0;
    p = skip_space(p + 1, end);
    if (p < end && *p == '}') return 0;
    for (;;) {
        Cursor start;
        Py_ssize_t length;
        int ascii;
        if (p >= end || *p != '"' || (p = plain_string(p, end, &start, &length, &ascii)) == NULL) goto declined;
        p = skip_space(p, end);
        if (p >= end || *p != ':') goto declined;
        p = skip_space(p + 1, end);
        if (p >= end) goto declined;
        if (key_is(start, length, "features")) {
            if (has_features) goto declined;
            has_features = 1;
            p = features(p, end, schema, row);
        } else if (key_is(start, length, "label")) {
            if (has_label) goto declined;
            has_label = 1;
            p = label(p, end, schema->label_set, label_out);
        } else if (key_is(start, length, "id")) {
            if (*id_out != NULL) goto declined;
            p = event_id(p, end, id_out);
        } else if (key_is(start, length, "ts")) {
            if (has_ts) goto declined;
            has_ts = 1;
            p = timestamp(p, end);
        } else {
            if (!ascii || n_others == MAX_OTHER_KEYS) goto declined;
            for (int k = 0; k < n_others; k++) {
                if (other_lengths[k] == length && memcmp(others[k], start, (size_t)length) == 0) goto declined;
            }
            others[n_others] = start;
            other_lengths[n_others++] = length;
            p = other_value(p, end);
        }
        if (p == NULL) goto declined;
        p = skip_space(p, end);
        if (p < end && *p == ',') {
            p = skip_space(p + 1, end);
            continue;
        }
        if (p < end && *p == '}') break;
        goto declined;
    }
    if (!has_features || skip_space(p + 1, end) != end) goto declined;
    if (*id_out == NULL) {
        *id_out = Py_None;
        Py_INCREF(Py_None);
    }
    return 1;
declined:
    Py_CLEAR(*id_out);
    return 0;
}

static int schema_of(PyObject *names, int label_set, Schema *schema) {
    schema->label_set = label_set;
    schema->names = NULL;
    schema->name_lengths = NULL;
    if (PyLong_Check(names)) {
        schema->n_features = PyLong_AsSsize_t(names);
        return schema->n_features < 1 ? -1 : 0;
    }
    if (!PyTuple_Check(names) || PyTuple_GET_SIZE(names) < 1) {
        PyErr_SetString(PyExc_TypeError, "names must be a tuple of bytes or a positive int");
        return -1;
    }
    Py_ssize_t n = schema->n_features = PyTuple_GET_SIZE(names);
    schema->names = PyMem_Malloc((size_t)n * sizeof(char *));
    schema->name_lengths = PyMem_Malloc((size_t)n * sizeof(Py_ssize_t));
    if (schema->names == NULL || schema->name_lengths == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *name = PyTuple_GET_ITEM(names, k);
        if (!PyBytes_Check(name)) {
            PyErr_SetString(PyExc_TypeError, "names must be a tuple of bytes");
            return -1;
        }
        schema->names[k] = PyBytes_AS_STRING(name);
        schema->name_lengths[k] = PyBytes_GET_SIZE(name);
    }
    return 0;
}

static int float_buffer(PyObject *from, Py_buffer *view, Py_ssize_t needed, const char *what) {
    if (PyObject_GetBuffer(from, view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    if (view->itemsize != 8 || view->format == NULL || strcmp(view->format, "d") != 0 ||
        view->len < needed * 8) {
        PyErr_Format(PyExc_ValueError, "%s must be a float64 buffer of at least %zd numbers", what, needed);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* A namedtuple instance built as tuple.__new__(cls, items) builds it (the items' references stolen). */
PyObject *named_tuple(PyTypeObject *type, PyObject **items, Py_ssize_t n) {
    PyObject *made = type->tp_alloc(type, n);
    if (made == NULL) {
        for (Py_ssize_t k = 0; k < n; k++) Py_DECREF(items[k]);
        return NULL;
    }
    for (Py_ssize_t k = 0; k < n; k++) PyTuple_SET_ITEM(made, k, items[k]);
    return made;
}

/* positions[(topic, partition)] = offset + 1 */
static int advance(PyObject *positions, PyObject *topic, PyObject *partition, long long offset) {
    PyObject *key = PyTuple_Pack(2, topic, partition), *next = PyLong_FromLongLong(offset + 1);
    int failed = key == NULL || next == NULL || PyDict_SetItem(positions, key, next) < 0;
    Py_XDECREF(key);
    Py_XDECREF(next);
    return failed ? -1 : 0;
}

static PyObject *parse_dense(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 9 || !PyList_Check(args[0]) || !PyType_Check(args[6]) || !PyDict_Check(args[7])) {
        PyErr_SetString(PyExc_TypeError, "parse_dense(records: list, rows, labels, names, label_set, max_bytes, "
                                         "EventRef, positions: dict, prediction_budget)");
        return NULL;
    }
    PyObject *records = args[0], *positions = args[7], *status = NULL, *refs = NULL, *result = NULL;
    PyTypeObject *ref_type = (PyTypeObject *)args[6];
    Py_ssize_t n = PyList_GET_SIZE(records);
    int label_set = PyLong_AsLong(args[4]);
    Py_ssize_t max_bytes = PyLong_AsSsize_t(args[5]), budget = PyLong_AsSsize_t(args[8]);
    if (PyErr_Occurred()) return NULL;
    Schema schema = {0};
    Py_buffer rows = {0}, labels = {0};
    if (schema_of(args[3], label_set, &schema) < 0) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a schema needs at least one feature");
        goto done;
    }
    if (float_buffer(args[1], &rows, n * schema.n_features, "rows") < 0) goto done;
    if (float_buffer(args[2], &labels, n, "labels") < 0) goto done;
    status = PyBytes_FromStringAndSize(NULL, n);
    refs = PyList_New(n);
    if (status == NULL || refs == NULL) goto done;
    char *declined = PyBytes_AS_STRING(status);
    double *row = rows.buf, *label_of = labels.buf;
    PyObject *last_topic = NULL, *last_partition = NULL;
    long long last_offset = 0;
    for (Py_ssize_t i = 0; i < n; i++, row += schema.n_features) {
        PyObject *record = PyList_GET_ITEM(records, i), *id = NULL;
        if (!PyTuple_Check(record) || PyTuple_GET_SIZE(record) < 5) {
            PyErr_SetString(PyExc_TypeError, "records must be InputRecord tuples");
            goto done;
        }
        PyObject *topic = PyTuple_GET_ITEM(record, 0), *partition = PyTuple_GET_ITEM(record, 1);
        PyObject *offset = PyTuple_GET_ITEM(record, 2), *key = PyTuple_GET_ITEM(record, 3);
        PyObject *value = PyTuple_GET_ITEM(record, 4);
        if (last_topic != NULL && (topic != last_topic || PyObject_RichCompareBool(partition, last_partition, Py_NE))) {
            if (advance(positions, last_topic, last_partition, last_offset) < 0) goto done;
        }
        last_topic = topic;
        last_partition = partition;
        last_offset = PyLong_AsLongLong(offset);
        if (last_offset == -1 && PyErr_Occurred()) goto done;
        int taken = PyBytes_Check(value) && PyBytes_GET_SIZE(value) <= max_bytes &&
                    parse_event((Cursor)PyBytes_AS_STRING(value),
                                (Cursor)PyBytes_AS_STRING(value) + PyBytes_GET_SIZE(value), &schema, row,
                                &label_of[i], &id);
        if (taken) { /* a prediction that might not fit its topic: the reference path checks it */
            Py_ssize_t key_bytes = PyBytes_Check(key) ? PyBytes_GET_SIZE(key) : 0;
            Py_ssize_t id_chars = id == Py_None ? 0 : PyUnicode_GET_LENGTH(id);
            taken = 6 * id_chars + key_bytes <= budget;
        }
        declined[i] = (char)!taken;
        if (!taken) {
            Py_XDECREF(id);
            Py_INCREF(Py_None);
            PyList_SET_ITEM(refs, i, Py_None);
            continue;
        }
        PyObject *items[7] = {topic, partition, offset, key, id, record, Py_None};
        for (int k = 0; k < 7; k++) {
            if (k != 4) Py_INCREF(items[k]);
        }
        PyObject *ref = named_tuple(ref_type, items, 7);
        if (ref == NULL) goto done;
        PyList_SET_ITEM(refs, i, ref);
    }
    if (last_topic != NULL && advance(positions, last_topic, last_partition, last_offset) < 0) goto done;
    result = PyTuple_Pack(2, status, refs);
done:
    Py_XDECREF(status);
    Py_XDECREF(refs);
    if (rows.obj != NULL) PyBuffer_Release(&rows);
    if (labels.obj != NULL) PyBuffer_Release(&labels);
    PyMem_Free(schema.names);
    PyMem_Free(schema.name_lengths);
    return result;
}

PyObject *prediction_records(PyObject *self, PyObject *const *args, Py_ssize_t nargs); /* _predictions.c */

static PyMethodDef methods[] = {
    {"prediction_records", (PyCFunction)(void (*)(void))prediction_records, METH_FASTCALL,
     "The predictions to publish, their JSON as outputs.prediction_values writes it (see _predictions.c)."},
    {"parse_dense", (PyCFunction)(void (*)(void))parse_dense, METH_FASTCALL,
     "A poll's dense events parsed into rows, labels and ids; the rest declined (see the source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_events", "Optional compiled paths of the per-event wire: dense events in, predictions out.", -1, methods,
};

PyMODINIT_FUNC PyInit__events(void) { return PyModule_Create(&module); }
