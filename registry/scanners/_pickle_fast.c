/* Optional accelerator for registry.scanners.pickle_vm: runs plain-data opcodes in C.
 *
 * run_data(data, pos, limit, stack, marks, memo, pdict, frame_end, globalref, shared)
 *     -> (pos, executed, frame_end)
 *
 * Executes at most `limit` opcodes starting at `pos`, only those that build plain values
 * (ints, floats, str/bytes, None/True/False, empty and literal containers, MARK, memo
 * PUT/GET/MEMOIZE, FRAME), leaving `stack`, `marks` and `memo` exactly as the pure-Python
 * loop of `_Machine.run` would. It stops *before* the first opcode it does not handle and
 * before any opcode that is irregular in any way (short data, stack underflow, a missing or
 * sparse memo key, a non-literal container target, undecodable text, ...): the Python loop
 * then runs that opcode itself and decides what it means. This code never decides a verdict
 * and never unpickles anything. `memo` is None when the Python memo has turned sparse (a
 * dict): memo opcodes then stop the run. Only MemoryError-class failures propagate.
 *
 * `frame_end` is where the open FRAME ends, PY_SSIZE_T_MAX (Python's sys.maxsize) when none is
 * open. Inside a frame an opcode's argument may only use the frame's bytes (`pickle.load(file)`
 * reads them from the frame's buffer): the bytes available to a case end at the frame's end, so
 * an opcode crossing it stops the run and Python reports it; a FRAME inside a frame stops too.
 *
 * String and bytes literals that may carry another pickle (see may_carry) stop the run too:
 * Python notes them for pickle_embedded.
 *
 * Each value a memo GET pushes that is neither a plain scalar (what Python's PLAIN_KEYS names:
 * exact str, int, float, bytes, bool, None) nor a `globalref` (a GlobalRef, a leaf that a
 * protocol-2 checkpoint fetches again for every tensor) is appended to the list `shared`, as
 * the Python loop appends it: the reference-expansion check sizes only those. Dict keys
 * that are not plainly hashable stop the run: Python decides whether the loader can hash them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static PyObject *str_items; /* "items" */

static inline uint32_t rd_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t rd_u64(const unsigned char *p)
{
    return (uint64_t)rd_u32(p) | (uint64_t)rd_u32(p + 4) << 32;
}

/* Current fence: the last mark, or 0. Returns -1 if the mark stack is not what we expect. */
static Py_ssize_t fence_of(PyObject *marks)
{
    Py_ssize_t nm = PyList_GET_SIZE(marks);
    if (nm == 0)
        return 0;
    PyObject *last = PyList_GET_ITEM(marks, nm - 1);
    if (!PyLong_CheckExact(last))
        return -1;
    Py_ssize_t f = PyLong_AsSsize_t(last);
    if (f == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    return f;
}

/* Exact str, int, float, bytes, bool or None: Python's PLAIN_KEYS. */
static inline int is_plain(PyObject *o)
{
    return PyUnicode_CheckExact(o) || PyLong_CheckExact(o) || PyFloat_CheckExact(o) ||
           PyBytes_CheckExact(o) || PyBool_Check(o) || o == Py_None;
}

/* A plain scalar, or a tuple of them (to a small depth): hashable without any doubt. */
static int plainly_hashable(PyObject *o, int depth)
{
    if (is_plain(o))
        return 1;
    if (!PyTuple_CheckExact(o) || depth >= 8)
        return 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(o); i++)
        if (!plainly_hashable(PyTuple_GET_ITEM(o, i), depth + 1))
            return 0;
    return 1;
}

/* The first two bytes of a literal of 8 bytes or more that may carry a pickle stream: text
 * (UTF-8) starting with U+0080 (latin-1 kept), "80" (hex) or "gA" (base64); bytes starting
 * with \x80 and a protocol, "80", "gA", "c" or "(c" (protocol 0). A superset of what
 * pickle_embedded.may_carry accepts, so that Python runs and notes every such literal. */
