/* The arena placers of estimators/planner.py, compiled: the same placements, ~30x faster.
 *
 * greedy_offsets(sizes, firsts, lasts) and first_fit_offsets(sizes, firsts, lasts) take three sequences
 * of ints of equal length (buffer bytes and the first and last steps each buffer lives) and return a list
 * of offsets; greedy_arena(sizes, firsts, lasts) returns only the greedy plan's arena size (the highest end
 * offset, 0 without buffers). They are the pure-Python functions of the same names in estimators/planner.py,
 * which stay the reference (tests/test_planner_equivalence.py checks both agree) and run when this module
 * is not built.
 *
 * Placement order: largest first; equal sizes in reverse order of addition (greedy: TFLite Micro's
 * GreedyMemoryPlanner) or in order of addition (first fit: TinyEngine). Each buffer goes into the lowest
 * gap, between the time-overlapping buffers placed before it walked by (offset, placement rank), that is
 * large enough.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>

#define LIMIT (1LL << 62)

typedef struct {
    long long size;
    long long first;
    long long last;
    Py_ssize_t index;
    int reversed_ties;
} Item;

static int compare_items(const void *pa, const void *pb) {
    const Item *a = (const Item *)pa, *b = (const Item *)pb;
    if (a->size != b->size) return a->size > b->size ? -1 : 1;  /* largest first */
    if (a->index == b->index) return 0;
    if (a->reversed_ties) return a->index > b->index ? -1 : 1;
    return a->index < b->index ? -1 : 1;
}

/* Read one sequence of n ints into out, adding their magnitudes to *total unless total is NULL; -1 with an
 * exception set on failure. */
static int read_column(PyObject *seq, Py_ssize_t n, long long *out, const char *what, long long *total) {
    PyObject *fast = PySequence_Fast(seq, what);
    if (fast == NULL) return -1;
    if (PySequence_Fast_GET_SIZE(fast) != n) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd values, got %zd", what, n, PySequence_Fast_GET_SIZE(fast));
        Py_DECREF(fast);
        return -1;
    }
    PyObject **items = PySequence_Fast_ITEMS(fast);
    for (Py_ssize_t i = 0; i < n; i++) {
        long long v = PyLong_AsLongLong(items[i]);
        if (v == -1 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
        if (v >= LIMIT || v <= -LIMIT) {
            PyErr_Format(PyExc_OverflowError, "%s: %lld is beyond +-2**62", what, v);
            Py_DECREF(fast);
            return -1;
        }
        if (total != NULL) {  /* offsets are sums of sizes: keep every one inside 64 bits */
            *total += v < 0 ? -v : v;
            if (*total >= LIMIT) {
                PyErr_Format(PyExc_OverflowError, "%s: they add up beyond 2**62", what);
                Py_DECREF(fast);
                return -1;
            }
        }
        out[i] = v;
    }
    Py_DECREF(fast);
    return 0;
}

static PyObject *place(PyObject *args, int reversed_ties, int arena_only) {
    PyObject *sizes_obj, *firsts_obj, *lasts_obj;
    if (!PyArg_ParseTuple(args, "OOO", &sizes_obj, &firsts_obj, &lasts_obj)) return NULL;
    Py_ssize_t n = PyObject_Length(sizes_obj);
    if (n < 0) return NULL;
    PyObject *result = NULL;
    long long *columns = PyMem_Malloc(sizeof(long long) * 4 * (size_t)(n ? n : 1));
    Item *items = PyMem_Malloc(sizeof(Item) * (size_t)(n ? n : 1));
    Py_ssize_t *placed = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n ? n : 1));
    if (columns == NULL || items == NULL || placed == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    long long *sizes = columns, *firsts = columns + n, *lasts = columns + 2 * n, *offsets = columns + 3 * n;
    long long total = 0;
    if (read_column(sizes_obj, n, sizes, "sizes", &total) < 0 || read_column(firsts_obj, n, firsts, "firsts", NULL) < 0
        || read_column(lasts_obj, n, lasts, "lasts", NULL) < 0)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        items[i].size = sizes[i];
        items[i].first = firsts[i];
        items[i].last = lasts[i];
        items[i].index = i;
        items[i].reversed_ties = reversed_ties;
    }
    qsort(items, (size_t)n, sizeof(Item), compare_items);
    /* placed[0..count): the placed buffers (indices into items, i.e. placement ranks) by (offset, rank). */
    Py_ssize_t count = 0;
    for (Py_ssize_t r = 0; r < n; r++) {
        const Item *me = &items[r];
        long long candidate = 0;
        Py_ssize_t k = 0;
        for (; k < count; k++) {
            const Item *other = &items[placed[k]];
            if (other->first > me->last || me->first > other->last) continue;  /* never alive together */
            long long o = offsets[other->index];
            if (o - candidate >= me->size) break;
            long long end = o + other->size;
            if (end > candidate) candidate = end;
        }
        offsets[me->index] = candidate;
        /* Insert after every placed buffer with an offset <= candidate (they all have a lower rank). */
        Py_ssize_t at = count;
        while (at > 0 && offsets[items[placed[at - 1]].index] > candidate) {
            placed[at] = placed[at - 1];
            at--;
        }
        placed[at] = r;
        count++;
    }
    if (arena_only) {
        long long arena = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (offsets[i] + sizes[i] > arena) arena = offsets[i] + sizes[i];
        }
        result = PyLong_FromLongLong(arena);
        goto done;
    }
    result = PyList_New(n);
    if (result == NULL) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyLong_FromLongLong(offsets[i]);
        if (v == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, i, v);
    }
done:
    PyMem_Free(columns);
    PyMem_Free(items);
    PyMem_Free(placed);
    return result;
}

static PyObject *greedy_offsets(PyObject *self, PyObject *args) {
    (void)self;
    return place(args, 1, 0);
}

static PyObject *greedy_arena(PyObject *self, PyObject *args) {
    (void)self;
    return place(args, 1, 1);
}

static PyObject *first_fit_offsets(PyObject *self, PyObject *args) {
    (void)self;
    return place(args, 0, 0);
}

static PyMethodDef methods[] = {
    {"greedy_offsets", greedy_offsets, METH_VARARGS,
     "greedy_offsets(sizes, firsts, lasts) -> offsets: TFLite Micro's greedy placement (largest first, equal "
     "sizes in reverse order of addition)."},
    {"greedy_arena", greedy_arena, METH_VARARGS,
     "greedy_arena(sizes, firsts, lasts) -> int: the arena size of greedy_offsets' plan."},
    {"first_fit_offsets", first_fit_offsets, METH_VARARGS,
     "first_fit_offsets(sizes, firsts, lasts) -> offsets: largest-first first fit (equal sizes in order of "
     "addition)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_planner", "Compiled arena placers (see estimators/planner.py).", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__planner(void) { return PyModule_Create(&module); }
