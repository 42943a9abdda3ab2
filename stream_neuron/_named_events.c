/* The compiled reader of events whose features come by name (--features open and hashed), a poll at a
 * time, straight from the record's bytes into the chunk's entries (part of stream_neuron._encode):
 *
 *   parse_named(records, start, labels, label_set, max_bytes, EventRef, positions, budget, arrays, ends,
 *               encoding) -> (refs, stop, fresh)
 *
 * It reads records[start:] until it declines one: `stop` is that record's index (len(records): none
 * declined), and the Python reference path (decode_event, label_of, the encoder's encode) takes it
 * next, so every event, taken here or there, changes the vocabulary, the buckets in use and the rows
 * in the stream's order. refs: the EventRefs of records[start:stop], every one taken; their labels in
 * labels[0:], their entries appended to `arrays` (the sink's raw int64, float64 and bool bytearrays)
 * and each row's end to `ends`. positions, budget, label_set, max_bytes: as parse_dense's (_events.c).
 *
 * encoding: ("open", index, table, max_name_bytes): the vocabulary's dict of names to indices and its
 * key table (_key_table.c); a name not in it declines the event (the encoder adds it, or a scorer's
 * leaves it out). ("hashed", n_buckets, seed, max_name_bytes, in_use, room, bound): the hashing's
 * buckets and MurmurHash3 seed, the bytearray of buckets in use (a bit each), how many fresh buckets
 * fit (-1: a scorer's, none marked), and the largest magnitude of a bucket's value when it marks (an
 * event beyond it is declined, to be refused by the encoder before it takes a bucket); fresh counts
 * those marked, for the encoder's budget.
 *
 * It takes an event only as the reference takes it: features an object of at most MOST_FEATURES
 * names, each a finite number, a string or a boolean, no name given twice nor two features on one
 * index, names and string values valid UTF-8 of at most max_name_bytes, no escapes. The entries are
 * the encoders' own: a number under its name; open: a string or boolean v of f as "f_v" with 1.0,
 * unscaled; hashed: a string v of f as the token "f=v" with 1.0, a boolean as its name with 1.0 or 0.0,
 * each on its bucket with the hash's sign, summed per bucket in first-seen order.
 * tests/test_named_differential.py holds it to the reference record by record. */
#include "_encode_common.h"
#include "_event_records.h"
#include "_key_table.h"

#define LONGEST_KEY 8192

typedef struct {
    EventReader reader;
    int hashed;
    Py_ssize_t max_name_bytes;
    PyObject *index; /* open */
    KeyTable *table;
    long long n_buckets; /* hashed */
    uint32_t seed;
    unsigned char *in_use; /* a bit per bucket */
    Py_ssize_t room, fresh;
    double bound;
    long long at[MOST_FEATURES]; /* the event read: its entries */
    double val[MOST_FEATURES];
    char sc[MOST_FEATURES];
    Py_ssize_t k;
    PyObject *const *arrays; /* where a taken event's entries go */
    PyObject *ends;
    Py_ssize_t end;
} NamedReader;

/* UTF-8 as Python's strict decoder takes it: no overlong forms, no surrogates, nothing past U+10FFFF. */
static int valid_utf8(const unsigned char *s, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int more;
        unsigned char low = 0x80, high = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) more = 1;
        else if (c >= 0xE0 && c <= 0xEF) more = 2, low = c == 0xE0 ? 0xA0 : 0x80, high = c == 0xED ? 0x9F : 0xBF;
        else if (c >= 0xF0 && c <= 0xF4) more = 3, low = c == 0xF0 ? 0x90 : 0x80, high = c == 0xF4 ? 0x8F : 0xBF;
        else return 0;
        if (n - i <= more || s[i + 1] < low || s[i + 1] > high) return 0;
        for (int j = 2; j <= more; j++) {
            if (s[i + j] < 0x80 || s[i + j] > 0xBF) return 0;
        }
        i += more + 1;
    }
    return 1;
}

/* Whether the event named `name` before (its first `m` names, their hashes in `hashes`, are placed in
 * `slots`; else it is placed). */
