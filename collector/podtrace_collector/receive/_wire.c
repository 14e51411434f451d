/*
 * podtrace_collector.receive._wire: an optional C scanner for OTLP trace requests.
 *
 * Reading a parsed protobuf message from Python costs about a microsecond per field access, and
 * the collector reads nine fields and every attribute of every span.  This scanner walks the
 * protobuf wire format of an ExportTraceServiceRequest once and returns exactly what
 * ``receive.decode`` reads from the lean message (``receive/lean.py``), as plain Python objects:
 *
 *     scan(body: bytes) -> list[tuple[list[bytes], list[SpanRecord]]] | None
 *
 * one ``(resource attribute KeyValues, spans)`` pair per ResourceSpans (ScopeSpans flattened),
 * each span a tuple ``(trace_id, span_id, parent_span_id, name, kind, start_time_unix_nano,
 * end_time_unix_nano, status, attributes)`` where ``status`` is the serialized Status and
 * ``attributes`` the serialized KeyValues, just as the lean schema declares them.
 *
 * It only handles the canonical encoding that every OpenTelemetry SDK produces.  On anything
 * else (malformed or truncated bytes, a known field with an unexpected wire type, groups, invalid
 * UTF-8 in a span name, a varint over ten bytes) it returns None without raising, and the caller
 * parses the body with the protobuf runtime instead, which either gives the same result or the
 * precise error.  So the scanner never decides whether a request is valid: it is a shortcut for
 * the common case, checked against the protobuf runtime by tests/collector/receive/test_wire.py.
 *
 * Field semantics follow protobuf's: a singular scalar, string or bytes field seen twice keeps
 * the last value; a singular message field seen twice (``resource``) is merged; unknown fields
 * are skipped.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

/* Outcomes of the internal functions. */
#define OK 0
#define FALLBACK 1  /* not the canonical encoding: no Python exception is set */
#define FAILED -1   /* a Python exception (MemoryError) is set */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} Reader;

static int read_varint(Reader *r, uint64_t *out) {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return FALLBACK;
        uint8_t byte = *r->p++;
        if (shift == 63 && byte > 1) return FALLBACK; /* more than 64 bits */
        value |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *out = value;
            return OK;
        }
    }
    return FALLBACK;
}

static int read_tag(Reader *r, uint32_t *field, int *wire_type) {
    uint64_t tag;
    if (read_varint(r, &tag) != OK || tag > UINT32_MAX || (tag >> 3) == 0) return FALLBACK;
    *field = (uint32_t)(tag >> 3);
    *wire_type = (int)(tag & 7);
    return OK;
}

/* A length-delimited field's contents as a sub-reader; advances ``r`` past them. */
static int read_len(Reader *r, Reader *sub) {
    uint64_t n;
    if (read_varint(r, &n) != OK || n > (uint64_t)(r->end - r->p)) return FALLBACK;
    sub->p = r->p;
    sub->end = r->p + n;
    r->p += n;
    return OK;
}

static int skip(Reader *r, int wire_type) {
    uint64_t ignored;
    Reader sub;
    switch (wire_type) {
    case WT_VARINT:
        return read_varint(r, &ignored);
    case WT_I64:
        if (r->end - r->p < 8) return FALLBACK;
        r->p += 8;
        return OK;
    case WT_LEN:
        return read_len(r, &sub);
    case WT_I32:
        if (r->end - r->p < 4) return FALLBACK;
        r->p += 4;
        return OK;
    default: /* groups (3, 4) and invalid wire types (6, 7) */
        return FALLBACK;
    }
}

static uint64_t read_fixed64(Reader *r) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | r->p[i];
    r->p += 8;
    return v;
}

static int append_bytes(PyObject *list, const Reader *field) {
    PyObject *b = PyBytes_FromStringAndSize((const char *)field->p, field->end - field->p);
    if (b == NULL) return FAILED;
    int rc = PyList_Append(list, b);
    Py_DECREF(b);
    return rc == 0 ? OK : FAILED;
}

static PyObject *bytes_of(const Reader *field) {
    return PyBytes_FromStringAndSize((const char *)field->p, field->end - field->p);
}

