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

#include "_event_records.h"

typedef struct {
    EventReader reader;
    Py_ssize_t n_features;
    const char **names; /* NULL: positional */
    Py_ssize_t *name_lengths;
    double *rows; /* row i for the i-th record */
} Schema;

static Cursor features(EventReader *reader, Cursor p, Cursor end, Py_ssize_t i) {
    const Schema *schema = (const Schema *)reader;
    Py_ssize_t n = schema->n_features;
    double *row = schema->rows + i * n;
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
        if (length != schema->name_lengths[k] || !same_bytes(start, (const unsigned char *)schema->names[k], length)) {
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

static int schema_of(PyObject *names, int label_set, Schema *schema) {
    schema->reader.features = features;
    schema->reader.take = NULL;
    schema->reader.label_set = label_set;
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

static PyObject *parse_dense(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 9 || !PyList_Check(args[0]) || !PyType_Check(args[6]) || !PyDict_Check(args[7])) {
        PyErr_SetString(PyExc_TypeError, "parse_dense(records: list, rows, labels, names, label_set, max_bytes, "
                                         "EventRef, positions: dict, prediction_budget)");
        return NULL;
    }
    PyObject *records = args[0], *status = NULL, *refs = NULL, *result = NULL;
    Py_ssize_t n = PyList_GET_SIZE(records), stop;
    RecordsContext context = {PyLong_AsSsize_t(args[5]), PyLong_AsSsize_t(args[8]), (PyTypeObject *)args[6], args[7]};
    int label_set = PyLong_AsLong(args[4]);
    if (PyErr_Occurred()) return NULL;
    Schema schema = {0};
    Py_buffer rows = {0}, labels = {0};
    if (schema_of(args[3], label_set, &schema) < 0) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a schema needs at least one feature");
        goto done;
    }
    if (float_buffer(args[1], &rows, n * schema.n_features, "rows") < 0) goto done;
    if (float_buffer(args[2], &labels, n, "labels") < 0) goto done;
    schema.rows = rows.buf;
    status = read_records(records, 0, labels.buf, &context, &schema.reader, 0, &refs, &stop);
    if (status != NULL) result = PyTuple_Pack(2, status, refs);
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
