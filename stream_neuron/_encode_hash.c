/* FeatureHashing's fast paths (feature_hashing.py), part of stream_neuron._encode. */
#include <dlfcn.h>

#include "_encode_common.h"

/* MurmurHash3 (x86, 32 bits) of the mmh3 library, the kept implementation river's FeatureHasher
 * agrees with: bound by bind_murmur to the function mmh3's own extension exports, so a token is
 * hashed without a Python call; feature_hashing checks the binding against mmh3.hash before it
 * trusts it. Unbound (another build of mmh3, no dlopen), every token goes through `python_murmur`
 * (mmh3.hash itself): the same hashes at a Python call each. */
typedef void (*murmur32_fn)(const void *key, Py_ssize_t len, uint32_t seed, void *out);
static murmur32_fn native_murmur = NULL;
static PyObject *python_murmur = NULL;
unsigned long encode_murmur_binding = 1;

static void forget_names(void);

PyObject *encode_bind_murmur(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2 || !PyCallable_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "bind_murmur(path of mmh3's extension | None, mmh3.hash)");
        return NULL;
    }
    Py_XSETREF(python_murmur, Py_NewRef(args[1]));
    forget_names(); /* hashed by the function bound before */
    encode_murmur_binding++;
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
int encode_hash_bytes(const char *key, Py_ssize_t len, uint32_t seed, long long *hash) {
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

PyObject *encode_hash_token(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2 || !PyBytes_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "hash_token(token: bytes, seed: int)");
        return NULL;
    }
    unsigned long seed = PyLong_AsUnsignedLong(args[1]);
    if (seed == (unsigned long)-1 && PyErr_Occurred()) return NULL;
    long long h;
    if (encode_hash_bytes(PyBytes_AS_STRING(args[0]), PyBytes_GET_SIZE(args[0]), (uint32_t)seed, &h)) return NULL;
    return PyLong_FromLongLong(h);
}

/* An event's features hashed into `buckets` and their summed signed values `sums` (first-seen order,
 * `*m` of them): 1; 0 for anything the Python encoder must see (a value that is not a finite float, an
 * integer a float64 holds, a string or a boolean; a name or value over `shortest` characters; more
 * than MOST_FEATURES features); -1 with an exception set. The token of a number is its name's UTF-8,
 * of a string v of f the UTF-8 of "f=v". */
#define LONGEST_TOKEN 8192

/* The hashes of numeric features' names, by the name object itself: events decoded by the component
 * share their key objects (jiter's key cache), so a name repeated from event to event is hashed once.
 * Each slot holds a reference to its name, so an address seen again is the same, unchanged, string. */
#define NAME_SLOTS 4096
static struct {
    PyObject *name;
    uint32_t seed;
    long long hash;
} named[NAME_SLOTS];

static void forget_names(void) {
    for (size_t slot = 0; slot < NAME_SLOTS; slot++) Py_CLEAR(named[slot].name);
}

/* The hash of a numeric feature's name: the kept one when this very name object was hashed under `seed`
 * by the binding of now, else its UTF-8 hashed and kept (1; 0: not valid UTF-8, a lone surrogate the
 * Python path names; -1 with an exception set). */
static int name_hash(PyObject *name, uint32_t seed, long long *hash) {
    size_t slot = ((uintptr_t)name >> 4) & (NAME_SLOTS - 1);
    if (named[slot].name == name && named[slot].seed == seed) {
        *hash = named[slot].hash;
        return 1;
    }
    Py_ssize_t length;
    const char *utf8 = PyUnicode_AsUTF8AndSize(name, &length);
    if (utf8 == NULL) {
        PyErr_Clear();
        return 0;
    }
    if (encode_hash_bytes(utf8, length, seed, hash)) return -1;
    Py_XSETREF(named[slot].name, Py_NewRef(name));
    named[slot].seed = seed;
    named[slot].hash = *hash;
    return 1;
}