static inline int may_carry(const unsigned char *p, int is_bytes)
{
    if ((p[0] == '8' && p[1] == '0') || (p[0] == 'g' && p[1] == 'A'))
        return 1;
    if (!is_bytes)
        return p[0] == 0xc2 && p[1] == 0x80;
    return (p[0] == 0x80 && p[1] <= 5) || p[0] == 'c' || (p[0] == '(' && p[1] == 'c');
}

/* Push a new reference (stolen). Returns -1 with an exception set on failure. */
static inline int push(PyObject *stack, PyObject *obj)
{
    if (obj == NULL)
        return -1;
    int rc = PyList_Append(stack, obj);
    Py_DECREF(obj);
    return rc;
}

/* A str from UTF-8 the way the Python loop decodes it: strict, else surrogatepass (the same
 * result). Returns NULL without an exception when the text is undecodable (the caller stops). */
static PyObject *decode(const unsigned char *p, Py_ssize_t len)
{
    PyObject *s = PyUnicode_DecodeUTF8((const char *)p, len, "surrogatepass");
    if (s == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
        PyErr_Clear();
    return s;
}

static PyObject *run_data(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError, "run_data takes 10 positional arguments");
        return NULL;
    }
    PyObject *data = args[0], *stack = args[3], *marks = args[4], *memo = args[5];
    PyObject *pdict = args[6], *globalref = args[8], *shared = args[9];
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    Py_ssize_t limit = PyLong_AsSsize_t(args[2]);
    Py_ssize_t frame_end = PyLong_AsSsize_t(args[7]);
    if (PyErr_Occurred())
        return NULL;
    if (!PyBytes_CheckExact(data) || !PyList_CheckExact(stack) || !PyList_CheckExact(marks) ||
        !(memo == Py_None || PyList_CheckExact(memo)) || !PyType_Check(pdict) ||
        !PyType_Check(globalref) || !PyList_CheckExact(shared)) {
        PyErr_SetString(PyExc_TypeError, "run_data: unexpected argument types");
        return NULL;
    }
    if (memo == Py_None)
        memo = NULL;
    const unsigned char *buf = (const unsigned char *)PyBytes_AS_STRING(data);
    const Py_ssize_t n = PyBytes_GET_SIZE(data);
    Py_ssize_t done = 0;
    Py_ssize_t fence = fence_of(marks);
    if (pos < 0 || pos > n || limit < 0 || fence < 0 ||
        (frame_end != PY_SSIZE_T_MAX && (frame_end <= pos || frame_end > n)))
        goto out;

    while (done < limit && pos < n) {
        const unsigned char op = buf[pos];
        const Py_ssize_t a = pos + 1; /* the argument starts here */
        /* bytes available after the opcode byte: to the frame's end inside a frame */
        const Py_ssize_t avail = (frame_end < n ? frame_end : n) - a;
        Py_ssize_t len = PyList_GET_SIZE(stack);
        Py_ssize_t next; /* position after this opcode, set by each case */
        switch (op) {
        case 0x71: /* BINPUT */
        case 0x72: /* LONG_BINPUT */
        case 0x94: /* MEMOIZE */ {
            if (memo == NULL || len <= fence)
                goto out;
            Py_ssize_t mlen = PyList_GET_SIZE(memo);
            uint64_t key;
            if (op == 0x71) {
                if (avail < 1)
                    goto out;
                key = buf[a];
                next = a + 1;
            } else if (op == 0x72) {
                if (avail < 4)
                    goto out;
                key = rd_u32(buf + a);
                next = a + 4;
            } else {
                key = (uint64_t)mlen;
                next = a;
            }
            PyObject *top = PyList_GET_ITEM(stack, len - 1);
            if (key < (uint64_t)mlen) {
                Py_INCREF(top);
                PyList_SetItem(memo, (Py_ssize_t)key, top); /* steals; releases the old one */
            } else if (key == (uint64_t)mlen) {
                if (PyList_Append(memo, top) < 0)
                    return NULL;
            } else {
                goto out; /* the memo turns sparse: Python's job */
            }
            break;
        }
        case 0x68: /* BINGET */
        case 0x6A: /* LONG_BINGET */ {
            if (memo == NULL)
                goto out;
            uint64_t key;
            if (op == 0x68) {
                if (avail < 1)
                    goto out;
                key = buf[a];
                next = a + 1;
            } else {
                if (avail < 4)
                    goto out;
                key = rd_u32(buf + a);
                next = a + 4;
            }
            if (key >= (uint64_t)PyList_GET_SIZE(memo))
                goto out;
            PyObject *value = PyList_GET_ITEM(memo, (Py_ssize_t)key);
            if (PyList_Append(stack, value) < 0)
                return NULL;
            if (!is_plain(value) && (PyObject *)Py_TYPE(value) != globalref &&
                PyList_Append(shared, value) < 0)
                return NULL;
            break;
        }
        case 0x4A: /* BININT */
            if (avail < 4)
                goto out;
            if (push(stack, PyLong_FromLong((long)(int32_t)rd_u32(buf + a))) < 0)
                return NULL;
            next = a + 4;
            break;
        case 0x4B: /* BININT1 */
            if (avail < 1)
                goto out;
            if (push(stack, PyLong_FromLong(buf[a])) < 0)
                return NULL;
            next = a + 1;
            break;
        case 0x4D: /* BININT2 */
            if (avail < 2)
                goto out;
            if (push(stack, PyLong_FromLong((long)buf[a] | (long)buf[a + 1] << 8)) < 0)
                return NULL;
            next = a + 2;
            break;
        case 0x8A: /* LONG1, up to 8 bytes (longer ones are Python's) */ {
            if (avail < 1)
                goto out;
            Py_ssize_t size = buf[a];
            if (size > 8 || size > avail - 1)
                goto out;
            uint64_t v = 0;
            for (Py_ssize_t i = 0; i < size; i++)
                v |= (uint64_t)buf[a + 1 + i] << (8 * i);
            if (size > 0 && size < 8 && (buf[a + size] & 0x80))
                v |= ~(uint64_t)0 << (8 * size);
            if (push(stack, PyLong_FromLongLong((long long)v)) < 0)
                return NULL;
            next = a + 1 + size;
            break;
        }
        case 0x47: /* BINFLOAT (big-endian) */ {
            if (avail < 8)
                goto out;
            double d = PyFloat_Unpack8((const char *)(buf + a), 0);
            if (d == -1.0 && PyErr_Occurred())
                return NULL;
            if (push(stack, PyFloat_FromDouble(d)) < 0)
                return NULL;
            next = a + 8;
            break;
        }
        case 0x8C: /* SHORT_BINUNICODE */
        case 0x58: /* BINUNICODE */
        case 0x8D: /* BINUNICODE8 */
        case 0x43: /* SHORT_BINBYTES */
        case 0x42: /* BINBYTES */ {
            Py_ssize_t width = (op == 0x8C || op == 0x43) ? 1 : (op == 0x8D ? 8 : 4);
            if (avail < width)
                goto out;
            uint64_t size = width == 1 ? buf[a] : (width == 4 ? rd_u32(buf + a) : rd_u64(buf + a));
            if (size > (uint64_t)(avail - width))
                goto out;
            const unsigned char *p = buf + a + width;
            /* A literal that may carry a pickle (pickle_embedded.may_carry): Python notes it. */
            if (size >= 8 && may_carry(p, op == 0x43 || op == 0x42))
                goto out;
            PyObject *obj;
            if (op == 0x43 || op == 0x42) {
                obj = PyBytes_FromStringAndSize((const char *)p, (Py_ssize_t)size);
                if (obj == NULL)
                    return NULL;
            } else {
                obj = decode(p, (Py_ssize_t)size);
                if (obj == NULL) {
                    if (PyErr_Occurred())
                        return NULL;
                    goto out;
                }
            }
            if (push(stack, obj) < 0)
                return NULL;
            next = a + width + (Py_ssize_t)size;
            break;
        }
        case 0x4E: /* NONE */
            if (PyList_Append(stack, Py_None) < 0)
                return NULL;
            next = a;
            break;
        case 0x88: /* NEWTRUE */
            if (PyList_Append(stack, Py_True) < 0)
                return NULL;
            next = a;
            break;
        case 0x89: /* NEWFALSE */
            if (PyList_Append(stack, Py_False) < 0)
                return NULL;
            next = a;
            break;
        case 0x5D: /* EMPTY_LIST */
            if (push(stack, PyList_New(0)) < 0)
                return NULL;
            next = a;
            break;
        case 0x29: /* EMPTY_TUPLE */
            if (push(stack, PyTuple_New(0)) < 0)
                return NULL;
            next = a;
            break;
        case 0x7D: /* EMPTY_DICT: a PDict */
            if (push(stack, PyObject_CallNoArgs(pdict)) < 0)
                return NULL;
            next = a;
            break;
        case 0x85: /* TUPLE1 */
        case 0x86: /* TUPLE2 */
        case 0x87: /* TUPLE3 */ {
            Py_ssize_t k = op - 0x84;
            if (len - k < fence || len < k)
                goto out;
            PyObject *t = PyList_GetSlice(stack, len - k, len);
            if (t == NULL)
                return NULL;
            PyObject *tup = PyList_AsTuple(t);
            Py_DECREF(t);
            if (tup == NULL)
                return NULL;
            if (PyList_SetSlice(stack, len - k, len, NULL) < 0) {
                Py_DECREF(tup);
                return NULL;
            }
            if (push(stack, tup) < 0)
                return NULL;
            next = a;
            break;
        }
        case 0x28: /* MARK */ {
            PyObject *m = PyLong_FromSsize_t(len);
            if (m == NULL)
                return NULL;
            int rc = PyList_Append(marks, m);
            Py_DECREF(m);
            if (rc < 0)
                return NULL;
            fence = len;
            next = a;
            break;
        }
        case 0x65: /* APPENDS */
        case 0x75: /* SETITEMS */
        case 0x74: /* TUPLE */
        case 0x6C: /* LIST */ {
            Py_ssize_t nm = PyList_GET_SIZE(marks);
            if (nm == 0)
                goto out;
            Py_ssize_t m = fence; /* == marks[-1] */
            Py_ssize_t below = 0;
            if (nm >= 2) {
                PyObject *prev = PyList_GET_ITEM(marks, nm - 2);
                if (!PyLong_CheckExact(prev))
                    goto out;
                below = PyLong_AsSsize_t(prev);
                if (below == -1 && PyErr_Occurred()) {
                    PyErr_Clear();
                    goto out;
                }
            }
            if (m < 0 || m > len || below < 0)
                goto out;
            PyObject *items = PyList_GetSlice(stack, m, len);
            if (items == NULL)
                return NULL;
            PyObject *result = NULL; /* TUPLE / LIST: pushed after the items go */
            if (op == 0x65 || op == 0x75) {
                if (m <= below) {
                    Py_DECREF(items);
                    goto out;
                }
                PyObject *target = PyList_GET_ITEM(stack, m - 1);
                if (op == 0x65) {
                    if (!PyList_CheckExact(target)) {
                        Py_DECREF(items);
                        goto out;
                    }
                    Py_ssize_t tl = PyList_GET_SIZE(target);
                    if (PyList_SetSlice(target, tl, tl, items) < 0) {
                        Py_DECREF(items);
                        return NULL;
                    }
                } else {
                    Py_ssize_t ni = PyList_GET_SIZE(items);
                    if (ni & 1) {
                        Py_DECREF(items);
                        goto out;
                    }
                    if ((PyObject *)Py_TYPE(target) == pdict) {
                        for (Py_ssize_t i = 0; i < ni; i += 2) {
                            if (!plainly_hashable(PyList_GET_ITEM(items, i), 0)) {
                                Py_DECREF(items);
                                goto out;
                            }
                        }
                        PyObject *pairs = PyObject_GetAttr(target, str_items);
                        if (pairs == NULL) {
                            Py_DECREF(items);
                            return NULL;
                        }
                        if (!PyList_CheckExact(pairs)) {
                            Py_DECREF(pairs);
                            Py_DECREF(items);
                            goto out;
                        }
                        PyObject *add = PyList_New(ni / 2);
                        if (add == NULL) {
                            Py_DECREF(pairs);
                            Py_DECREF(items);
                            return NULL;
                        }
                        for (Py_ssize_t i = 0; i < ni; i += 2) {
                            PyObject *pair = PyTuple_Pack(2, PyList_GET_ITEM(items, i),
                                                          PyList_GET_ITEM(items, i + 1));
                            if (pair == NULL) {
                                Py_DECREF(add);
                                Py_DECREF(pairs);
                                Py_DECREF(items);
                                return NULL;
                            }
                            PyList_SET_ITEM(add, i / 2, pair);
                        }
                        Py_ssize_t pl = PyList_GET_SIZE(pairs);
                        int rc = PyList_SetSlice(pairs, pl, pl, add);
                        Py_DECREF(add);
                        Py_DECREF(pairs);
                        if (rc < 0) {
                            Py_DECREF(items);
                            return NULL;
                        }
                    } else if (!PyList_CheckExact(target)) { /* list[i] = v: nothing kept */
                        Py_DECREF(items);
                        goto out;
                    }
                }
                Py_DECREF(items);
            } else if (op == 0x74) {
                result = PyList_AsTuple(items);
                Py_DECREF(items);
                if (result == NULL)
                    return NULL;
            } else {
                result = items;
            }
            if (PyList_SetSlice(stack, m, len, NULL) < 0 ||
                PyList_SetSlice(marks, nm - 1, nm, NULL) < 0) {
                Py_XDECREF(result);
                return NULL;
            }
            fence = below;
            if (result != NULL && push(stack, result) < 0)
                return NULL;
            next = a;
            break;
        }
        case 0x61: /* APPEND */
        case 0x73: /* SETITEM */ {
            Py_ssize_t k = op == 0x61 ? 1 : 2;
            if (len - (k + 1) < fence || len < k + 1)
                goto out;
            PyObject *target = PyList_GET_ITEM(stack, len - k - 1);
            if (op == 0x61) {
                if (!PyList_CheckExact(target))
                    goto out;
                if (PyList_Append(target, PyList_GET_ITEM(stack, len - 1)) < 0)
                    return NULL;
            } else if ((PyObject *)Py_TYPE(target) == pdict) {
                if (!plainly_hashable(PyList_GET_ITEM(stack, len - 2), 0))
                    goto out;
                PyObject *pairs = PyObject_GetAttr(target, str_items);
                if (pairs == NULL)
                    return NULL;
                if (!PyList_CheckExact(pairs)) {
                    Py_DECREF(pairs);
                    goto out;
                }
                PyObject *pair =
                    PyTuple_Pack(2, PyList_GET_ITEM(stack, len - 2), PyList_GET_ITEM(stack, len - 1));
                int rc = pair == NULL ? -1 : PyList_Append(pairs, pair);
                Py_XDECREF(pair);
                Py_DECREF(pairs);
                if (rc < 0)
                    return NULL;
            } else if (!PyList_CheckExact(target)) { /* list[i] = v: nothing kept */
                goto out;
            }
            if (PyList_SetSlice(stack, len - k, len, NULL) < 0)
                return NULL;
            next = a;
            break;
        }
        case 0x95: /* FRAME */ {
            if (frame_end != PY_SSIZE_T_MAX) /* a FRAME inside a frame: Python reports it */
                goto out;
            if (avail < 8)
                goto out;
            uint64_t size = rd_u64(buf + a);
            if (size > (uint64_t)(avail - 8))
                goto out;
            next = a + 8;
            frame_end = next + (Py_ssize_t)size;
            break;
        }
        default:
            goto out;
        }
        pos = next;
        done++;
        if (pos == frame_end) /* the opcode ended the frame exactly */
            frame_end = PY_SSIZE_T_MAX;
    }
out:
    return Py_BuildValue("(nnn)", pos, done, frame_end);
}

static PyMethodDef methods[] = {
    {"run_data", (PyCFunction)(void (*)(void))run_data, METH_FASTCALL,
     "run_data(data, pos, limit, stack, marks, memo, pdict, frame_end, globalref, shared) -> "
     "(pos, executed, frame_end)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_pickle_fast", "Plain-data opcode runs for pickle_vm (optional).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__pickle_fast(void)
{
    str_items = PyUnicode_InternFromString("items");
    if (str_items == NULL)
        return NULL;
    return PyModule_Create(&moduledef);
}