static int named_twice(short *slots, Cursor *names, Py_ssize_t *lengths, uint64_t *hashes, Py_ssize_t m,
                       Cursor name, Py_ssize_t length) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)length;
    for (Py_ssize_t j = 0; j < length; j++) h = (h ^ name[j]) * 0x100000001b3ULL;
    h ^= h >> 31;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    hashes[m] = h;
    for (size_t s = (size_t)(h >> 54);; s = (s + 1) & (SLOTS - 1)) {
        short at = slots[s];
        if (at < 0) {
            slots[s] = (short)m;
            return 0;
        }
        if (hashes[at] == h && lengths[at] == length && memcmp(names[at], name, (size_t)length) == 0) return 1;
    }
}

/* The names of the last event read, in order, and for a hashed reader the MurmurHash3 of each as a
 * number's token. A stream's events mostly name the same features in the same order: a name found
 * where the last event had it is not looked for among the names before it (the last event had each
 * once, and so has this one up to there), nor hashed again under the same seed and binding. */
#define SHAPE_BYTES 16384
static struct {
    unsigned char bytes[SHAPE_BYTES];
    Py_ssize_t start[MOST_FEATURES], length[MOST_FEATURES];
    long long hash[MOST_FEATURES];
    char hashed[MOST_FEATURES]; /* hash[j] holds the name's hash under seed and binding */
    Py_ssize_t count;
    uint32_t seed;
    unsigned long binding;
} shape;

/* Whether the name at position m is the last event's name there. */
static inline int as_before(Py_ssize_t m, Cursor name, Py_ssize_t length) {
    return m < shape.count && shape.length[m] == length && same_bytes(shape.bytes + shape.start[m], name, length);
}

/* The event's `m` names as the shape, and for a hashed reader under `seed` the hashes it has (`known`);
 * its first `same` names are the shape's already. A shape over SHAPE_BYTES is forgotten. */
static void remember_shape(Cursor *names, Py_ssize_t *lengths, const long long *hashes, const char *known,
                           Py_ssize_t m, Py_ssize_t same, int hashed, uint32_t seed) {
    if (hashed && (shape.seed != seed || shape.binding != encode_murmur_binding)) {
        memset(shape.hashed, 0, sizeof shape.hashed);
        shape.seed = seed;
        shape.binding = encode_murmur_binding;
    }
    for (Py_ssize_t j = 0; hashed && j < same; j++) {
        if (known[j] && !shape.hashed[j]) shape.hash[j] = hashes[j], shape.hashed[j] = 1;
    }
    Py_ssize_t at = same ? shape.start[same - 1] + shape.length[same - 1] : 0;
    for (Py_ssize_t j = same; j < m; j++) {
        if (at + lengths[j] > SHAPE_BYTES) {
            shape.count = 0;
            return;
        }
        memcpy(shape.bytes + at, names[j], (size_t)lengths[j]);
        shape.start[j] = at;
        shape.length[j] = lengths[j];
        shape.hash[j] = hashes[j];
        shape.hashed[j] = hashed && known[j];
        at += lengths[j];
    }
    shape.count = m;
}

/* The index of an open vocabulary's `key`: 1 found, 0 not a name it knows, -1 with an exception set. */
static int vocabulary_index(NamedReader *r, const unsigned char *key, Py_ssize_t n, long long *index) {
    uint64_t hash = key_table_hash(r->table, key, n);
    if (key_table_find(r->table, hash, key, n, index)) return 1;
    PyObject *name = PyUnicode_DecodeUTF8((const char *)key, n, "strict");
    if (name == NULL) { /* checked as UTF-8 already; were it not, the reference would name it */
        if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) return -1;
        PyErr_Clear();
        return 0;
    }
    PyObject *found = PyDict_GetItemWithError(r->index, name); /* borrowed */
    Py_DECREF(name);
    if (found == NULL) return PyErr_Occurred() ? -1 : 0;
    *index = PyLong_AsLongLong(found);
    if (*index == -1 && PyErr_Occurred()) return -1;
    return key_table_enter(r->table, hash, key, n, *index) < 0 ? -1 : 1;
}

