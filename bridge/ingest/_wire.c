/* The bridge's compiled hot path: MQTT packets in, message JSON and PUBACKs out.
 *
 * Three functions, each doing per message what the pure-Python path does (bridge/ingest/wire.py
 * says which Python code each one stands in for; the unit tests hold them to identical output):
 *
 *   scan(buffer, pos, mqtt5, max_payload, timestamp, retain_slow) -> (pos, items, stop, needed)
 *       Reads as many complete MQTT packets from ``buffer`` as it can. A plain QoS 0/1 PUBLISH
 *       (no MQTT 5 properties, a UTF-8 topic that does not start with "$") becomes an ingest item
 *       tuple, its payload already cut to ``max_payload`` bytes. The first packet that is anything
 *       else stops the scan: ``stop`` is (command byte, body start, body end) for paho to handle,
 *       or (-1, 0, 0) for a malformed remaining length. ``needed`` is how many more bytes the
 *       packet at ``pos`` needs when it is incomplete (0 when that is not known yet).
 *
 *   encode(items, max_payload, fallback) -> (messages, special)
 *       The message_received JSON (bytes, UTF-8) of every item whose topic does not start with
 *       "$"; ``special`` lists the indexes of the others, for the writer's routing. An item the
 *       C code cannot encode (a str that is not valid UTF-8) is encoded by ``fallback(item)``.
 *
 *   pubacks(items, start, end) -> (packet, qos2_mids)
 *       One buffer with a PUBACK for each QoS 1 item in items[start:end], and the mids of QoS 2
 *       ones (acknowledged through paho, which tracks their flow).
 *
 *   weigh(items) -> bytes;  take(deque, max_count, max_bytes) -> (items, bytes)
 *       The ingest queue's byte budget: what items hold, and a batch bounded in count and bytes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* --- a growable output buffer ------------------------------------------------------------ */
typedef struct {
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
} Buf;

