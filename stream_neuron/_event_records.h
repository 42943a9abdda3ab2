/* What the compiled event readers share (_events.c reads dense features, _named_events.c features by
 * name): an event's envelope ("label", "id", "ts", other scalar keys) around its "features", and the
 * loop over a poll's InputRecords that moves the partition positions and builds each taken event's
 * EventRef. A reader supplies only the "features" value's parse and what taking an event commits.
 *
 * The readers never refuse: whatever they do not take is declined to the Python reference path, which
 * decides it and names what is wrong. */
#ifndef STREAM_NEURON_EVENT_RECORDS_H
#define STREAM_NEURON_EVENT_RECORDS_H

#include "_event_tokens.h"

#define MAX_OTHER_KEYS 16

typedef struct EventReader EventReader;
struct EventReader {
    /* The "features" value at `p` of the record `i` (counted from the poll's first record read): the
     * cursor after it, NULL to decline. */
    Cursor (*features)(EventReader *self, Cursor p, Cursor end, Py_ssize_t i);
    /* The event passed every check: keep what `features` read. 1 taken, 0 declined after all (nothing
     * kept), -1 with an exception set. NULL: nothing to commit. */
    int (*take)(EventReader *self);
    int label_set; /* 0: {0, 1}; 1: {-1, 0, 1} */
    int failed;    /* set by `features` with an exception (out of memory), which ends the read */
};