/* The bytes `name` + `sep` + `text` into `key` (at most LONGEST_KEY): their length, or -1 when longer. */
static Py_ssize_t joined(unsigned char *key, Cursor name, Py_ssize_t name_length, char sep, Cursor text,
                        Py_ssize_t text_length) {
    if (name_length + 1 + text_length > LONGEST_KEY) return -1;
    memcpy(key, name, (size_t)name_length);
    key[name_length] = (unsigned char)sep;
    memcpy(key + name_length + 1, text, (size_t)text_length);
    return name_length + 1 + text_length;
}

/* One feature into the event's entries: 1, 0 to decline the event, -1 with an exception set. `text`
 * (NULL for a number or a boolean) is a string value, `word` a boolean's ("True" or "False").
 * Hashed, a number's token is its name: its hash is `*name_hash` when `*name_hashed`, else it is
 * hashed and both are set. */
static int add_feature(NamedReader *r, uint64_t *placed, Cursor name, Py_ssize_t name_length, Cursor text,
                       Py_ssize_t text_length, const char *word, double amount, long long *name_hash,
                       char *name_hashed) {
    unsigned char key[LONGEST_KEY];
    long long at;
    if (r->hashed) { /* river's FeatureHasher: a boolean is a number */
        long long h;
        if (text == NULL) {
            if (!*name_hashed) {
                if (encode_hash_bytes((const char *)name, name_length, r->seed, name_hash)) return -1;
                *name_hashed = 1;
            }
            h = *name_hash;
        } else {
            Py_ssize_t n = joined(key, name, name_length, '=', text, text_length);
            if (n < 0) return 0;
            if (encode_hash_bytes((const char *)key, n, r->seed, &h)) return -1;
        }
        at = bucket_of(h, r->n_buckets);
        __builtin_prefetch(r->in_use + (at >> 3), 1, 3); /* marked when the event is taken */
        Py_ssize_t j = find_or_place_in(placed, r->at, r->k, at);
        if (j < 0) {
            j = r->k++;
            r->at[j] = at;
            r->val[j] = 0.0;
            r->sc[j] = 1;
        }
        r->val[j] += h < 0 ? -amount : amount;
        return 1;
    }
    int numeric = text == NULL && word == NULL;
    if (word != NULL) text = (Cursor)word, text_length = (Py_ssize_t)strlen(word);
    Py_ssize_t n = name_length;
    if (text != NULL) {
        n = joined(key, name, name_length, '_', text, text_length);
        if (n < 0) return 0;
    } else if (name_length > LONGEST_KEY) {
        return 0;
    } else {
        memcpy(key, name, (size_t)name_length);
    }
    int known = vocabulary_index(r, key, n, &at);
    if (known <= 0) return known;
    if (find_or_place_in(placed, r->at, r->k, at) >= 0) return 0; /* {"a_b": 1, "a": "b"} */
    r->at[r->k] = at;
    r->val[r->k] = numeric ? amount : 1.0;
    r->sc[r->k++] = (char)numeric;
    return 1;
}

