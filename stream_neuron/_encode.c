/* The fast path of an open vocabulary's encoding (feature_encoding.OpenVocabulary.encode).
 *
 * encode_known(features, index, short) -> (indices, values, scaled) | None
 *
 * An event whose every feature is already in the vocabulary, with names and string values of at most
 * `short` characters (within --max-feature-name-bytes whatever their UTF-8), finite floats, integers a
 * float64 holds, strings or booleans, and no feature given twice: its entries in the event's order,
 * exactly as the Python encoder makes them (a number under its name, a string or boolean v of f as
 * the one-hot "f_v" with 1.0). Anything else, a new name above all, gives None: the Python encoder
 * then takes the event, grows the vocabulary or names the problem. Built by setup.py when a C
 * compiler is present; without it the Python encoder does all of it. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

#define MOST_FEATURES 256 /* larger events take the Python path (its duplicate check is a set) */

static PyObject *encode_known(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 3 || !PyDict_CheckExact(args[0]) || !PyDict_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "encode_known(features: dict, index: dict, short: int)");
        return NULL;
    }
    PyObject *features = args[0], *index = args[1];
    Py_ssize_t shortest = PyLong_AsSsize_t(args[2]);
    if (shortest == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t n = PyDict_GET_SIZE(features);
    if (n > MOST_FEATURES) Py_RETURN_NONE;
    long long seen[MOST_FEATURES];
    PyObject *indices = PyList_New(n), *values = PyList_New(n), *scaled = PyList_New(n);
    if (indices == NULL || values == NULL || scaled == NULL) goto error;
    Py_ssize_t pos = 0, k = 0;
    PyObject *name, *value;
    while (PyDict_Next(features, &pos, &name, &value)) {
        if (!PyUnicode_CheckExact(name) || PyUnicode_GET_LENGTH(name) > shortest) goto slow;
        PyObject *key, *number;
        int numeric = 1;
        if (PyFloat_CheckExact(value)) {
            if (!isfinite(PyFloat_AS_DOUBLE(value))) goto slow;
            key = Py_NewRef(name);
            number = Py_NewRef(value);
        } else if (PyBool_Check(value)) {
            key = PyUnicode_FromFormat("%U_%s", name, value == Py_True ? "True" : "False");
            number = PyFloat_FromDouble(1.0);
            numeric = 0;
        } else if (PyLong_CheckExact(value)) {
            double v = PyLong_AsDouble(value);
            if (v == -1.0 && PyErr_Occurred()) { /* too large for a float64: the slow path names it */
                PyErr_Clear();
                goto slow;
            }
            key = Py_NewRef(name);
            number = PyFloat_FromDouble(v);
        } else if (PyUnicode_CheckExact(value)) {
            if (PyUnicode_GET_LENGTH(value) > shortest) goto slow;
            key = PyUnicode_FromFormat("%U_%U", name, value);
            number = PyFloat_FromDouble(1.0);
            numeric = 0;
        } else {
            goto slow;
        }
        if (key == NULL || number == NULL) {
            Py_XDECREF(key);
            Py_XDECREF(number);
            goto error;
        }
        PyObject *i = PyDict_GetItemWithError(index, key); /* borrowed */
        Py_DECREF(key);
        if (i == NULL) {
            Py_DECREF(number);
            if (PyErr_Occurred()) goto error;
            goto slow; /* a new name */
        }
        long long at = PyLong_AsLongLong(i);
        if (at == -1 && PyErr_Occurred()) {
            Py_DECREF(number);
            goto error;
        }
        for (Py_ssize_t j = 0; j < k; j++)
            if (seen[j] == at) { /* one feature twice: the slow path names it */
                Py_DECREF(number);
                goto slow;
            }
        seen[k] = at;
        PyList_SET_ITEM(indices, k, Py_NewRef(i));
        PyList_SET_ITEM(values, k, number);
        PyList_SET_ITEM(scaled, k, PyBool_FromLong(numeric));
        k++;
    }
    return Py_BuildValue("(NNN)", indices, values, scaled);
slow:
    Py_DECREF(indices);
    Py_DECREF(values);
    Py_DECREF(scaled);
    Py_RETURN_NONE;
error:
    Py_XDECREF(indices);
    Py_XDECREF(values);
    Py_XDECREF(scaled);
    return NULL;
}

static PyMethodDef methods[] = {
    {"encode_known", (PyCFunction)(void (*)(void))encode_known, METH_FASTCALL,
     "An event of known features encoded, or None (see the source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_encode", "Optional compiled fast path of the open vocabulary's encoding.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__encode(void) { return PyModule_Create(&module); }
