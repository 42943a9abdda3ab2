/* Byte strings to integers (_key_table.c): an open vocabulary's names to their indices. */
#ifndef STREAM_NEURON_KEY_TABLE_H
#define STREAM_NEURON_KEY_TABLE_H
#include <stdint.h>

#define KEY_TABLE_NAME "stream_neuron._encode.KeyTable"

typedef struct KeyTable KeyTable;

uint64_t key_table_hash(const KeyTable *table, const unsigned char *key, Py_ssize_t n);
/* 1 with *value set when the key is there, else 0. */
int key_table_find(const KeyTable *table, uint64_t hash, const unsigned char *key, Py_ssize_t n, long long *value);
/* 0 (entered, or the table is full and it was not), -1 with an exception set. */
int key_table_enter(KeyTable *table, uint64_t hash, const unsigned char *key, Py_ssize_t n, long long value);
#endif