static Cursor named_features(EventReader *base, Cursor p, Cursor end, Py_ssize_t i) {
    NamedReader *r = (NamedReader *)base;
    (void)i;
    short name_slots[SLOTS];
    KeyFilter placed;
    Cursor names[MOST_FEATURES];
    Py_ssize_t lengths[MOST_FEATURES], m = 0, same = 0; /* the first `same` names are the shape's */
    uint64_t hashes[MOST_FEATURES];
    long long token_hash[MOST_FEATURES];
    char token_hashed[MOST_FEATURES];
    int hashes_kept = r->hashed && shape.seed == r->seed && shape.binding == encode_murmur_binding, hashed_here = 0;
    r->k = 0;
    if (*p != '{') return NULL;
    p = skip_space(p + 1, end);
    if (p < end && *p == '}') return p + 1;
    memset(placed, 0, sizeof placed);
    for (;; m++) {
        Cursor name, text = NULL;
        Py_ssize_t name_length, text_length = 0;
        int ascii;
        const char *word = NULL;
        double amount = 1.0;
        if (m == MOST_FEATURES || p >= end || *p != '"') return NULL;
        if ((p = plain_string(p, end, &name, &name_length, &ascii)) == NULL) return NULL;
        if (name_length > r->max_name_bytes || (!ascii && !valid_utf8(name, name_length))) return NULL;
        names[m] = name;
        lengths[m] = name_length;
        token_hashed[m] = 0;
        if (same == m && as_before(m, name, name_length)) {
            same++;
            if (hashes_kept && shape.hashed[m]) token_hash[m] = shape.hash[m], token_hashed[m] = 1;
        } else {
            if (same == m) { /* the first name off the shape: the set of names gets those before it */
                memset(name_slots, 0xff, sizeof name_slots);
                for (Py_ssize_t j = 0; j < m; j++) named_twice(name_slots, names, lengths, hashes, j, names[j], lengths[j]);
            }
            if (named_twice(name_slots, names, lengths, hashes, m, name, name_length)) return NULL;
        }
        p = skip_space(p, end);
        if (p >= end || *p != ':') return NULL;
        p = skip_space(p + 1, end);
        if (p >= end) return NULL;
        if (*p == '"') {
            if ((p = plain_string(p, end, &text, &text_length, &ascii)) == NULL) return NULL;
            if (text_length > r->max_name_bytes || (!ascii && !valid_utf8(text, text_length))) return NULL;
        } else if (*p == 't' && literal(p, end, "true")) {
            word = "True";
            p += 4;
        } else if (*p == 'f' && literal(p, end, "false")) {
            word = "False";
            amount = r->hashed ? 0.0 : 1.0;
            p += 5;
        } else if ((p = feature(p, end, &amount)) == NULL) {
            return NULL;
        }
        char was_known = token_hashed[m];
        int added = add_feature(r, placed, name, name_length, text, text_length, word, amount, &token_hash[m],
                                &token_hashed[m]);
        hashed_here |= token_hashed[m] && !was_known;
        if (added <= 0) {
            r->reader.failed = added < 0;
            return NULL;
        }
        p = skip_space(p, end);
        if (p < end && *p == ',') {
            p = skip_space(p + 1, end);
            continue;
        }
        if (p >= end || *p != '}') return NULL;
        if (same != m + 1 || shape.count != m + 1 || hashed_here)
            remember_shape(names, lengths, token_hash, token_hashed, m + 1, same, r->hashed, r->seed);
        return p + 1;
    }
}

static int take_named(EventReader *base) {
    NamedReader *r = (NamedReader *)base;
    if (r->hashed) {
        Py_ssize_t fresh = encode_mark_fresh(r->in_use, r->at, r->val, r->k, r->room, r->bound);
        if (fresh < 0) return 0; /* the budget's or the bound's refusal: the encoder words it */
        if (r->room >= 0) r->room -= fresh;
        r->fresh += fresh;
    }
    Py_ssize_t end = encode_write_entries(r->arrays, r->end, r->at, r->val, r->sc, r->k);
    if (end < 0) return -1;
    PyObject *ended = PyLong_FromSsize_t(end);
    if (ended == NULL || PyList_Append(r->ends, ended) < 0) {
        Py_XDECREF(ended);
        return -1;
    }
    Py_DECREF(ended);
    r->end = end;
    return 1;
}