/* One Span message -> its record tuple, appended to ``spans``. */
static int scan_span(Reader r, PyObject *spans) {
    static const uint8_t none[1] = {0};
    Reader trace_id = {none, none}, span_id = {none, none}, parent = {none, none};
    Reader name = {none, none}, status = {none, none}, field;
    uint64_t kind = 0, start = 0, end = 0;
    PyObject *attributes = PyList_New(0);
    if (attributes == NULL) return FAILED;
    int rc = OK;
    while (rc == OK && r.p < r.end) {
        uint32_t number;
        int wt;
        if ((rc = read_tag(&r, &number, &wt)) != OK) break;
        switch (number) {
        case 1: case 2: case 4: case 5: case 9: case 15:
            if (wt != WT_LEN || (rc = read_len(&r, &field)) != OK) {
                rc = FALLBACK;
                break;
            }
            if (number == 1) trace_id = field;
            else if (number == 2) span_id = field;
            else if (number == 4) parent = field;
            else if (number == 5) name = field;
            else if (number == 15) status = field;
            else rc = append_bytes(attributes, &field);
            break;
        case 6:
            rc = wt == WT_VARINT ? read_varint(&r, &kind) : FALLBACK;
            break;
        case 7: case 8:
            if (wt != WT_I64 || r.end - r.p < 8) {
                rc = FALLBACK;
                break;
            }
            if (number == 7) start = read_fixed64(&r);
            else end = read_fixed64(&r);
            break;
        default:
            rc = skip(&r, wt);
        }
    }
    if (rc != OK) {
        Py_DECREF(attributes);
        return rc;
    }
    PyObject *decoded_name = PyUnicode_DecodeUTF8(
        (const char *)name.p, name.end - name.p, "strict");
    if (decoded_name == NULL) {
        Py_DECREF(attributes);
        if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
            PyErr_Clear(); /* the protobuf runtime reports invalid UTF-8 precisely */
            return FALLBACK;
        }
        return FAILED;
    }
    /* int32 semantics for ``kind``, as the lean schema declares it: the low 32 bits, signed. */
    PyObject *record = Py_BuildValue(
        "(NNNNNNNNN)", bytes_of(&trace_id), bytes_of(&span_id), bytes_of(&parent), decoded_name,
        PyLong_FromLong((long)(int32_t)(uint32_t)kind), PyLong_FromUnsignedLongLong(start),
        PyLong_FromUnsignedLongLong(end), bytes_of(&status), attributes);
    if (record == NULL) return FAILED; /* "N" steals the references, even on failure */
    rc = PyList_Append(spans, record) == 0 ? OK : FAILED;
    Py_DECREF(record);
    return rc;
}

static int scan_scope_spans(Reader r, PyObject *spans) {
    Reader field;
    while (r.p < r.end) {
        uint32_t number;
        int wt, rc;
        if (read_tag(&r, &number, &wt) != OK) return FALLBACK;
        if (number == 2) {
            if (wt != WT_LEN || read_len(&r, &field) != OK) return FALLBACK;
            if ((rc = scan_span(field, spans)) != OK) return rc;
        } else if (skip(&r, wt) != OK) {
            return FALLBACK;
        }
    }
    return OK;
}

static int scan_resource(Reader r, PyObject *attributes) {
    Reader field;
    while (r.p < r.end) {
        uint32_t number;
        int wt;
        if (read_tag(&r, &number, &wt) != OK) return FALLBACK;
        if (number == 1) {
            if (wt != WT_LEN || read_len(&r, &field) != OK) return FALLBACK;
            if (append_bytes(attributes, &field) != OK) return FAILED;
        } else if (skip(&r, wt) != OK) {
            return FALLBACK;
        }
    }
    return OK;
}

static int scan_resource_spans(Reader r, PyObject *out) {
    PyObject *attributes = PyList_New(0);
    PyObject *spans = PyList_New(0);
    int rc = (attributes && spans) ? OK : FAILED;
    Reader field;
    while (rc == OK && r.p < r.end) {
        uint32_t number;
        int wt;
        if ((rc = read_tag(&r, &number, &wt)) != OK) break;
        if (number == 1 || number == 2) {
            if (wt != WT_LEN || read_len(&r, &field) != OK) rc = FALLBACK;
            else if (number == 1) rc = scan_resource(field, attributes); /* merged if repeated */
            else rc = scan_scope_spans(field, spans);
        } else {
            rc = skip(&r, wt);
        }
    }
    if (rc == OK) {
        PyObject *pair = PyTuple_Pack(2, attributes, spans);
        rc = (pair && PyList_Append(out, pair) == 0) ? OK : FAILED;
        Py_XDECREF(pair);
    }
    Py_XDECREF(attributes);
    Py_XDECREF(spans);
    return rc;
}

static PyObject *scan(PyObject *module, PyObject *arg) {
    (void)module;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) != 0) return NULL;
    Reader r = {(const uint8_t *)view.buf, (const uint8_t *)view.buf + view.len};
    PyObject *out = PyList_New(0);
    int rc = out ? OK : FAILED;
    Reader field;
    while (rc == OK && r.p < r.end) {
        uint32_t number;
        int wt;
        if ((rc = read_tag(&r, &number, &wt)) != OK) break;
        if (number == 1) {
            rc = (wt == WT_LEN && read_len(&r, &field) == OK) ? scan_resource_spans(field, out)
                                                              : FALLBACK;
        } else {
            rc = skip(&r, wt);
        }
    }
    PyBuffer_Release(&view);
    if (rc == OK) return out;
    Py_XDECREF(out);
    if (rc == FAILED) return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_O,
     "scan(body) -> list of (resource attribute KeyValues, span records), or None when the body\n"
     "is not in the canonical encoding (parse it with the protobuf runtime instead)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_wire", "An optional C scanner for OTLP trace requests.", -1, methods,
};

PyMODINIT_FUNC PyInit__wire(void) { return PyModule_Create(&module); }
