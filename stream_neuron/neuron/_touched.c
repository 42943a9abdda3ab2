/* Which features a sparse snapshot holds, and its arrays' entries at them (sparse_state.py's
 * SnapshotScratch, for sparse.py's sparse_state):
 *
 *   touched_bits(arrays, bits) -> count
 *       bits (writable, (n + 7) // 8 bytes) gets a bit per feature in little-endian bit order, as
 *       numpy's packbits(mask, bitorder="little") packs it, set where any of `arrays` (a tuple of
 *       C-contiguous float64 or int64 arrays of n entries each) is not 0 as numpy's `!= 0` compares
 *       (-0.0 is 0, NaN is not); the bits past n are 0. count: the bits set.
 *   gather_bits(bits, array, out) -> None
 *       out (writable, 8 bytes per bit set) gets array's entries (float64 or int64, n of them) at the
 *       bits set, in order: numpy's compress(mask, array), bit for bit.
 *
 * numpy takes four passes for it (the comparison into a mask of a byte per feature, its count, its
 * packing, and compress, which branches on every flag): for 2^20 hashed buckets, about half of them
 * touched, 2 to 4 ms of every snapshot. Here it is a pass over each array for the bits and one for
 * the entries of each, without the GIL. */
#include "_kernel_common.h"
#include <stdint.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static int get_bytes(PyObject *obj, Buffer *b, int writable, const char *name) {
    b->held = 0;
    if (PyObject_GetBuffer(obj, &b->view, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0) return -1;
    b->held = 1;
    if (b->view.itemsize != 1) {
        PyErr_Format(PyExc_TypeError, "%s must be contiguous bytes", name);
        return -1;
    }
    return 0;
}

/* bits |= (x != 0) of one array, a byte (8 features) at a time: SSE2's CMPNEQPD is `!=` as C and
 * numpy compare (true for NaN, false for -0.0), and MOVMSKPD packs its results into bits, four times
 * faster than a comparison and a shift per feature. */
static void or_float(unsigned char *bits, const double *x, Py_ssize_t n) {
    Py_ssize_t whole = n / 8;
#if defined(__SSE2__)
    const __m128d zero = _mm_setzero_pd();
    for (Py_ssize_t byte = 0; byte < whole; byte++) {
        const double *v = x + 8 * byte;
        int set = _mm_movemask_pd(_mm_cmpneq_pd(_mm_loadu_pd(v), zero)) |
                  _mm_movemask_pd(_mm_cmpneq_pd(_mm_loadu_pd(v + 2), zero)) << 2 |
                  _mm_movemask_pd(_mm_cmpneq_pd(_mm_loadu_pd(v + 4), zero)) << 4 |
                  _mm_movemask_pd(_mm_cmpneq_pd(_mm_loadu_pd(v + 6), zero)) << 6;
        bits[byte] |= (unsigned char)set;
    }
#else
    for (Py_ssize_t byte = 0; byte < whole; byte++) {
        const double *v = x + 8 * byte;
        unsigned char set = 0;
        for (int k = 0; k < 8; k++) set |= (unsigned char)((v[k] != 0.0) << k);
        bits[byte] |= set;
    }
#endif
    for (Py_ssize_t i = 8 * whole; i < n; i++) bits[i >> 3] |= (unsigned char)((x[i] != 0.0) << (i & 7));
}

static void or_int(unsigned char *bits, const long long *x, Py_ssize_t n) {
    Py_ssize_t whole = n / 8;
    for (Py_ssize_t byte = 0; byte < whole; byte++) {
        const long long *v = x + 8 * byte;
        unsigned char set = 0;
        for (int k = 0; k < 8; k++) set |= (unsigned char)((v[k] != 0) << k);
        bits[byte] |= set;
    }
    for (Py_ssize_t i = 8 * whole; i < n; i++) bits[i >> 3] |= (unsigned char)((x[i] != 0) << (i & 7));
}

static Py_ssize_t bits_set(const unsigned char *bits, Py_ssize_t n_bytes) {
    Py_ssize_t count = 0, i = 0;
    for (; i + 8 <= n_bytes; i += 8) {
        uint64_t word;
        memcpy(&word, bits + i, 8);
        count += __builtin_popcountll(word);
    }
    for (; i < n_bytes; i++) count += __builtin_popcount(bits[i]);
    return count;
}