static int
buf_reserve(Buf *b, Py_ssize_t extra)
{
    if (b->len + extra <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + extra)
        cap *= 2;
    char *data = PyMem_Realloc(b->data, (size_t)cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static inline int
buf_put(Buf *b, const char *s, Py_ssize_t n)
{
    if (buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, s, (size_t)n);
    b->len += n;
    return 0;
}

#define PUT_LITERAL(b, s) buf_put((b), (s), (Py_ssize_t)(sizeof(s) - 1))

/* --- UTF-8 validation, as Python's strict decoder judges it ---------------------------- */
static int
valid_utf8(const unsigned char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    while (i < n) {
        /* ASCII runs, eight bytes at a time */
        while (i + 8 <= n) {
            uint64_t word;
            memcpy(&word, s + i, 8);
            if (word & 0x8080808080808080ULL)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80)
                return 0;
            i += 2;
        }
        else if (c >= 0xE0 && c <= 0xEF) {
            if (i + 2 >= n)
                return 0;
            unsigned char c1 = s[i + 1];
            if ((c1 & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80)
                return 0;
            if (c == 0xE0 && c1 < 0xA0)
                return 0; /* overlong */
            if (c == 0xED && c1 >= 0xA0)
                return 0; /* a surrogate */
            i += 3;
        }
        else if (c >= 0xF0 && c <= 0xF4) {
            if (i + 3 >= n)
                return 0;
            unsigned char c1 = s[i + 1];
            if ((c1 & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 || (s[i + 3] & 0xC0) != 0x80)
                return 0;
            if (c == 0xF0 && c1 < 0x90)
                return 0; /* overlong */
            if (c == 0xF4 && c1 >= 0x90)
                return 0; /* above U+10FFFF */
            i += 4;
        }
        else {
            return 0;
        }
    }
    return 1;
}

/* --- JSON strings, as json.encoder.encode_basestring writes them (non-ASCII kept) -------- */
static const char HEX[] = "0123456789abcdef";

/* Whether any of a word's eight bytes is below 0x20, '"' or '\\' (bytes >= 0x80 pass as they are:
 * valid UTF-8 is copied unchanged). */
static inline int
word_needs_escape(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t ascii = ~w & highs;                                   /* high bit clear */
    uint64_t low = (w - ones * 0x20) & ascii;                      /* < 0x20 */
    uint64_t quote = ((w ^ (ones * '"')) - ones) & ~(w ^ (ones * '"')) & highs;
    uint64_t slash = ((w ^ (ones * '\\')) - ones) & ~(w ^ (ones * '\\')) & highs;
    return (low | quote | slash) != 0;
}

static int
put_json_string(Buf *b, const unsigned char *s, Py_ssize_t n)
{
    /* At most 6 output bytes per input byte, plus the quotes. */
    if (buf_reserve(b, n * 6 + 2) < 0)
        return -1;
    char *out = b->data + b->len;
    *out++ = '"';
    Py_ssize_t i = 0;
    while (i < n) {
        /* Runs of bytes that need no escape, eight at a time, copied whole. */
        Py_ssize_t run = i;
        while (run + 8 <= n) {
            uint64_t word;
            memcpy(&word, s + run, 8);
            if (word_needs_escape(word))
                break;
            run += 8;
        }
        if (run > i) {
            memcpy(out, s + i, (size_t)(run - i));
            out += run - i;
            i = run;
            if (i >= n)
                break;
        }
        unsigned char c = s[i++];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *out++ = (char)c;
            continue;
        }
        *out++ = '\\';
        switch (c) {
        case '"': *out++ = '"'; break;
        case '\\': *out++ = '\\'; break;
        case '\n': *out++ = 'n'; break;
        case '\r': *out++ = 'r'; break;
        case '\t': *out++ = 't'; break;
        case '\b': *out++ = 'b'; break;
        case '\f': *out++ = 'f'; break;
        default:
            *out++ = 'u';
            *out++ = '0';
            *out++ = '0';
            *out++ = HEX[c >> 4];
            *out++ = HEX[c & 0xF];
        }
    }
    *out++ = '"';
    b->len = out - b->data;
    return 0;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
put_base64(Buf *b, const unsigned char *s, Py_ssize_t n)
{
    if (buf_reserve(b, (n + 2) / 3 * 4) < 0)
        return -1;
    char *out = b->data + b->len;
    Py_ssize_t i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
        *out++ = B64[v >> 18];
        *out++ = B64[(v >> 12) & 63];
        *out++ = B64[(v >> 6) & 63];
        *out++ = B64[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)s[i] << 16;
        *out++ = B64[v >> 18];
        *out++ = B64[(v >> 12) & 63];
        *out++ = '=';
        *out++ = '=';
    }
    else if (n - i == 2) {
        unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8;
        *out++ = B64[v >> 18];
        *out++ = B64[(v >> 12) & 63];
        *out++ = B64[(v >> 6) & 63];
        *out++ = '=';
    }
    b->len = out - b->data;
    return 0;
}

static int
put_ssize(Buf *b, Py_ssize_t v)
{
    char text[32];
    int n = snprintf(text, sizeof text, "%zd", v);
    return buf_put(b, text, n);
}

/* --- scan ---------------------------------------------------------------------------------- */
static PyObject *
wire_scan(PyObject *module, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t pos, max_payload;
    int mqtt5, retain_slow;
    PyObject *timestamp;
    if (!PyArg_ParseTuple(args, "y*npnOp", &view, &pos, &mqtt5, &max_payload, &timestamp, &retain_slow))
        return NULL;
    const unsigned char *buf = view.buf;
    Py_ssize_t len = view.len;
    PyObject *items = PyList_New(0);
    PyObject *stop = Py_None;
    Py_ssize_t needed = 0;
    /* Consecutive messages on one topic share one str. */
    const unsigned char *last_topic = NULL;
    Py_ssize_t last_topic_len = 0;
    PyObject *topic_obj = NULL;
    Py_INCREF(Py_None);
    if (items == NULL)
        goto fail;
    if (pos < 0 || pos > len) {
        PyErr_SetString(PyExc_ValueError, "pos outside the buffer");
        goto fail;
    }
    while (pos < len) {
        Py_ssize_t start = pos;
        unsigned char cmd = buf[start];
        Py_ssize_t remaining = 0, mult = 1, i = start + 1;
        int complete_length = 0;
        for (int k = 0; k < 4; k++) {
            if (i >= len)
                break;
            unsigned char byte = buf[i++];
            remaining += (Py_ssize_t)(byte & 127) * mult;
            mult *= 128;
            if (!(byte & 128)) {
                complete_length = 1;
                break;
            }
            if (k == 3) { /* a fifth length byte: malformed, as paho says */
                Py_DECREF(stop);
                stop = Py_BuildValue("(inn)", -1, (Py_ssize_t)0, (Py_ssize_t)0);
                if (stop == NULL)
                    goto fail;
                goto done;
            }
        }
        if (!complete_length)
            break;
        Py_ssize_t body = i, end = i + remaining;
        if (end > len) {
            needed = end - len;
            break;
        }
        if ((cmd & 0xF0) != 0x30)
            goto slow;
        {
            int qos = (cmd >> 1) & 3;
            int retain = cmd & 1;
            if (qos > 1 || (retain && retain_slow) || remaining < 2)
                goto slow;
            Py_ssize_t topic_len = (Py_ssize_t)buf[body] << 8 | buf[body + 1];
            Py_ssize_t t = body + 2, p = t + topic_len;
            if (topic_len == 0 || p > end || buf[t] == '$')
                goto slow; /* a topic alias, malformed, or $SYS/$CONTROL: paho's way */
            long mid = 0;
            if (qos) {
                if (p + 2 > end)
                    goto slow;
                mid = (long)buf[p] << 8 | buf[p + 1];
                p += 2;
            }
            if (mqtt5) {
                if (p >= end || buf[p] != 0)
                    goto slow; /* properties: paho's full path */
                p += 1;
            }
            if (topic_obj == NULL || topic_len != last_topic_len
                || memcmp(last_topic, buf + t, (size_t)topic_len) != 0) {
                if (!valid_utf8(buf + t, topic_len))
                    goto slow;
                PyObject *decoded = PyUnicode_DecodeUTF8((const char *)buf + t, topic_len, "strict");
                if (decoded == NULL)
                    goto fail;
                Py_XSETREF(topic_obj, decoded);
                last_topic = buf + t;
                last_topic_len = topic_len;
            }
            Py_ssize_t size = end - p;
            int cut = size > max_payload;
            PyObject *payload = PyBytes_FromStringAndSize((const char *)buf + p, cut ? max_payload : size);
            if (payload == NULL)
                goto fail;
            PyObject *mid_obj = PyLong_FromLong(mid);
            if (mid_obj == NULL) {
                Py_DECREF(payload);
                goto fail;
            }
            PyObject *item = PyTuple_New(cut ? 9 : 7);
            if (item == NULL) {
                Py_DECREF(payload);
                Py_DECREF(mid_obj);
                goto fail;
            }
            Py_INCREF(topic_obj);
            PyTuple_SET_ITEM(item, 0, topic_obj);
            PyTuple_SET_ITEM(item, 1, payload);
            PyTuple_SET_ITEM(item, 2, PyLong_FromLong(qos)); /* small ints: cached, cannot fail */
            PyTuple_SET_ITEM(item, 3, PyBool_FromLong(retain));
            Py_INCREF(timestamp);
            PyTuple_SET_ITEM(item, 4, timestamp);
            PyTuple_SET_ITEM(item, 5, mid_obj);
            PyTuple_SET_ITEM(item, 6, PyBool_FromLong(cmd & 0x08));
            if (cut) {
                Py_INCREF(Py_None);
                PyTuple_SET_ITEM(item, 7, Py_None);
                PyObject *size_obj = PyLong_FromSsize_t(size);
                if (size_obj == NULL) {
                    Py_DECREF(item);
                    goto fail;
                }
                PyTuple_SET_ITEM(item, 8, size_obj);
            }
            int appended = PyList_Append(items, item);
            Py_DECREF(item);
            if (appended < 0)
                goto fail;
            pos = end;
            continue;
        }
    slow:
        Py_DECREF(stop);
        stop = Py_BuildValue("(inn)", (int)cmd, body, end);
        if (stop == NULL)
            goto fail;
        break;
    }
done:
    Py_XDECREF(topic_obj);
    PyBuffer_Release(&view);
    {
        PyObject *result = Py_BuildValue("(nNNn)", pos, items, stop, needed);
        return result;
    }
fail:
    Py_XDECREF(topic_obj);
    Py_XDECREF(items);
    Py_XDECREF(stop);
    PyBuffer_Release(&view);
    return NULL;
}

/* --- encode ------------------------------------------------------------------------------ */
/* One message's JSON is written here, then copied into its bytes object. Kept between calls up
 * to SCRATCH_KEEP bytes, so a batch of large messages does not grow a buffer every call. */
#define SCRATCH_KEEP (8 * 1024 * 1024)
static Buf scratch = {0};

static void
keep_scratch(Buf *b)
{
    if (b->cap > SCRATCH_KEEP || scratch.data != NULL) {
        PyMem_Free(b->data);
    }
    else {
        scratch = *b;
        scratch.len = 0;
    }
    *b = (Buf){0};
}

/* 1 when encoded into ``out``; 0 when the caller must use the fallback; -1 on an error. */
static int
encode_item(Buf *out, PyObject *item, Py_ssize_t max_payload, PyObject **last_ts, Buf *ts_text)
{
    Py_ssize_t fields = PyTuple_GET_SIZE(item);
    if (fields < 7)
        return 0;
    PyObject *topic = PyTuple_GET_ITEM(item, 0);
    PyObject *payload = PyTuple_GET_ITEM(item, 1);
    PyObject *timestamp = PyTuple_GET_ITEM(item, 4);
    if (!PyUnicode_Check(topic) || !PyBytes_Check(payload) || !PyFloat_CheckExact(timestamp))
        return 0;
    Py_ssize_t topic_len;
    const char *topic_utf8 = PyUnicode_AsUTF8AndSize(topic, &topic_len);
    if (topic_utf8 == NULL) { /* lone surrogates: Python's own encoder copes */
        PyErr_Clear();
        return 0;
    }
    PyObject *properties = fields > 7 ? PyTuple_GET_ITEM(item, 7) : Py_None;
    if (properties != Py_None && PyObject_IsTrue(properties))
        return 0; /* MQTT 5 properties (rare): protocol.dumps, through the fallback */
    if (fields > 9 && PyTuple_GET_ITEM(item, 9) != Py_None)
        return 0; /* properties cut to their budget: the fallback says so */
    long qos = PyLong_AsLong(PyTuple_GET_ITEM(item, 2));
    if (qos == -1 && PyErr_Occurred())
        return -1;
    int retain = PyObject_IsTrue(PyTuple_GET_ITEM(item, 3));
    int dup = PyObject_IsTrue(PyTuple_GET_ITEM(item, 6));
    if (retain < 0 || dup < 0)
        return -1;
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(payload);
    Py_ssize_t n = PyBytes_GET_SIZE(payload);
    Py_ssize_t size = n;
    if (fields > 8) {
        size = PyLong_AsSsize_t(PyTuple_GET_ITEM(item, 8));
        if (size == -1 && PyErr_Occurred())
            return -1;
    }
    if (size < n)
        size = n;
    if (n > max_payload)
        n = max_payload;
    int truncated = size > n;

    if (PUT_LITERAL(out, "{\"type\":\"message_received\",\"topic\":") < 0
        || put_json_string(out, (const unsigned char *)topic_utf8, topic_len) < 0
        || PUT_LITERAL(out, ",\"payload\":") < 0)
        return -1;
    if (valid_utf8(data, n)) {
        if (put_json_string(out, data, n) < 0 || PUT_LITERAL(out, ",\"encoding\":\"utf-8\"") < 0)
            return -1;
    }
    else {
        if (PUT_LITERAL(out, "\"") < 0 || put_base64(out, data, n) < 0
            || PUT_LITERAL(out, "\",\"encoding\":\"base64\"") < 0)
            return -1;
    }
    if (PUT_LITERAL(out, ",\"qos\":") < 0 || put_ssize(out, qos) < 0)
        return -1;
    if ((retain ? PUT_LITERAL(out, ",\"retain\":true") : PUT_LITERAL(out, ",\"retain\":false")) < 0)
        return -1;
    if (timestamp != *last_ts) {
        /* float.__repr__, as the f-string's !r writes it; one per scan, so cached */
        char *text = PyOS_double_to_string(PyFloat_AS_DOUBLE(timestamp), 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (text == NULL)
            return -1;
        ts_text->len = 0;
        int failed = buf_put(ts_text, text, (Py_ssize_t)strlen(text));
        PyMem_Free(text);
        if (failed < 0)
            return -1;
        *last_ts = timestamp;
    }
    if (PUT_LITERAL(out, ",\"timestamp\":") < 0 || buf_put(out, ts_text->data, ts_text->len) < 0)
        return -1;
    if (dup && PUT_LITERAL(out, ",\"dup\":true") < 0)
        return -1;
    if (truncated
        && (PUT_LITERAL(out, ",\"truncated\":true,\"size\":") < 0 || put_ssize(out, size) < 0))
        return -1;
    if (PUT_LITERAL(out, "}") < 0)
        return -1;
    return 1;
}

static PyObject *
wire_encode(PyObject *module, PyObject *args)
{
    PyObject *items, *fallback;
    Py_ssize_t max_payload;
    if (!PyArg_ParseTuple(args, "O!nO", &PyList_Type, &items, &max_payload, &fallback))
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(items);
    PyObject *messages = PyList_New(0);
    PyObject *special = PyList_New(0);
    Buf out = scratch, ts_text = {0}; /* the scratch buffer is kept between calls (the GIL guards it) */
    scratch = (Buf){0};
    PyObject *last_ts = NULL; /* borrowed: only compared */
    if (messages == NULL || special == NULL)
        goto fail;
    for (Py_ssize_t index = 0; index < PyList_GET_SIZE(items) && index < count; index++) {
        PyObject *item = PyList_GET_ITEM(items, index);
        if (!PyTuple_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "an ingest item must be a tuple");
            goto fail;
        }
        PyObject *topic = PyTuple_GET_SIZE(item) ? PyTuple_GET_ITEM(item, 0) : NULL;
        if (topic != NULL && PyUnicode_Check(topic) && PyUnicode_GET_LENGTH(topic) > 0
            && PyUnicode_READ_CHAR(topic, 0) == '$') {
            PyObject *at = PyLong_FromSsize_t(index);
            if (at == NULL || PyList_Append(special, at) < 0) {
                Py_XDECREF(at);
                goto fail;
            }
            Py_DECREF(at);
            continue;
        }
        out.len = 0;
        int done = encode_item(&out, item, max_payload, &last_ts, &ts_text);
        PyObject *message;
        if (done < 0)
            goto fail;
        if (done)
            message = PyBytes_FromStringAndSize(out.data, out.len);
        else
            message = PyObject_CallOneArg(fallback, item);
        if (message == NULL)
            goto fail;
        int appended = PyList_Append(messages, message);
        Py_DECREF(message);
        if (appended < 0)
            goto fail;
    }
    keep_scratch(&out);
    PyMem_Free(ts_text.data);
    return Py_BuildValue("(NN)", messages, special);
fail:
    keep_scratch(&out);
    PyMem_Free(ts_text.data);
    Py_XDECREF(messages);
    Py_XDECREF(special);
    return NULL;
}

/* --- pubacks ----------------------------------------------------------------------------- */
static PyObject *
wire_pubacks(PyObject *module, PyObject *args)
{
    PyObject *items;
    Py_ssize_t start, end;
    if (!PyArg_ParseTuple(args, "O!nn", &PyList_Type, &items, &start, &end))
        return NULL;
    if (start < 0)
        start = 0;
    if (end > PyList_GET_SIZE(items))
        end = PyList_GET_SIZE(items);
    Buf out = {0};
    PyObject *qos2 = PyList_New(0);
    if (qos2 == NULL)
        return NULL;
    for (Py_ssize_t index = start; index < end; index++) {
        PyObject *item = PyList_GET_ITEM(items, index);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) < 7) {
            PyErr_SetString(PyExc_TypeError, "an ingest item must be a tuple of at least 7");
            goto fail;
        }
        long qos = PyLong_AsLong(PyTuple_GET_ITEM(item, 2));
        long mid = PyLong_AsLong(PyTuple_GET_ITEM(item, 5));
        if (PyErr_Occurred())
            goto fail;
        if (qos == 1) {
            /* PUBACK, remaining length 2, the packet id: reason code 0 may be left out (MQTT 5) */
            char packet[4] = {0x40, 0x02, (char)((mid >> 8) & 0xFF), (char)(mid & 0xFF)};
            if (buf_put(&out, packet, 4) < 0)
                goto fail;
        }
        else if (qos == 2) {
            if (PyList_Append(qos2, PyTuple_GET_ITEM(item, 5)) < 0)
                goto fail;
        }
    }
    {
        PyObject *packet = PyBytes_FromStringAndSize(out.data ? out.data : "", out.len);
        PyMem_Free(out.data);
        if (packet == NULL) {
            Py_DECREF(qos2);
            return NULL;
        }
        return Py_BuildValue("(NN)", packet, qos2);
    }
fail:
    PyMem_Free(out.data);
    Py_DECREF(qos2);
    return NULL;
}