/* The encoding tuple's settings into the reader: 0, or -1 with an exception set. */
static int encoding_of(PyObject *encoding, NamedReader *r) {
    const char *usage = "encoding: (\"open\", index, table, max_name_bytes) or "
                        "(\"hashed\", n_buckets, seed, max_name_bytes, in_use, room, bound)";
    if (!PyTuple_Check(encoding) || PyTuple_GET_SIZE(encoding) < 4 ||
        !PyUnicode_Check(PyTuple_GET_ITEM(encoding, 0))) {
        PyErr_SetString(PyExc_TypeError, usage);
        return -1;
    }
    r->hashed = PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(encoding, 0), "hashed") == 0;
    r->max_name_bytes = PyLong_AsSsize_t(PyTuple_GET_ITEM(encoding, 3));
    if (!r->hashed) {
        r->index = PyTuple_GET_ITEM(encoding, 1);
        r->table = PyCapsule_GetPointer(PyTuple_GET_ITEM(encoding, 2), KEY_TABLE_NAME);
        if (r->table == NULL || !PyDict_CheckExact(r->index)) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, usage);
            return -1;
        }
        return PyErr_Occurred() ? -1 : 0;
    }
    PyObject *in_use = PyTuple_GET_SIZE(encoding) == 7 ? PyTuple_GET_ITEM(encoding, 4) : NULL;
    if (in_use == NULL || !PyByteArray_CheckExact(in_use)) {
        PyErr_SetString(PyExc_TypeError, usage);
        return -1;
    }
    r->n_buckets = PyLong_AsLongLong(PyTuple_GET_ITEM(encoding, 1));
    r->seed = (uint32_t)PyLong_AsUnsignedLong(PyTuple_GET_ITEM(encoding, 2));
    r->room = PyLong_AsSsize_t(PyTuple_GET_ITEM(encoding, 5));
    r->bound = PyFloat_AsDouble(PyTuple_GET_ITEM(encoding, 6));
    r->in_use = (unsigned char *)PyByteArray_AS_STRING(in_use);
    if (PyErr_Occurred()) return -1;
    if (r->n_buckets <= 0 || PyByteArray_GET_SIZE(in_use) != (r->n_buckets + 7) / 8) {
        PyErr_SetString(PyExc_ValueError, "in_use must hold a bit per bucket");
        return -1;
    }
    return 0;
}

PyObject *encode_parse_named(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 11 || !PyList_Check(args[0]) || !PyType_Check(args[5]) || !PyDict_Check(args[6]) ||
        !PyTuple_Check(args[8]) || PyTuple_GET_SIZE(args[8]) != 3 || !PyList_Check(args[9])) {
        PyErr_SetString(PyExc_TypeError, "parse_named(records: list, start, labels, label_set, max_bytes, EventRef, "
                                         "positions: dict, prediction_budget, arrays: tuple, ends: list, encoding)");
        return NULL;
    }
    PyObject *records = args[0], *refs = NULL, *status = NULL, *result = NULL;
    Py_ssize_t n = PyList_GET_SIZE(records), start = PyLong_AsSsize_t(args[1]), stop;
    RecordsContext context = {PyLong_AsSsize_t(args[4]), PyLong_AsSsize_t(args[7]), (PyTypeObject *)args[5], args[6]};
    NamedReader r;
    memset(&r, 0, sizeof r);
    r.reader.features = named_features;
    r.reader.take = take_named;
    r.reader.label_set = PyLong_AsLong(args[3]);
    r.arrays = &PyTuple_GET_ITEM(args[8], 0);
    r.ends = args[9];
    if (PyErr_Occurred() || encoding_of(args[10], &r) < 0) return NULL;
    if (start < 0 || start > n) {
        PyErr_SetString(PyExc_ValueError, "start must be within the records");
        return NULL;
    }
    Py_ssize_t rows = PyList_GET_SIZE(r.ends);
    r.end = rows ? PyLong_AsSsize_t(PyList_GET_ITEM(r.ends, rows - 1)) : 0;
    if (r.end < 0 && PyErr_Occurred()) return NULL;
    Py_buffer labels = {0};
    if (float_buffer(args[2], &labels, n - start, "labels") < 0) return NULL;
    status = read_records(records, start, labels.buf, &context, &r.reader, 1, &refs, &stop);
    if (status != NULL) result = Py_BuildValue("(Onn)", refs, stop, r.fresh);
    Py_XDECREF(status);
    Py_XDECREF(refs);
    PyBuffer_Release(&labels);
    return result;
}