static int hash_event(PyObject *features, long long n, uint32_t seed, Py_ssize_t shortest, long long *buckets,
                      double *sums, Py_ssize_t *count) {
    if (PyDict_GET_SIZE(features) > MOST_FEATURES) return 0; /* n > 0: hashing_settings checked it */
    char token[LONGEST_TOKEN];
    KeyFilter placed = {0};
    Py_ssize_t m = 0, pos = 0;
    PyObject *name, *value;
    while (PyDict_Next(features, &pos, &name, &value)) {
        if (!PyUnicode_CheckExact(name) || PyUnicode_GET_LENGTH(name) > shortest) return 0;
        double amount;
        long long h;
        if (PyUnicode_CheckExact(value)) {
            if (PyUnicode_GET_LENGTH(value) > shortest) return 0;
            Py_ssize_t name_len, value_len;
            const char *name_utf8 = PyUnicode_AsUTF8AndSize(name, &name_len);
            const char *value_utf8 = name_utf8 == NULL ? NULL : PyUnicode_AsUTF8AndSize(value, &value_len);
            if (value_utf8 == NULL) {
                PyErr_Clear(); /* a lone surrogate: the Python path names it */
                return 0;
            }
            if (name_len + 1 + value_len > LONGEST_TOKEN) return 0;
            memcpy(token, name_utf8, (size_t)name_len);
            token[name_len] = '=';
            memcpy(token + name_len + 1, value_utf8, (size_t)value_len);
            if (encode_hash_bytes(token, name_len + 1 + value_len, seed, &h)) return -1;
            amount = 1.0;
        } else {
            if (PyFloat_CheckExact(value)) {
                amount = PyFloat_AS_DOUBLE(value);
                if (!isfinite(amount)) return 0;
            } else if (PyBool_Check(value)) {
                amount = value == Py_True ? 1.0 : 0.0;
            } else if (PyLong_CheckExact(value)) {
                amount = PyLong_AsDouble(value);
                if (amount == -1.0 && PyErr_Occurred()) {
                    PyErr_Clear();
                    return 0;
                }
            } else {
                return 0;
            }
            int hashed = name_hash(name, seed, &h);
            if (hashed <= 0) return hashed;
        }
        long long bucket = bucket_of(h, n);
        double signed_amount = h < 0 ? -amount : amount;
        Py_ssize_t j = find_or_place_in(placed, buckets, m, bucket);
        if (j < 0) {
            j = m++;
            buckets[j] = bucket;
            sums[j] = 0.0;
        }
        sums[j] += signed_amount;
    }
    *count = m;
    return 1;
}

/* How many of the `m` (distinct) buckets are not yet marked in `in_use`, a bit per bucket in
 * little-endian bit order (numpy's packbits with bitorder="little": a snapshot's bitmap as it is); they
 * are marked when there are at most `room` and every value of `sums` is within +/-`bound` (else -1,
 * nothing marked: the Python encoder takes the event and refuses it, so an event the model will not
 * learn takes no bucket). A negative `room`: none are marked or counted (a scorer's view). A bit, not
 * a byte, per bucket: 2^20 buckets take 128 KiB, which stays in the core's cache beside the weights. */
Py_ssize_t encode_mark_fresh(unsigned char *in_use, const long long *buckets, const double *sums, Py_ssize_t m,
                             Py_ssize_t room, double bound) {
    if (room < 0) return 0;
    Py_ssize_t fresh = 0;
    int within = 1;
    for (Py_ssize_t j = 0; j < m; j++) {
        fresh += !((in_use[buckets[j] >> 3] >> (buckets[j] & 7)) & 1);
        within &= fabs(sums[j]) <= bound; /* a sum overflowed to infinity is not */
    }
    if (fresh > room || !within) return -1;
    for (Py_ssize_t j = 0; fresh && j < m; j++) /* none fresh: nothing to mark */
        in_use[buckets[j] >> 3] |= (unsigned char)(1u << (buckets[j] & 7));
    return fresh;
}

