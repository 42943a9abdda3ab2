/* The compiled writer of the predictions, the JSON byte for byte outputs.prediction_values':
 *
 *   prediction_records(OutputRecord, topic, refs, predicted, probabilities, scores, versions, labels,
 *                      candidates, quote) -> list of OutputRecord(topic, ref.key, value, [], ref.record)
 *
 * refs: a list of EventRef (topic, partition, offset, key, event_id, ...); predicted, scores, labels:
 * float64 buffers; probabilities: a float64 buffer or None (a model without them); versions: an int64
 * buffer; candidates: a list of str (JSON members appended to each prediction) or None; quote: the
 * JSON string encoder with ASCII escapes (json.encoder.encode_basestring_ascii), called for the
 * topics and for every id that is not plain printable ASCII. Floats are written as repr() writes
 * them (PyOS_double_to_string 'r'), so each value equals the Python template's. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

#include "_event_records.h"

typedef struct {
    char *text;
    Py_ssize_t length, capacity;
} Text;

static int grow(Text *t, Py_ssize_t more) {
    if (t->length + more <= t->capacity) return 0;
    Py_ssize_t capacity = (t->length + more) * 2;
    char *text = PyMem_Realloc(t->text, (size_t)capacity);
    if (text == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    t->text = text;
    t->capacity = capacity;
    return 0;
}

static int add(Text *t, const char *s, Py_ssize_t n) {
    if (grow(t, n) < 0) return -1;
    memcpy(t->text + t->length, s, (size_t)n);
    t->length += n;
    return 0;
}

static int add_text(Text *t, const char *s) { return add(t, s, (Py_ssize_t)strlen(s)); }

static int add_long(Text *t, long long value) {
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%lld", value);
    return add(t, digits, n);
}

static int add_repr(Text *t, double value) {
    char *text = PyOS_double_to_string(value, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (text == NULL) return -1;
    int failed = add_text(t, text);
    PyMem_Free(text);
    return failed;
}

/* A float as repr() writes it, from its shortest round-trip digits as orjson wrote them (orjson's
 * Ryu finds the same digits as repr's dtoa; only the layout differs: "1e-7", "0.00001", "1e16"):
 * fixed notation for a decimal point from 4 places left of the digits to 16 right of the first, else
 * d.ddde+XX; "0.0" and a trailing ".0" as repr has them. 1 (nothing written) for a token that is
 * not a number (orjson writes null for a NaN): the caller writes repr's text instead. */
static int add_float_token(Text *t, const char *token, Py_ssize_t n) {
    char digits[40];
    int count = 0, point = 0, seen_point = 0, negative = 0, exponent = 0, exponent_negative = 0;
    Py_ssize_t k = 0;
    if (k < n && token[k] == '-') {
        negative = 1;
        k++;
    }
    for (; k < n && token[k] != 'e' && token[k] != 'E'; k++) {
        char c = token[k];
        if (c == '.') {
            seen_point = 1;
            continue;
        }
        if (c < '0' || c > '9' || count == (int)sizeof digits) goto bad;
        if (count == 0 && c == '0') { /* a leading zero moves the point, not the digits */
            if (seen_point) point--;
            continue;
        }
        digits[count++] = c;
        if (!seen_point) point++;
    }
    if (k < n) {
        k++;
        if (k < n && (token[k] == '+' || token[k] == '-')) exponent_negative = token[k++] == '-';
        if (k == n) goto bad;
        for (; k < n; k++) {
            if (token[k] < '0' || token[k] > '9' || exponent > 10000) goto bad;
            exponent = exponent * 10 + (token[k] - '0');
        }
    }
    while (count > 0 && digits[count - 1] == '0') count--;
    if (negative && add(t, "-", 1) < 0) return -1;
    if (count == 0) return add(t, "0.0", 3);
    int decpt = point + (exponent_negative ? -exponent : exponent); /* digits are 0.d1d2... x 10^decpt */
    if (grow(t, count + 32) < 0) return -1;
    char *out = t->text + t->length;
    Py_ssize_t w = 0;
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            out[w++] = '0';
            out[w++] = '.';
            for (int z = 0; z < -decpt; z++) out[w++] = '0';
            memcpy(out + w, digits, (size_t)count);
            w += count;
        } else if (decpt < count) {
            memcpy(out + w, digits, (size_t)decpt);
            w += decpt;
            out[w++] = '.';
            memcpy(out + w, digits + decpt, (size_t)(count - decpt));
            w += count - decpt;
        } else {
            memcpy(out + w, digits, (size_t)count);
            w += count;
            for (int z = count; z < decpt; z++) out[w++] = '0';
            out[w++] = '.';
            out[w++] = '0';
        }
    } else {
        out[w++] = digits[0];
        if (count > 1) {
            out[w++] = '.';
            memcpy(out + w, digits + 1, (size_t)(count - 1));
            w += count - 1;
        }
        w += snprintf(out + w, 16, "e%c%02d", decpt - 1 < 0 ? '-' : '+', abs(decpt - 1));
    }
    t->length += w;
    return 0;
