/* What the two sources of stream_neuron._encode share: the event bound, the filter that finds a
 * feature given twice, the writer of a chunk's raw rows, and the hashing entry points. */
#ifndef STREAM_NEURON_ENCODE_COMMON_H
#define STREAM_NEURON_ENCODE_COMMON_H
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define MOST_FEATURES 256 /* larger events take the Python path (its duplicate check is a set) */
#define SLOTS 1024        /* a power of two over twice MOST_FEATURES: an open-addressed set of names */

/* A filter of the keys an event has placed: a bit per key, chosen by its hash among FILTER_WORDS * 64.
 * Most events place distinct keys (a dict's names, and hashed buckets that rarely collide), so a key
 * whose bit is clear is placed at once, a branch the processor predicts; only a set bit (the key
 * again, or another on its bit: under 1 in 80 for 50 features) compares it with the keys before it.
 * An open-addressed set of slots did the same with a probe each, and its probes' mispredicted ends
 * cost more than the rare comparisons. Cleared (zeroed) before an event's first key. */
#define FILTER_WORDS 64
typedef uint64_t KeyFilter[FILTER_WORDS];

/* Where `key` is among the `m` keys of `keys` (-1: not there, and `filter` now has it: the caller
 * places it at m). */
static inline Py_ssize_t find_or_place_in(uint64_t *filter, const long long *keys, Py_ssize_t m, long long key) {
    const uint64_t h = ((uint64_t)key * 0x9E3779B97F4A7C15ULL) >> 52, bit = (uint64_t)1 << (h & 63);
    uint64_t *word = filter + (h >> 6);
    if (!(*word & bit)) {
        *word |= bit;
        return -1;
    }
    for (Py_ssize_t j = 0; j < m; j++)
        if (keys[j] == key) return j;
    return -1;
}

/* The bucket of a signed hash among `n`: Python's floored modulo (`h % n`), a mask of the two's
 * complement for 2^bits buckets (FeatureHashing's). */
static inline long long bucket_of(long long h, long long n) {
    return (n & (n - 1)) == 0 ? (h & (n - 1)) : ((h % n) + n) % n;
}

Py_ssize_t encode_write_entries(PyObject *const *arrays, Py_ssize_t end, const long long *at, const double *val,
                                const char *sc, Py_ssize_t k);

/* Which binding of MurmurHash3 hashes now: a hash kept from another binding is not trusted. */
extern unsigned long encode_murmur_binding;
/* The signed MurmurHash3 of `len` bytes (mmh3's; -1 with an exception set only on its Python path). */
int encode_hash_bytes(const char *key, Py_ssize_t len, uint32_t seed, long long *hash);
/* How many of the `m` buckets are fresh in `in_use` (a bit per bucket), marked when at most `room` and
 * every value of `sums` is within +/-`bound` (else -1, nothing marked); a negative `room` marks and
 * counts none. */
Py_ssize_t encode_mark_fresh(unsigned char *in_use, const long long *buckets, const double *sums, Py_ssize_t m,
                             Py_ssize_t room, double bound);

PyObject *encode_bind_murmur(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *encode_hash_token(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *encode_hash_features(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *encode_hash_into(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *encode_hash_events_into(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *encode_key_table(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *encode_parse_named(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
#endif