PyObject *touched_bits(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2 || !PyTuple_Check(args[0]) || PyTuple_GET_SIZE(args[0]) == 0) {
        PyErr_SetString(PyExc_TypeError, "touched_bits takes a non-empty tuple of arrays and the bits");
        return NULL;
    }
    enum { MOST_ARRAYS = 16 };
    Py_ssize_t n_arrays = PyTuple_GET_SIZE(args[0]);
    if (n_arrays > MOST_ARRAYS) {
        PyErr_SetString(PyExc_ValueError, "touched_bits: at most 16 arrays");
        return NULL;
    }
    Buffer b[MOST_ARRAYS + 1] = {{{0}}};
    int is_float[MOST_ARRAYS];
    PyObject *result = NULL;
    if (get_bytes(args[1], &b[n_arrays], 1, "bits") < 0) goto done;
    for (Py_ssize_t a = 0; a < n_arrays; a++)
        if (get_entries(PyTuple_GET_ITEM(args[0], a), &b[a], 0, "each array", 1, &is_float[a]) < 0) goto done;
    Py_ssize_t n = b[0].view.len / 8, n_bytes = b[n_arrays].view.len;
    for (Py_ssize_t a = 1; a < n_arrays; a++)
        if (b[a].view.len / 8 != n) {
            PyErr_SetString(PyExc_ValueError, "touched_bits: the arrays differ in length");
            goto done;
        }
    if (n_bytes != (n + 7) / 8) {
        PyErr_SetString(PyExc_ValueError, "touched_bits: the bits are not (n + 7) // 8 bytes");
        goto done;
    }
    unsigned char *bits = b[n_arrays].view.buf;
    Py_ssize_t count;
    Py_BEGIN_ALLOW_THREADS
    memset(bits, 0, (size_t)n_bytes);
    for (Py_ssize_t a = 0; a < n_arrays; a++) {
        if (is_float[a]) or_float(bits, b[a].view.buf, n);
        else or_int(bits, b[a].view.buf, n);
    }
    count = bits_set(bits, n_bytes);
    Py_END_ALLOW_THREADS
    result = PyLong_FromSsize_t(count);
done:
    release(b, MOST_ARRAYS + 1);
    return result;
}

PyObject *gather_bits(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "gather_bits takes 3 arguments");
        return NULL;
    }
    enum { BITS, ARRAY, OUT, N_BUFFERS };
    Buffer b[N_BUFFERS] = {{{0}}};
    int array_float, out_float;
    PyObject *result = NULL;
    if (get_bytes(args[0], &b[BITS], 0, "bits") < 0 ||
        get_entries(args[1], &b[ARRAY], 0, "array", 1, &array_float) < 0 ||
        get_entries(args[2], &b[OUT], 1, "out", 1, &out_float) < 0)
        goto done;
    if (out_float != array_float) {
        PyErr_SetString(PyExc_TypeError, "gather_bits: out is not of the array's type");
        goto done;
    }
    const unsigned char *bits = b[BITS].view.buf;
    Py_ssize_t n = b[ARRAY].view.len / 8, n_bytes = b[BITS].view.len;
    if (n_bytes != (n + 7) / 8 || (n % 8 && bits[n_bytes - 1] >> (n % 8))) {
        PyErr_SetString(PyExc_ValueError, "gather_bits: the bits are not a bit per entry of the array");
        goto done;
    }
    if (b[OUT].view.len != 8 * bits_set(bits, n_bytes)) {
        PyErr_SetString(PyExc_ValueError, "gather_bits: out is not an entry per bit set");
        goto done;
    }
    const uint64_t *from = b[ARRAY].view.buf; /* the entries' bits are copied, whichever their type */
    uint64_t *to = b[OUT].view.buf;
    Py_ssize_t count = b[OUT].view.len / 8;
    Py_BEGIN_ALLOW_THREADS
    if (count * 8 < n) { /* few set: from bit to bit */
        for (Py_ssize_t byte = 0; byte < n_bytes; byte++)
            for (unsigned set = bits[byte]; set; set &= set - 1) *to++ = from[8 * byte + __builtin_ctz(set)];
    } else if (count) { /* many: every entry up to the last set is written, and kept when its bit is set,
                           without a branch a random half of them would mispredict */
        Py_ssize_t end = n_bytes;
        while (bits[end - 1] == 0) end--;
        Py_ssize_t kept = 0;
        for (Py_ssize_t byte = 0; byte < end - 1; byte++) {
            unsigned set = bits[byte];
            const uint64_t *v = from + 8 * byte;
            for (int k = 0; k < 8; k++) {
                to[kept] = v[k];
                kept += (set >> k) & 1;
            }
        }
        for (unsigned set = bits[end - 1]; set; set &= set - 1) to[kept++] = from[8 * (end - 1) + __builtin_ctz(set)];
    }
    Py_END_ALLOW_THREADS
    Py_INCREF(Py_None);
    result = Py_None;
done:
    release(b, N_BUFFERS);
    return result;
}