static inline Cursor label(Cursor p, Cursor end, int label_set, double *out) {
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
static inline Cursor event_id(Cursor p, Cursor end, PyObject **out) {
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

static inline Cursor timestamp(Cursor p, Cursor end) {
    if (literal(p, end, "null")) return p + 4;
    if (*p != '"') return NULL;
    Cursor start;
    Py_ssize_t length;
    int ascii;
    p = plain_string(p, end, &start, &length, &ascii);
    return p != NULL && ascii ? p : NULL;
}

static inline int key_is(Cursor start, Py_ssize_t length, const char *name) {
    return (size_t)length == strlen(name) && memcmp(start, name, (size_t)length) == 0;
}

/* One event: 1 when its envelope and features were read (*label_out and *id_out written), 0 when
 * declined. */
static inline int parse_event(Cursor p, Cursor end, EventReader *reader, Py_ssize_t i, double *label_out,
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
            p = reader->features(reader, p, end, i);
        } else if (key_is(start, length, "label")) {
            if (has_label) goto declined;
            has_label = 1;
            p = label(p, end, reader->label_set, label_out);
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

/* A namedtuple instance built as tuple.__new__(cls, items) builds it (the items' references stolen). */
static inline PyObject *named_tuple(PyTypeObject *type, PyObject **items, Py_ssize_t n) {
    PyObject *made = type->tp_alloc(type, n);
    if (made == NULL) {
        for (Py_ssize_t k = 0; k < n; k++) Py_DECREF(items[k]);
        return NULL;
    }
    for (Py_ssize_t k = 0; k < n; k++) PyTuple_SET_ITEM(made, k, items[k]);
    return made;
}

/* positions[(topic, partition)] = offset + 1 */
static inline int advance(PyObject *positions, PyObject *topic, PyObject *partition, long long offset) {
    PyObject *key = PyTuple_Pack(2, topic, partition), *next = PyLong_FromLongLong(offset + 1);
    int failed = key == NULL || next == NULL || PyDict_SetItem(positions, key, next) < 0;
    Py_XDECREF(key);
    Py_XDECREF(next);
    return failed ? -1 : 0;
}

static inline int float_buffer(PyObject *from, Py_buffer *view, Py_ssize_t needed, const char *what) {
    if (PyObject_GetBuffer(from, view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    if (view->itemsize != 8 || view->format == NULL || strcmp(view->format, "d") != 0 ||
        view->len < needed * 8) {
        PyErr_Format(PyExc_ValueError, "%s must be a float64 buffer of at least %zd numbers", what, needed);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* What read_records needs besides the reader: the record size limit, the class of refs, the
 * processor's positions, and the prediction budget (6 bytes an id character plus the key's bytes;
 * beyond it a record is declined, and the reference path decides whether its prediction fits). */
typedef struct {
    Py_ssize_t max_bytes, budget;
    PyTypeObject *ref_type;
    PyObject *positions;
} RecordsContext;

/* records[start:] read by `reader`, each label at labels[k] for the k-th record read: a declined
 * record's status byte is 1 and its ref None; with `stop_at_declined`, the read ends at the first
 * declined record (its position not moved: the reference path takes it) and *stop is its index.
 * Every record read before the stop has its partition position moved past it. Returns the status
 * bytes (one a record read, the declined one included) and fills `refs` (a new list), or NULL with an
 * exception set. */
static inline PyObject *read_records(PyObject *records, Py_ssize_t start, double *labels, const RecordsContext *context,
                              EventReader *reader, int stop_at_declined, PyObject **refs, Py_ssize_t *stop) {
    Py_ssize_t n = PyList_GET_SIZE(records);
    PyObject *status = PyBytes_FromStringAndSize(NULL, n - start);
    *refs = PyList_New(0);
    if (status == NULL || *refs == NULL) goto failed;
    char *declined = PyBytes_AS_STRING(status);
    PyObject *last_topic = NULL, *last_partition = NULL;
    long long last_offset = 0;
    Py_ssize_t i = start;
    for (; i < n; i++) {
        PyObject *record = PyList_GET_ITEM(records, i), *id = NULL;
        if (!PyTuple_Check(record) || PyTuple_GET_SIZE(record) < 5) {
            PyErr_SetString(PyExc_TypeError, "records must be InputRecord tuples");
            goto failed;
        }
        PyObject *topic = PyTuple_GET_ITEM(record, 0), *partition = PyTuple_GET_ITEM(record, 1);
        PyObject *offset = PyTuple_GET_ITEM(record, 2), *key = PyTuple_GET_ITEM(record, 3);
        PyObject *value = PyTuple_GET_ITEM(record, 4);
        long long at = PyLong_AsLongLong(offset);
        if (at == -1 && PyErr_Occurred()) goto failed;
        int taken = PyBytes_Check(value) && PyBytes_GET_SIZE(value) <= context->max_bytes &&
                    parse_event((Cursor)PyBytes_AS_STRING(value),
                                (Cursor)PyBytes_AS_STRING(value) + PyBytes_GET_SIZE(value), reader, i - start,
                                &labels[i - start], &id);
        if (reader->failed) {
            Py_XDECREF(id);
            goto failed;
        }
        if (taken) {
            Py_ssize_t key_bytes = PyBytes_Check(key) ? PyBytes_GET_SIZE(key) : 0;
            Py_ssize_t id_chars = id == Py_None ? 0 : PyUnicode_GET_LENGTH(id);
            taken = 6 * id_chars + key_bytes <= context->budget;
        }
        if (taken && reader->take != NULL) {
            taken = reader->take(reader);
            if (taken < 0) {
                Py_XDECREF(id);
                goto failed;
            }
        }
        declined[i - start] = (char)!taken;
        if (!taken && stop_at_declined) {
            Py_XDECREF(id);
            break;
        }
        if (last_topic != NULL && (topic != last_topic || PyObject_RichCompareBool(partition, last_partition, Py_NE))) {
            if (advance(context->positions, last_topic, last_partition, last_offset) < 0) {
                Py_XDECREF(id);
                goto failed;
            }
        }
        last_topic = topic;
        last_partition = partition;
        last_offset = at;
        PyObject *ref = Py_None;
        if (taken) {
            PyObject *items[7] = {topic, partition, offset, key, id, record, Py_None};
            for (int k = 0; k < 7; k++) {
                if (k != 4) Py_INCREF(items[k]);
            }
            ref = named_tuple(context->ref_type, items, 7);
            if (ref == NULL) goto failed;
        } else {
            Py_XDECREF(id);
            Py_INCREF(Py_None);
        }
        int appended = PyList_Append(*refs, ref);
        Py_DECREF(ref);
        if (appended < 0) goto failed;
    }
    if (last_topic != NULL && advance(context->positions, last_topic, last_partition, last_offset) < 0) goto failed;
    *stop = i;
    return status;
failed:
    Py_XDECREF(status);
    Py_CLEAR(*refs);
    return NULL;
}

#endif