/* --- weigh and take: the ingest queue's byte budget ------------------------------------- */
/* What an item holds in memory, roughly: its payload, its topic and ITEM_OVERHEAD for the tuple
 * and its small objects. The same formula as wire.py's item_weight, so the reader's and the
 * writer's counts of the queue's bytes always agree. */
#define ITEM_OVERHEAD 200

static Py_ssize_t
item_weight(PyObject *item)
{
    Py_ssize_t weight = ITEM_OVERHEAD;
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) < 2)
        return weight;
    PyObject *topic = PyTuple_GET_ITEM(item, 0);
    PyObject *payload = PyTuple_GET_ITEM(item, 1);
    if (PyUnicode_Check(topic))
        weight += PyUnicode_GET_LENGTH(topic);
    if (PyBytes_Check(payload))
        weight += PyBytes_GET_SIZE(payload);
    else if (PyByteArray_Check(payload))
        weight += PyByteArray_GET_SIZE(payload);
    return weight;
}

static PyObject *
wire_weigh(PyObject *module, PyObject *items)
{
    if (!PyList_Check(items)) {
        PyErr_SetString(PyExc_TypeError, "weigh takes a list of items");
        return NULL;
    }
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++)
        total += item_weight(PyList_GET_ITEM(items, i));
    return PyLong_FromSsize_t(total);
}