/* The hashing's settings as the entry points take them: n, seed, short, in_use, room, bound. */
static int hashing_settings(PyObject *const *settings, long long *n, uint32_t *seed, Py_ssize_t *shortest,
                            unsigned char **in_use, Py_ssize_t *room, double *bound) {
    if (!PyByteArray_CheckExact(settings[3])) {
        PyErr_SetString(PyExc_TypeError, "in_use must be a bytearray");
        return -1;
    }
    *n = PyLong_AsLongLong(settings[0]);
    unsigned long seeded = PyLong_AsUnsignedLong(settings[1]);
    *shortest = PyLong_AsSsize_t(settings[2]);
    *room = PyLong_AsSsize_t(settings[4]);
    *bound = PyFloat_AsDouble(settings[5]);
    if (PyErr_Occurred()) return -1;
    if (*n <= 0 || PyByteArray_GET_SIZE(settings[3]) != (*n + 7) / 8) {
        PyErr_SetString(PyExc_ValueError, "in_use must hold a bit per bucket");
        return -1;
    }
    *seed = (uint32_t)seeded;
    *in_use = (unsigned char *)PyByteArray_AS_STRING(settings[3]);
    return 0;
}

/* The arguments both single-event entry points share: features, then the hashing's settings. */
static int hashing_args(PyObject *const *args, long long *n, uint32_t *seed, Py_ssize_t *shortest,
                        unsigned char **in_use, Py_ssize_t *room, double *bound) {
    if (!PyDict_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "features must be a dict");
        return -1;
    }
    return hashing_settings(args + 1, n, seed, shortest, in_use, room, bound);
}

/* hash_features(features, n, seed, short, in_use, room, bound) -> (buckets, values, scaled, fresh) | None
 *
 * FeatureHashing.encode's fast path: the event's entries as lists, and how many of its buckets were
 * fresh (marked in `in_use` by encode_mark_fresh). None: the Python encoder takes the event (hash_event's
 * cases, more fresh buckets than `room`, or a value beyond `bound` when it may mark). */
PyObject *encode_hash_features(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    long long n, buckets[MOST_FEATURES];
    double sums[MOST_FEATURES];
    uint32_t seed;
    Py_ssize_t shortest, room, m;
    unsigned char *in_use;
    double bound;
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "hash_features(features, n, seed, short, in_use, room, bound)");
        return NULL;
    }
    if (hashing_args(args, &n, &seed, &shortest, &in_use, &room, &bound)) return NULL;
    int hashed = hash_event(args[0], n, seed, shortest, buckets, sums, &m);
    if (hashed < 0) return NULL;
    if (hashed == 0) Py_RETURN_NONE;
    Py_ssize_t fresh = encode_mark_fresh(in_use, buckets, sums, m, room, bound);
    if (fresh < 0) Py_RETURN_NONE;
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
    return Py_BuildValue("(NNNn)", out_buckets, out_values, out_scaled, fresh);
error:
    Py_XDECREF(out_buckets);
    Py_XDECREF(out_values);
    Py_XDECREF(out_scaled);
    return NULL;
}

/* hash_into(features, n, seed, short, in_use, room, bound, indices, values, scaled, end)
 *     -> (new end, fresh) | None
 *
 * hash_features without a Python object per entry: the event's buckets, values and scaled flags
 * (all 1) written from entry `end` on by write_entries, and how many buckets were fresh. None:
 * nothing written or marked, and the Python encoder takes the event. */
PyObject *encode_hash_into(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    long long n, buckets[MOST_FEATURES];
    double sums[MOST_FEATURES];
    char ones[MOST_FEATURES];
    uint32_t seed;
    Py_ssize_t shortest, room, m;
    unsigned char *in_use;
    double bound;
    if (nargs != 11) {
        PyErr_SetString(PyExc_TypeError,
                        "hash_into(features, n, seed, short, in_use, room, bound, indices, values, scaled, end)");
        return NULL;
    }
    if (hashing_args(args, &n, &seed, &shortest, &in_use, &room, &bound)) return NULL;
    int hashed = hash_event(args[0], n, seed, shortest, buckets, sums, &m);
    if (hashed < 0) return NULL;
    if (hashed == 0) Py_RETURN_NONE;
    Py_ssize_t fresh = encode_mark_fresh(in_use, buckets, sums, m, room, bound);
    if (fresh < 0) Py_RETURN_NONE;
    memset(ones, 1, (size_t)m);
    Py_ssize_t end = encode_write_entries(args + 7, PyLong_AsSsize_t(args[10]), buckets, sums, ones, m);
    if (end < 0) return NULL;
    return Py_BuildValue("(nn)", end, fresh);
}

