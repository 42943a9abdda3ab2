/* What the two sources of stream_neuron._encode share: the event bound, the set that finds a
 * feature given twice, the writer of a chunk's raw rows, and the hashing entry points. */
#ifndef STREAM_NEURON_ENCODE_COMMON_H
#define STREAM_NEURON_ENCODE_COMMON_H
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define MOST_FEATURES 256 /* larger events take the Python path (its duplicate check is a set) */
#define SLOTS 1024        /* a power of two over twice MOST_FEATURES: an open-addressed set of indices */

/* Where `key` is among the `m` keys of `keys` (-1: not there, and `slots` now places it at m), in a
 * set of 2^`bits` slots (at least twice as many as keys, set to -1 before the first key). The
 * event's features are found in one pass rather than by comparing each with all before it. */
static inline Py_ssize_t find_or_place_in(short *slots, int bits, const long long *keys, Py_ssize_t m,
                                          long long key) {
    const size_t mask = ((size_t)1 << bits) - 1;
    size_t s = (size_t)(((unsigned long long)key * 0x9E3779B97F4A7C15ULL) >> (64 - bits));
    while (slots[s] >= 0) {
        if (keys[slots[s]] == key) return slots[s];
        s = (s + 1) & mask;
    }
    slots[s] = (short)m;
    return -1;
}

/* The bits of a set of slots for `n` keys: at least twice as many slots, at least 16. */
static inline int slot_bits(Py_ssize_t n) {
    int bits = 4;
    while (((Py_ssize_t)1 << bits) < 2 * n) bits++;
    return bits;
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
/* How many of the `m` buckets are fresh in `in_use`, marked when at most `room` (else -1, nothing
 * marked); a negative `room` marks and counts none. */
Py_ssize_t encode_mark_fresh(char *in_use, const long long *buckets, Py_ssize_t m, Py_ssize_t room);

PyObject *encode_bind_murmur(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *encode_hash_token(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *encode_hash_features(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *encode_hash_into(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *encode_hash_events_into(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *encode_key_table(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
PyObject *encode_parse_named(PyObject *self, PyObject *const *args, Py_ssize_t nargs);
#endif