bad: /* every check comes before anything is written */
    return 1;
}

static int next_token(const char *text, Py_ssize_t length, Py_ssize_t *at, const char **token, Py_ssize_t *n);

/* A float as repr() writes it: from orjson's text of the array it is in (``None``: repr itself). */
static int add_float(Text *t, double value, PyObject *text, Py_ssize_t *at) {
    if (text == Py_None) return add_repr(t, value);
    const char *token;
    Py_ssize_t n;
    if (next_token(PyBytes_AS_STRING(text), PyBytes_GET_SIZE(text), at, &token, &n) < 0) return -1;
    int written = add_float_token(t, token, n);
    return written == 1 ? add_repr(t, value) : written;
}

/* The next number of orjson's array text ("[a,b,...]"), from *at: its bounds. */
static int next_token(const char *text, Py_ssize_t length, Py_ssize_t *at, const char **token, Py_ssize_t *n) {
    Py_ssize_t k = *at;
    if (k < length && (text[k] == '[' || text[k] == ',')) k++;
    Py_ssize_t start = k;
    while (k < length && text[k] != ',' && text[k] != ']') k++;
    if (k == start || k >= length) {
        PyErr_SetString(PyExc_ValueError, "fewer numbers in the floats' text than predictions");
        return -1;
    }
    *token = text + start;
    *n = k - start;
    *at = k;
    return 0;
}

/* A class (0, 1, -1, or another whole number) as the template writes it: int(value). */
static int add_class(Text *t, double value) {
    if (value == 0.0) return add(t, "0", 1);
    if (value == 1.0) return add(t, "1", 1);
    if (value == -1.0) return add(t, "-1", 2);
    if (!isfinite(value) || fabs(value) >= 9.2e18) {
        PyErr_SetString(PyExc_ValueError, "a class that is not a whole number of int64 size");
        return -1;
    }
    return add_long(t, (long long)value);
}

/* A str as JSON: copied between quotes when it is printable ASCII without '"' or '\\', else quote(). */
static int add_quoted(Text *t, PyObject *text, PyObject *quote) {
    if (PyUnicode_IS_ASCII(text)) {
        const unsigned char *s = PyUnicode_1BYTE_DATA(text);
        Py_ssize_t n = PyUnicode_GET_LENGTH(text), k = 0;
        while (k < n && s[k] >= 0x20 && s[k] != '"' && s[k] != '\\' && s[k] != 0x7f) k++;
        if (k == n) {
            if (grow(t, n + 2) < 0) return -1;
            t->text[t->length++] = '"';
            memcpy(t->text + t->length, s, (size_t)n);
            t->length += n;
            t->text[t->length++] = '"';
            return 0;
        }
    }
    PyObject *quoted = PyObject_CallOneArg(quote, text);
    if (quoted == NULL) return -1;
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(quoted, &n);
    int failed = s == NULL ? -1 : add(t, s, n);
    Py_DECREF(quoted);
    return failed;
}

typedef struct {
    Py_buffer view;
    int held;
} Buffer;

