/* A table of byte strings to integers, kept in a capsule by an open vocabulary: its names' UTF-8 to
 * their indices, so the compiled reader of named features (_named_events.c) finds a feature from the
 * event's bytes without building a str for it. It is a cache of the vocabulary's dict, never its
 * source: a name is entered once the dict has it (names keep their index for the vocabulary's life),
 * and a name missing here is looked up in the dict.
 *
 * Open addressing over a power of two of slots, at most half full; the keys' bytes in one arena. The
 * hash is seeded per table (from Python's `secrets`), so a producer cannot choose names that collide.
 * Past MOST_KEYS names it stops entering them: the dict serves the rest, slower. Part of
 * stream_neuron._encode. */
#include "_encode_common.h"
#include "_key_table.h"

#define FIRST_SLOTS 1024
#define MOST_KEYS (1 << 22)

typedef struct {
    uint64_t hash;
    Py_ssize_t offset, length; /* length -1: an empty slot */
    long long value;
} Slot;

struct KeyTable {
    uint64_t seed;
    Slot *slots;
    size_t mask, count;
    char *arena;
    size_t used, size;
};

uint64_t key_table_hash(const KeyTable *table, const unsigned char *s, Py_ssize_t n) {
    uint64_t h = table->seed ^ ((uint64_t)n * 0x9E3779B97F4A7C15ULL);
    for (; n >= 8; s += 8, n -= 8) {
        uint64_t word;
        memcpy(&word, s, 8);
        h = (h ^ word) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    uint64_t tail = 0;
    memcpy(&tail, s, (size_t)n);
    h = (h ^ tail) * 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 29);
}

int key_table_find(const KeyTable *table, uint64_t hash, const unsigned char *key, Py_ssize_t n, long long *value) {
    for (size_t s = hash & table->mask;; s = (s + 1) & table->mask) {
        const Slot *slot = &table->slots[s];
        if (slot->length < 0) return 0;
        if (slot->hash == hash && slot->length == n && memcmp(table->arena + slot->offset, key, (size_t)n) == 0) {
            *value = slot->value;
            return 1;
        }
    }
}

static void place(Slot *slots, size_t mask, const Slot *entry) {
    size_t s = entry->hash & mask;
    while (slots[s].length >= 0) s = (s + 1) & mask;
    slots[s] = *entry;
}

static Slot *empty_slots(size_t n) {
    Slot *slots = PyMem_Malloc(n * sizeof(Slot));
    if (slots != NULL) {
        for (size_t s = 0; s < n; s++) slots[s].length = -1;
    }
    return slots;
}

int key_table_enter(KeyTable *table, uint64_t hash, const unsigned char *key, Py_ssize_t n, long long value) {
    if (table->count >= MOST_KEYS) return 0;
    if (2 * (table->count + 1) > table->mask + 1) {
        size_t slots = 2 * (table->mask + 1);
        Slot *grown = empty_slots(slots);
        if (grown == NULL) return PyErr_NoMemory(), -1;
        for (size_t s = 0; s <= table->mask; s++) {
            if (table->slots[s].length >= 0) place(grown, slots - 1, &table->slots[s]);
        }
        PyMem_Free(table->slots);
        table->slots = grown;
        table->mask = slots - 1;
    }
    if (table->used + (size_t)n > table->size) {
        size_t size = 2 * (table->used + (size_t)n);
        char *arena = PyMem_Realloc(table->arena, size);
        if (arena == NULL) return PyErr_NoMemory(), -1;
        table->arena = arena;
        table->size = size;
    }
    memcpy(table->arena + table->used, key, (size_t)n);
    Slot entry = {hash, (Py_ssize_t)table->used, n, value};
    place(table->slots, table->mask, &entry);
    table->used += (size_t)n;
    table->count++;
    return 0;
}

static void free_table(PyObject *capsule) {
    KeyTable *table = PyCapsule_GetPointer(capsule, KEY_TABLE_NAME);
    if (table == NULL) return;
    PyMem_Free(table->slots);
    PyMem_Free(table->arena);
    PyMem_Free(table);
}

/* key_table(seed) -> a new, empty table in a capsule */
PyObject *encode_key_table(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 1) {
        PyErr_SetString(PyExc_TypeError, "key_table(seed: int)");
        return NULL;
    }
    unsigned long long seed = PyLong_AsUnsignedLongLongMask(args[0]);
    if (PyErr_Occurred()) return NULL;
    KeyTable *table = PyMem_Calloc(1, sizeof(KeyTable));
    if (table == NULL) return PyErr_NoMemory();
    table->seed = seed;
    table->slots = empty_slots(FIRST_SLOTS);
    table->mask = FIRST_SLOTS - 1;
    if (table->slots == NULL) {
        PyMem_Free(table);
        return PyErr_NoMemory();
    }
    PyObject *capsule = PyCapsule_New(table, KEY_TABLE_NAME, free_table);
    if (capsule == NULL) {
        PyMem_Free(table->slots);
        PyMem_Free(table);
    }
    return capsule;
}