/* One event of hash_events_into: 1 taken (entries written, its end appended), 0 declined, -1 with an
 * exception set. */
static int taken_event(PyObject *event, long long n, uint32_t seed, Py_ssize_t shortest, unsigned char *in_use,
                       Py_ssize_t *room, double bound, Py_ssize_t *fresh, PyObject *const *arrays, PyObject *ends,
                       Py_ssize_t *end) {
    static PyObject *features_key = NULL;
    long long buckets[MOST_FEATURES];
    double sums[MOST_FEATURES];
    char ones[MOST_FEATURES];
    Py_ssize_t m;
    if (features_key == NULL && (features_key = PyUnicode_InternFromString("features")) == NULL) return -1;
    PyObject *features = PyDict_CheckExact(event) ? PyDict_GetItemWithError(event, features_key) : NULL;
    if (features == NULL) return PyErr_Occurred() ? -1 : 0;
    if (!PyDict_CheckExact(features)) return 0;
    int hashed = hash_event(features, n, seed, shortest, buckets, sums, &m);
    if (hashed <= 0) return hashed;
    Py_ssize_t taken = encode_mark_fresh(in_use, buckets, sums, m, *room, bound);
    if (taken < 0) return 0;
    if (*room >= 0) *room -= taken;
    *fresh += taken;
    memset(ones, 1, (size_t)m);
    *end = encode_write_entries(arrays, *end, buckets, sums, ones, m);
    if (*end < 0) return -1;
    PyObject *ended = PyLong_FromSsize_t(*end);
    int appended = ended == NULL ? -1 : PyList_Append(ends, ended);
    Py_XDECREF(ended);
    return appended < 0 ? -1 : 1;
}

/* hash_events_into(events, start, n, seed, short, in_use, room, bound, indices, values, scaled, ends)
 *     -> (stop, fresh)
 *
 * hash_into over a list of events (dicts whose "features" are hashed) from events[start] on, in one
 * call: each event's entries appended after the last of `ends`, and its end appended to `ends`, until
 * an event hash_into would decline (its "features" not a dict among them). stop: that event's index
 * (len(events): none declined); fresh: the buckets marked in use, all within `room`. */
PyObject *encode_hash_events_into(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    long long n;
    uint32_t seed;
    Py_ssize_t shortest, room, fresh = 0;
    unsigned char *in_use;
    double bound;
    if (nargs != 12 || !PyList_CheckExact(args[0]) || !PyList_CheckExact(args[11])) {
        PyErr_SetString(PyExc_TypeError, "hash_events_into(events: list, start, n, seed, short, in_use, room, "
                                         "bound, indices, values, scaled, ends: list)");
        return NULL;
    }
    PyObject *events = args[0], *ends = args[11];
    Py_ssize_t at = PyLong_AsSsize_t(args[1]), rows = PyList_GET_SIZE(ends);
    Py_ssize_t end = rows ? PyLong_AsSsize_t(PyList_GET_ITEM(ends, rows - 1)) : 0;
    if (PyErr_Occurred() || hashing_settings(args + 2, &n, &seed, &shortest, &in_use, &room, &bound)) return NULL;
    if (at < 0 || at > PyList_GET_SIZE(events) || end < 0) {
        PyErr_SetString(PyExc_ValueError, "start must be within the events, and the ends not negative");
        return NULL;
    }
    /* The list's size read at each event, and the event held: a key's __eq__ may change the list. */
    for (; at < PyList_GET_SIZE(events); at++) {
        PyObject *event = Py_NewRef(PyList_GET_ITEM(events, at));
        int taken = taken_event(event, n, seed, shortest, in_use, &room, bound, &fresh, args + 8, ends, &end);
        Py_DECREF(event);
        if (taken < 0) return NULL;
        if (taken == 0) break;
    }
    return Py_BuildValue("(nn)", at, fresh);
}