static PyObject *
wire_take(PyObject *module, PyObject *args)
{
    PyObject *queue;
    Py_ssize_t max_count, max_bytes;
    if (!PyArg_ParseTuple(args, "Onn", &queue, &max_count, &max_bytes))
        return NULL;
    Py_ssize_t available = PyObject_Length(queue);
    if (available < 0)
        return NULL;
    PyObject *taken = PyList_New(0);
    PyObject *popleft = PyObject_GetAttrString(queue, "popleft");
    if (taken == NULL || popleft == NULL)
        goto fail;
    Py_ssize_t weight = 0;
    /* At least one item, however large: a message bigger than the budget still goes through. */
    while (PyList_GET_SIZE(taken) < max_count && PyList_GET_SIZE(taken) < available
           && (weight < max_bytes || PyList_GET_SIZE(taken) == 0)) {
        PyObject *item = PyObject_CallNoArgs(popleft);
        if (item == NULL) {
            if (PyErr_ExceptionMatches(PyExc_IndexError)) { /* emptied by someone else */
                PyErr_Clear();
                break;
            }
            goto fail;
        }
        weight += item_weight(item);
        int appended = PyList_Append(taken, item);
        Py_DECREF(item);
        if (appended < 0)
            goto fail;
    }
    Py_DECREF(popleft);
    return Py_BuildValue("(Nn)", taken, weight);
fail:
    Py_XDECREF(popleft);
    Py_XDECREF(taken);
    return NULL;
}

static PyMethodDef wire_methods[] = {
    {"scan", wire_scan, METH_VARARGS, "Read complete MQTT packets; plain PUBLISH packets become ingest items."},
    {"encode", wire_encode, METH_VARARGS, "The message_received JSON of ingest items."},
    {"pubacks", wire_pubacks, METH_VARARGS, "PUBACK packets for the QoS 1 items of a range."},
    {"weigh", wire_weigh, METH_O, "The bytes a list of items holds, as the queue's budget counts them."},
    {"take", wire_take, METH_VARARGS, "Pop up to max_count items or max_bytes (at least one) from a deque."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef wire_module = {
    PyModuleDef_HEAD_INIT, "_wire", "The bridge's compiled hot path (see bridge/ingest/wire.py).", -1, wire_methods,
};

PyMODINIT_FUNC
PyInit__wire(void)
{
    return PyModule_Create(&wire_module);
}