static int buffer_of(PyObject *from, Buffer *b, Py_ssize_t n, const char *format, const char *what) {
    b->held = 0;
    if (PyObject_GetBuffer(from, &b->view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    b->held = 1;
    const char *got = b->view.format;
    int integers = strcmp(format, "q") == 0; /* int64: 'l' on LP64, 'q' elsewhere */
    int matches = got != NULL && (strcmp(got, format) == 0 || (integers && strcmp(got, "l") == 0 &&
                                                               sizeof(long) == 8));
    if (b->view.itemsize != 8 || !matches || b->view.len < n * 8) {
        PyErr_Format(PyExc_ValueError, "%s must be a buffer of %zd '%s' numbers", what, n, format);
        return -1;
    }
    return 0;
}

static void release(Buffer *b) {
    if (b->held) PyBuffer_Release(&b->view);
}


PyObject *prediction_records(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 12 || !PyType_Check(args[0]) || !PyList_Check(args[2]) ||
        (args[8] != Py_None && !PyList_Check(args[8])) || (args[10] != Py_None && !PyBytes_Check(args[10])) ||
        (args[11] != Py_None && !PyBytes_Check(args[11]))) {
        PyErr_SetString(PyExc_TypeError,
                        "prediction_records(OutputRecord, topic, refs: list, predicted, probabilities, scores, "
                        "versions, labels, candidates: list | None, quote, probability_text, score_text)");
        return NULL;
    }
    PyTypeObject *record_type = (PyTypeObject *)args[0];
    PyObject *out_topic = args[1], *probability_text = args[10], *score_text = args[11];
    Py_ssize_t probability_at = 0, score_at = 0;
    args += 2; /* the rest as prediction_values takes them */
    PyObject *refs = args[0], *candidates = args[6], *quote = args[7], *values = NULL, *result = NULL;
    PyObject *last_topic = NULL;
    Py_ssize_t n = PyList_GET_SIZE(refs);
    Buffer predicted = {0}, probabilities = {0}, scores = {0}, versions = {0}, labels = {0};
    Text text = {NULL, 0, 0}, topic = {NULL, 0, 0};
    if (candidates != Py_None && PyList_GET_SIZE(candidates) != n) {
        PyErr_SetString(PyExc_ValueError, "one candidate text a prediction");
        goto done;
    }
    if (buffer_of(args[1], &predicted, n, "d", "predicted") < 0 ||
        (args[2] != Py_None && buffer_of(args[2], &probabilities, n, "d", "probabilities") < 0) ||
        buffer_of(args[3], &scores, n, "d", "scores") < 0 || buffer_of(args[4], &versions, n, "q", "versions") < 0 ||
        buffer_of(args[5], &labels, n, "d", "labels") < 0) {
        goto done;
    }
    values = PyList_New(n);
    if (values == NULL) goto done;
    const double *classes = predicted.view.buf, *score = scores.view.buf, *label = labels.view.buf;
    const double *probability = probabilities.held ? probabilities.view.buf : NULL;
    const long long *version = versions.view.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *ref = PyList_GET_ITEM(refs, i);
        if (!PyTuple_Check(ref) || PyTuple_GET_SIZE(ref) < 5) {
            PyErr_SetString(PyExc_TypeError, "refs must be EventRef tuples");
            goto done;
        }
        PyObject *ref_topic = PyTuple_GET_ITEM(ref, 0), *event_id = PyTuple_GET_ITEM(ref, 4);
        if (ref_topic != last_topic) {
            topic.length = 0;
            if (!PyUnicode_Check(ref_topic) || add_quoted(&topic, ref_topic, quote) < 0) goto done;
            last_topic = ref_topic;
        }
        text.length = 0;
        if (add_text(&text, "{\"prediction\": ") < 0 || add_class(&text, classes[i]) < 0 ||
            add_text(&text, ", \"probability\": ") < 0 ||
            (probability ? add_float(&text, probability[i], probability_text, &probability_at)
                         : add_text(&text, "null")) < 0 ||
            add_text(&text, ", \"score\": ") < 0 || add_float(&text, score[i], score_text, &score_at) < 0 ||
            add_text(&text, ", \"label\": ") < 0 ||
            (isnan(label[i]) ? add_text(&text, "null") : add_class(&text, label[i])) < 0 ||
            add_text(&text, ", \"model_version\": ") < 0 || add_long(&text, version[i]) < 0 ||
            add_text(&text, ", \"id\": ") < 0) {
            goto done;
        }
        if (event_id == Py_None) {
            if (add_text(&text, "null") < 0) goto done;
        } else if (!PyUnicode_Check(event_id) || add_quoted(&text, event_id, quote) < 0) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "an id must be a str or None");
            goto done;
        }
        PyObject *partition = PyTuple_GET_ITEM(ref, 1), *offset = PyTuple_GET_ITEM(ref, 2);
        long long p = PyLong_AsLongLong(partition), o = PyLong_AsLongLong(offset);
        if (PyErr_Occurred()) goto done;
        if (add_text(&text, ", \"source\": {\"topic\": ") < 0 || add(&text, topic.text, topic.length) < 0 ||
            add_text(&text, ", \"partition\": ") < 0 || add_long(&text, p) < 0 ||
            add_text(&text, ", \"offset\": ") < 0 || add_long(&text, o) < 0 || add_text(&text, "}") < 0) {
            goto done;
        }
        if (candidates != Py_None) {
            Py_ssize_t size;
            const char *member = PyUnicode_AsUTF8AndSize(PyList_GET_ITEM(candidates, i), &size);
            if (member == NULL || add(&text, member, size) < 0) goto done;
        }
        if (add_text(&text, "}") < 0) goto done;
        PyObject *value = PyBytes_FromStringAndSize(text.text, text.length), *headers = PyList_New(0);
        if (value == NULL || headers == NULL) {
            Py_XDECREF(value);
            Py_XDECREF(headers);
            goto done;
        }
        PyObject *origin = PyTuple_GET_SIZE(ref) > 5 ? PyTuple_GET_ITEM(ref, 5) : Py_None;
        PyObject *key = PyTuple_GET_ITEM(ref, 3);
        Py_INCREF(out_topic);
        Py_INCREF(key);
        Py_INCREF(origin);
        PyObject *items[5] = {out_topic, key, value, headers, origin};
        PyObject *made = named_tuple(record_type, items, 5);
        if (made == NULL) goto done;
        PyList_SET_ITEM(values, i, made);
    }
    result = values;
    values = NULL;
done:
    Py_XDECREF(values);
    release(&predicted);
    release(&probabilities);
    release(&scores);
    release(&versions);
    release(&labels);
    PyMem_Free(text.text);
    PyMem_Free(topic.text);
    return result;
}
