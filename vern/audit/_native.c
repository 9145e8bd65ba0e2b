/* The audit trail's per-record hot loops, in C: the canonical line of a record, its RFC 9162
 * leaf hash and the Merkle frontier it is appended to.
 *
 * Optional: ``vern.audit.native`` falls back to the pure-Python loops (which stay the
 * reference) when this module is not built, and the tests check that both give the same bytes.
 * SHA-256 is OpenSSL's (the library Python's hashlib uses). Personal data is sealed with the
 * AES-GCM object each draft carries: a ``Gcm`` (below, OpenSSL's AES-GCM with the key schedule
 * kept) directly, any other object (``cryptography``'s ``AESGCM``) through its ``encrypt``.
 *
 * Canonical line: the JSON array of the record's columns as ``json.dumps(values,
 * ensure_ascii=True, separators=(",", ":"))`` writes it - integers in decimal, ``null``, strings
 * quoted with JSON's ASCII escapes (``\" \\ \b \f \n \r \t``, every other character outside
 * 0x20..0x7e as ``\uXXXX`` in lowercase hex, astral characters as a surrogate pair).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <openssl/evp.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#define MAX_HEIGHT 64
#define N_DRAFT 16  /* items of a draft before the two key items */

static const char HEX[] = "0123456789abcdef";

/* -- a growable byte buffer ------------------------------------------------------------------ */

typedef struct {
    char *p;
    Py_ssize_t len, cap;
} Buf;

static int
buf_reserve(Buf *b, Py_ssize_t extra)
{
    if (b->len + extra <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap ? b->cap : 2048;
    while (cap < b->len + extra)
        cap *= 2;
    char *p = PyMem_Realloc(b->p, (size_t)cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline void
put_raw(Buf *b, const char *s, Py_ssize_t n)
{
    memcpy(b->p + b->len, s, (size_t)n);
    b->len += n;
}

static inline void
put_u4(char *o, Py_UCS4 c)
{
    o[0] = '\\';
    o[1] = 'u';
    o[2] = HEX[(c >> 12) & 0xf];
    o[3] = HEX[(c >> 8) & 0xf];
    o[4] = HEX[(c >> 4) & 0xf];
    o[5] = HEX[c & 0xf];
}

/* Bytes as the JSON string of their hex digits, written at ``o`` (room for ``2 * n + 2``);
 * returns the end. */
static inline char *
hex_string(char *o, const unsigned char *src, Py_ssize_t n)
{
    *o++ = '"';
    for (Py_ssize_t j = 0; j < n; j++) {
        *o++ = HEX[src[j] >> 4];
        *o++ = HEX[src[j] & 0xf];
    }
    *o++ = '"';
    return o;
}

static int
put_hex(Buf *b, const unsigned char *src, Py_ssize_t n)
{
    if (buf_reserve(b, 2 * n + 2) < 0)
        return -1;
    b->len = hex_string(b->p + b->len, src, n) - b->p;
    return 0;
}

/* ``null`` for None, the JSON string of a str; a TypeError naming ``field`` for anything else. */
static int
put_str(Buf *b, PyObject *s, const char *field)
{
    if (s == Py_None) {
        if (buf_reserve(b, 4) < 0)
            return -1;
        put_raw(b, "null", 4);
        return 0;
    }
    if (!PyUnicode_Check(s)) {
        PyErr_Format(PyExc_TypeError, "%s: expected str or None, not %.100s", field,
                     Py_TYPE(s)->tp_name);
        return -1;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    if (buf_reserve(b, 2 + 12 * n) < 0)
        return -1;
    char *o = b->p + b->len;
    *o++ = '"';
    if (PyUnicode_IS_ASCII(s)) {
        /* Most text: printable ASCII, copied as it is up to the first byte to escape. */
        const unsigned char *a = PyUnicode_1BYTE_DATA(s);
        Py_ssize_t i = 0;
        while (i < n && a[i] >= ' ' && a[i] != '"' && a[i] != '\\' && a[i] != 0x7f)
            i++;
        if (i == n) {
            memcpy(o, a, (size_t)n);
            o += n;
            *o++ = '"';
            b->len = o - b->p;
            return 0;
        }
    }
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c >= ' ' && c <= '~' && c != '\\' && c != '"') {
            *o++ = (char)c;
            continue;
        }
        switch (c) {
        case '\\': *o++ = '\\'; *o++ = '\\'; break;
        case '"': *o++ = '\\'; *o++ = '"'; break;
        case '\b': *o++ = '\\'; *o++ = 'b'; break;
        case '\f': *o++ = '\\'; *o++ = 'f'; break;
        case '\n': *o++ = '\\'; *o++ = 'n'; break;
        case '\r': *o++ = '\\'; *o++ = 'r'; break;
        case '\t': *o++ = '\\'; *o++ = 't'; break;
        default:
            if (c >= 0x10000) {
                Py_UCS4 v = c - 0x10000;
                put_u4(o, 0xd800 | ((v >> 10) & 0x3ff));
                o += 6;
                c = 0xdc00 | (v & 0x3ff);
            }
            put_u4(o, c);
            o += 6;
        }
    }
    *o++ = '"';
    b->len = o - b->p;
    return 0;
}

static int
put_int(Buf *b, long long v)
{
    char tmp[24];
    int n = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    if (buf_reserve(b, 24) < 0)
        return -1;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        b->p[b->len++] = '-';
    while (n)
        b->p[b->len++] = tmp[--n];
    return 0;
}

/* An int (not a bool) as a C integer, a TypeError naming ``field`` otherwise. */
static int
as_int(PyObject *o, const char *field, long long *out)
{
    if (!PyLong_CheckExact(o)) {
        PyErr_Format(PyExc_TypeError, "%s: expected int, not %.100s", field,
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    *out = PyLong_AsLongLong(o);
    if (*out == -1 && PyErr_Occurred())
        return -1;
    return 0;
}

/* -- SHA-256 and the frontier ---------------------------------------------------------------- */

static EVP_MD *sha256_md;  /* fetched once (an implicit fetch on every digest costs more) */

typedef struct {
    EVP_MD_CTX *ctx;
    const EVP_MD *md;
    int n;                               /* subtrees in the frontier */
    int heights[MAX_HEIGHT + 1];
    unsigned char nodes[MAX_HEIGHT + 1][32];
} Tree;

static int
sha(Tree *t, const void *a, size_t an, const void *b, size_t bn, unsigned char out[32])
{
    unsigned int len = 0;
    if (EVP_DigestInit_ex2(t->ctx, t->md, NULL) != 1 || EVP_DigestUpdate(t->ctx, a, an) != 1
        || (bn && EVP_DigestUpdate(t->ctx, b, bn) != 1)
        || EVP_DigestFinal_ex(t->ctx, out, &len) != 1 || len != 32) {
        PyErr_SetString(PyExc_RuntimeError, "SHA-256 failed");
        return -1;
    }
    return 0;
}

/* The frontier from ``heights`` (list of int) and ``nodes`` (list of 32-byte bytes). */
static int
tree_open(Tree *t, PyObject *heights, PyObject *nodes)
{
    t->ctx = NULL;
    if (!PyList_Check(heights) || !PyList_Check(nodes)
        || PyList_GET_SIZE(heights) != PyList_GET_SIZE(nodes)
        || PyList_GET_SIZE(heights) > MAX_HEIGHT) {
        PyErr_SetString(PyExc_ValueError, "frontier: two lists of the same length expected");
        return -1;
    }
    t->n = (int)PyList_GET_SIZE(heights);
    for (int i = 0; i < t->n; i++) {
        long h = PyLong_AsLong(PyList_GET_ITEM(heights, i));
        PyObject *node = PyList_GET_ITEM(nodes, i);
        if ((h == -1 && PyErr_Occurred()) || h < 0 || h > MAX_HEIGHT || !PyBytes_Check(node)
            || PyBytes_GET_SIZE(node) != 32) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "frontier: bad height or node");
            return -1;
        }
        t->heights[i] = (int)h;
        memcpy(t->nodes[i], PyBytes_AS_STRING(node), 32);
    }
    t->md = sha256_md;
    t->ctx = EVP_MD_CTX_new();
    if (t->md == NULL || t->ctx == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* Write the frontier back into the two lists. */
static int
tree_close(Tree *t, PyObject *heights, PyObject *nodes)
{
    if (t->ctx != NULL)
        EVP_MD_CTX_free(t->ctx);
    t->ctx = NULL;
    PyObject *hs = PyList_New(t->n), *ns = PyList_New(t->n);
    if (hs == NULL || ns == NULL)
        goto fail;
    for (int i = 0; i < t->n; i++) {
        PyObject *h = PyLong_FromLong(t->heights[i]);
        PyObject *node = PyBytes_FromStringAndSize((const char *)t->nodes[i], 32);
        if (h == NULL || node == NULL) {
            Py_XDECREF(h);
            Py_XDECREF(node);
            goto fail;
        }
        PyList_SET_ITEM(hs, i, h);
        PyList_SET_ITEM(ns, i, node);
    }
    if (PyList_SetSlice(heights, 0, PY_SSIZE_T_MAX, hs) < 0
        || PyList_SetSlice(nodes, 0, PY_SSIZE_T_MAX, ns) < 0)
        goto fail;
    Py_DECREF(hs);
    Py_DECREF(ns);
    return 0;
fail:
    Py_XDECREF(hs);
    Py_XDECREF(ns);
    return -1;
}

/* The frontier written back (also after a failure: a failed append is rolled back and its
 * frontier read again from the database), the error kept; ``value`` as an int, or NULL. */
static PyObject *
tree_finish(Tree *t, PyObject *heights, PyObject *nodes, int failed, long long value)
{
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    if (tree_close(t, heights, nodes) < 0)
        failed = 1;
    if (et != NULL)
        PyErr_Restore(et, ev, tb);
    return failed ? NULL : PyLong_FromLongLong(value);
}

typedef struct {
    int height;
    long long index;
    unsigned char hash[32];
} Tile;

/* Append the leaf of ``line`` at position ``size``; completed subtrees whose height is in
 * ``watch`` (a bit mask) go to ``tiles`` (room for them is the caller's). No Python here: the
 * caller may have released the GIL. -1 (no exception set) when OpenSSL fails. */
static int
tree_append(Tree *t, const char *line, Py_ssize_t n, long long size, unsigned long long watch,
            Tile *tiles, Py_ssize_t *ntiles)
{
    static const unsigned char leaf_prefix = 0x00;
    unsigned char node[32];
    unsigned char pair[65];
    if (sha(t, &leaf_prefix, 1, line, (size_t)n, node) < 0)
        return -1;
    int h = 0;
    pair[0] = 0x01;
    while (t->n > 0 && t->heights[t->n - 1] == h) {
        memcpy(pair + 1, t->nodes[t->n - 1], 32);
        memcpy(pair + 33, node, 32);
        if (sha(t, pair, 65, NULL, 0, node) < 0)
            return -1;
        t->n--;
        h++;
        if (h < 64 && (watch >> h) & 1) {
            Tile *tile = &tiles[(*ntiles)++];
            tile->height = h;
            tile->index = size >> h;
            memcpy(tile->hash, node, 32);
        }
    }
    if (t->n >= MAX_HEIGHT)
        return -1;
    t->heights[t->n] = h;
    memcpy(t->nodes[t->n], node, 32);
    t->n++;
    return 0;
}

/* -- append ---------------------------------------------------------------------------------- */

static PyObject *s_encrypt;

/* -- AES-GCM with the key schedule kept -------------------------------------------------------
 *
 * ``Gcm(key)``: AES-GCM (128, 192 or 256 bits by the key's length) whose OpenSSL context holds
 * the expanded key, so that sealing one record only sets the nonce. ``encrypt(nonce, data,
 * associated_data)`` gives the same bytes as ``cryptography``'s ``AESGCM.encrypt`` (ciphertext
 * and 16-byte tag) for 12-byte nonces. Used with the GIL held (the context is not shared
 * between threads otherwise). */

typedef struct {
    PyObject_HEAD
    EVP_CIPHER_CTX *ctx;
} Gcm;

static PyTypeObject GcmType;

static PyObject *
gcm_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"key", NULL};
    Py_buffer key;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*:Gcm", kwlist, &key))
        return NULL;
    const EVP_CIPHER *cipher = key.len == 16 ? EVP_aes_128_gcm()
        : key.len == 24 ? EVP_aes_192_gcm() : key.len == 32 ? EVP_aes_256_gcm() : NULL;
    if (cipher == NULL) {
        PyBuffer_Release(&key);
        PyErr_SetString(PyExc_ValueError, "AES-GCM key must be 128, 192, or 256 bits.");
        return NULL;
    }
    Gcm *self = (Gcm *)type->tp_alloc(type, 0);
    if (self == NULL) {
        PyBuffer_Release(&key);
        return NULL;
    }
    self->ctx = EVP_CIPHER_CTX_new();
    int ok = self->ctx != NULL
        && EVP_EncryptInit_ex(self->ctx, cipher, NULL, key.buf, NULL) == 1;
    PyBuffer_Release(&key);
    if (!ok) {
        Py_DECREF(self);
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL: AES-GCM context");
        return NULL;
    }
    return (PyObject *)self;
}

static void
gcm_dealloc(Gcm *self)
{
    if (self->ctx != NULL)
        EVP_CIPHER_CTX_free(self->ctx);  /* clears the key schedule */
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* ``out`` takes ``n + 16`` bytes: the ciphertext of ``data`` and the tag, the associated data
 * being ``ad1 | ad2``. */
static int
gcm_seal(Gcm *g, const unsigned char nonce[12], const void *ad1, Py_ssize_t n1,
         const void *ad2, Py_ssize_t n2, const void *data, Py_ssize_t n, unsigned char *out)
{
    int len = 0, fin = 0;
    if (n > INT_MAX - 16 || n1 > INT_MAX || n2 > INT_MAX
        || EVP_EncryptInit_ex(g->ctx, NULL, NULL, NULL, nonce) != 1
        || (n1 > 0 && EVP_EncryptUpdate(g->ctx, NULL, &len, ad1, (int)n1) != 1)
        || (n2 > 0 && EVP_EncryptUpdate(g->ctx, NULL, &len, ad2, (int)n2) != 1)
        || (n > 0 && EVP_EncryptUpdate(g->ctx, out, &len, data, (int)n) != 1)
        || EVP_EncryptFinal_ex(g->ctx, out + (n > 0 ? len : 0), &fin) != 1
        || EVP_CIPHER_CTX_ctrl(g->ctx, EVP_CTRL_GCM_GET_TAG, 16, out + n) != 1) {
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL: AES-GCM encryption failed");
        return -1;
    }
    return 0;
}

static PyObject *
gcm_encrypt(Gcm *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"nonce", "data", "associated_data", NULL};
    Py_buffer nonce, data, ad = {0};
    PyObject *ad_o = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*y*|O:encrypt", kwlist, &nonce, &data, &ad_o))
        return NULL;
    PyObject *out = NULL;
    if (ad_o != Py_None && PyObject_GetBuffer(ad_o, &ad, PyBUF_SIMPLE) < 0)
        goto done;
    if (nonce.len != 12) {
        PyErr_SetString(PyExc_ValueError, "Nonce must be 12 bytes");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, data.len + 16);
    if (out != NULL && gcm_seal(self, nonce.buf, ad.buf, ad.len, NULL, 0, data.buf, data.len,
                                (unsigned char *)PyBytes_AS_STRING(out)) < 0)
        Py_CLEAR(out);
done:
    if (ad.obj != NULL)
        PyBuffer_Release(&ad);
    PyBuffer_Release(&nonce);
    PyBuffer_Release(&data);
    return out;
}

static PyMethodDef gcm_methods[] = {
    {"encrypt", (PyCFunction)(void (*)(void))gcm_encrypt, METH_VARARGS | METH_KEYWORDS,
     "AES-GCM encryption: ciphertext and tag (as cryptography's AESGCM.encrypt)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject GcmType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "vern.audit._native.Gcm",
    .tp_basicsize = sizeof(Gcm),
    .tp_dealloc = (destructor)gcm_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "AES-GCM with the key schedule kept (see the module's source).",
    .tp_methods = gcm_methods,
    .tp_new = gcm_new,
};

static const char *DRAFT_NAMES[N_DRAFT] = {
    "ts", "source", "org_id", "actor_user_id", "actor_token_id", "actor_ref", "key_id",
    "personal", "ip_index", "net_index", "action", "resource", "outcome", "request_id",
    "client_event_id", "details",
};

/* The sealed blob of a keyed draft: 0x01 | key id | nonce | AES-GCM(plain, ad | key id). */
static PyObject *
seal(PyObject *d, PyObject *plain, const char *nonce, PyObject *ad)
{
    PyObject *aead = PyTuple_GET_ITEM(d, N_DRAFT);
    PyObject *kid = PyTuple_GET_ITEM(d, N_DRAFT + 1);
    if (!PyBytes_Check(kid) || PyBytes_GET_SIZE(kid) != 16) {
        PyErr_SetString(PyExc_TypeError, "key id: 16 bytes expected");
        return NULL;
    }
    if (Py_IS_TYPE(aead, &GcmType)) {  /* one allocation, no call */
        Py_buffer view;
        if (PyObject_GetBuffer(plain, &view, PyBUF_SIMPLE) < 0)
            return NULL;
        PyObject *blob = PyBytes_FromStringAndSize(NULL, 1 + 16 + 12 + view.len + 16);
        if (blob != NULL) {
            unsigned char *p = (unsigned char *)PyBytes_AS_STRING(blob);
            p[0] = 0x01;
            memcpy(p + 1, PyBytes_AS_STRING(kid), 16);
            memcpy(p + 17, nonce, 12);
            if (gcm_seal((Gcm *)aead, (const unsigned char *)nonce, PyBytes_AS_STRING(ad),
                         PyBytes_GET_SIZE(ad), PyBytes_AS_STRING(kid), 16, view.buf, view.len,
                         p + 29) < 0)
                Py_CLEAR(blob);
        }
        PyBuffer_Release(&view);
        return blob;
    }
    PyObject *nonce_b = PyBytes_FromStringAndSize(nonce, 12);
    PyObject *full_ad = nonce_b ? PyBytes_FromStringAndSize(NULL, PyBytes_GET_SIZE(ad) + 16) : NULL;
    if (full_ad == NULL) {
        Py_XDECREF(nonce_b);
        return NULL;
    }
    memcpy(PyBytes_AS_STRING(full_ad), PyBytes_AS_STRING(ad), (size_t)PyBytes_GET_SIZE(ad));
    memcpy(PyBytes_AS_STRING(full_ad) + PyBytes_GET_SIZE(ad), PyBytes_AS_STRING(kid), 16);
    PyObject *args[4] = {aead, nonce_b, plain, full_ad};
    PyObject *body = PyObject_VectorcallMethod(s_encrypt, args, 4, NULL);
    Py_DECREF(nonce_b);
    Py_DECREF(full_ad);
    if (body == NULL)
        return NULL;
    if (!PyBytes_Check(body)) {
        Py_DECREF(body);
        PyErr_SetString(PyExc_TypeError, "encrypt did not return bytes");
        return NULL;
    }
    Py_ssize_t bn = PyBytes_GET_SIZE(body);
    PyObject *blob = PyBytes_FromStringAndSize(NULL, 1 + 16 + 12 + bn);
    if (blob != NULL) {
        char *p = PyBytes_AS_STRING(blob);
        p[0] = 0x01;
        memcpy(p + 1, PyBytes_AS_STRING(kid), 16);
        memcpy(p + 17, nonce, 12);
        memcpy(p + 29, PyBytes_AS_STRING(body), (size_t)bn);
    }
    Py_DECREF(body);
    return blob;
}

/* The canonical line of ``(seq, rid, *d[:16])`` - with ``blob`` for ``personal`` - at the end
 * of ``b``. */
static int
put_line(Buf *b, long long seq, PyObject *rid, PyObject *d, PyObject *blob)
{
    long long ts;
    if (buf_reserve(b, 64) < 0)
        return -1;
    b->p[b->len++] = '[';
    if (put_int(b, seq) < 0)
        return -1;
    b->p[b->len++] = ',';
    if (put_str(b, rid, "id") < 0 || as_int(PyTuple_GET_ITEM(d, 0), "ts", &ts) < 0
        || buf_reserve(b, 1) < 0)
        return -1;
    b->p[b->len++] = ',';
    if (put_int(b, ts) < 0)
        return -1;
    for (int k = 1; k < N_DRAFT; k++) {
        if (buf_reserve(b, 1) < 0)
            return -1;
        b->p[b->len++] = ',';
        if (k != 7 || blob == Py_None) {
            if (put_str(b, k == 7 ? Py_None : PyTuple_GET_ITEM(d, k), DRAFT_NAMES[k]) < 0)
                return -1;
            continue;
        }
        Py_buffer view;
        if (PyObject_GetBuffer(blob, &view, PyBUF_SIMPLE) < 0)
            return -1;
        int rc = put_hex(b, view.buf, view.len);
        PyBuffer_Release(&view);
        if (rc < 0)
            return -1;
    }
    if (buf_reserve(b, 1) < 0)
        return -1;
    b->p[b->len++] = ']';
    return 0;
}

/* ``append(drafts, ids, seq, nonces, ad, lines, emit)``
 *
 * For each draft (a tuple of ``chain._DRAFT_FIELDS``, plus the AES-GCM object and the key id's
 * bytes when ``nonces`` is not None) of the iterable ``drafts``: seal the personal data (with
 * the next 12 bytes of ``nonces``; without nonces ``personal`` is taken as sealed already),
 * make the canonical line of ``(seq, id, *columns)``, and hand the database row - the 18
 * columns of ``chain.FIELDS`` - to ``emit`` (a list is appended to, anything else called).
 * The lines go to ``lines`` as one bytes object, joined by newlines (``hash_chunk`` hashes
 * them). Returns the next position. */
static PyObject *
native_append(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "append() takes 7 arguments");
        return NULL;
    }
    PyObject *drafts = args[0], *ids = args[1], *nonces = args[3], *ad = args[4];
    PyObject *lines = args[5], *emit = args[6];
    long long seq;
    if (as_int(args[2], "seq", &seq) < 0)
        return NULL;
    if (!PyList_Check(ids) || !PyList_Check(lines) || !PyBytes_Check(ad)
        || (nonces != Py_None && !PyBytes_Check(nonces))) {
        PyErr_SetString(PyExc_TypeError, "append(): bad argument types");
        return NULL;
    }
    int keyed = nonces != Py_None;
    int to_list = PyList_CheckExact(emit);
    Buf b = {NULL, 0, 0};
    PyObject *d = NULL, *blob = NULL;
    long long i = 0;
    int failed = 1;
    PyObject *it = PyObject_GetIter(drafts);
    if (it == NULL)
        return NULL;
    while ((d = PyIter_Next(it)) != NULL) {
        if (!PyTuple_Check(d) || PyTuple_GET_SIZE(d) < N_DRAFT + (keyed ? 2 : 0)) {
            PyErr_Format(PyExc_TypeError, "draft %lld: a tuple of %d items expected", i,
                         N_DRAFT + (keyed ? 2 : 0));
            goto done;
        }
        if (i >= PyList_GET_SIZE(ids)) {
            PyErr_SetString(PyExc_ValueError, "more drafts than ids");
            goto done;
        }
        PyObject *rid = PyList_GET_ITEM(ids, i);
        PyObject *plain = PyTuple_GET_ITEM(d, 7);
        if (plain == Py_None) {
            blob = Py_NewRef(Py_None);
        }
        else if (keyed) {
            if (PyBytes_GET_SIZE(nonces) < 12 * (i + 1)) {
                PyErr_SetString(PyExc_ValueError, "not enough nonces");
                goto done;
            }
            blob = seal(d, plain, PyBytes_AS_STRING(nonces) + 12 * i, ad);
            if (blob == NULL)
                goto done;
        }
        else {
            blob = Py_NewRef(plain);
        }
        if (i > 0) {
            if (buf_reserve(&b, 1) < 0)
                goto done;
            b.p[b.len++] = '\n';
        }
        if (put_line(&b, seq, rid, d, blob) < 0)
            goto done;
        /* The row: seq, id, the draft's first seven columns, the blob, the next eight. */
        PyObject *row = PyTuple_New(18);
        PyObject *seq_o = row ? PyLong_FromLongLong(seq) : NULL;
        if (seq_o == NULL) {
            Py_XDECREF(row);
            goto done;
        }
        PyTuple_SET_ITEM(row, 0, seq_o);
        PyTuple_SET_ITEM(row, 1, Py_NewRef(rid));
        for (int k = 0; k < 7; k++)
            PyTuple_SET_ITEM(row, 2 + k, Py_NewRef(PyTuple_GET_ITEM(d, k)));
        PyTuple_SET_ITEM(row, 9, blob);  /* the reference is the row's now */
        blob = NULL;
        for (int k = 8; k < N_DRAFT; k++)
            PyTuple_SET_ITEM(row, 2 + k, Py_NewRef(PyTuple_GET_ITEM(d, k)));
        int rc;
        if (to_list) {
            rc = PyList_Append(emit, row);
        }
        else {
            PyObject *r = PyObject_CallOneArg(emit, row);
            rc = r == NULL ? -1 : 0;
            Py_XDECREF(r);
        }
        Py_DECREF(row);
        if (rc < 0)
            goto done;
        Py_CLEAR(d);
        seq++;
        i++;
    }
    if (PyErr_Occurred())
        goto done;
    if (i > 0) {
        PyObject *chunk = PyBytes_FromStringAndSize(b.p, b.len);
        if (chunk == NULL || PyList_Append(lines, chunk) < 0) {
            Py_XDECREF(chunk);
            goto done;
        }
        Py_DECREF(chunk);
    }
    failed = 0;
done:
    Py_XDECREF(blob);
    Py_XDECREF(d);
    Py_DECREF(it);
    PyMem_Free(b.p);
    if (failed)
        return NULL;
    return PyLong_FromLongLong(seq);
}

/* ``hash_chunk(chunk, heights, nodes, size, watch, tiles)``: the lines of ``chunk`` (bytes,
 * record lines joined by newlines, as ``append`` writes them) appended as leaves to the
 * frontier (``heights``/``nodes``, updated in place) from position ``size`` on; completed
 * subtrees of a height in the bit mask ``watch`` go to the list ``tiles`` as
 * ``(height, index, hash)``. The hashing runs without the GIL. Returns the new size. */
static PyObject *
native_hash_chunk(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "hash_chunk() takes 6 arguments");
        return NULL;
    }
    PyObject *chunk = args[0], *heights = args[1], *nodes = args[2], *tiles = args[5];
    long long size;
    unsigned long long watch = PyLong_AsUnsignedLongLong(args[4]);
    if (as_int(args[3], "size", &size) < 0 || (watch == (unsigned long long)-1 && PyErr_Occurred()))
        return NULL;
    if (!PyBytes_CheckExact(chunk) || !PyList_Check(tiles)) {
        PyErr_SetString(PyExc_TypeError, "hash_chunk(): bad argument types");
        return NULL;
    }
    const char *p = PyBytes_AS_STRING(chunk);
    Py_ssize_t n = PyBytes_GET_SIZE(chunk), lines = n ? 1 : 0;
    for (const char *q = p; (q = memchr(q, '\n', (size_t)(p + n - q))) != NULL; q++)
        lines++;
    Py_ssize_t room = 0;
    for (int h = 1; h < 64; h++)
        if ((watch >> h) & 1)
            room += (lines >> h) + 1;
    Tile *out = PyMem_Malloc(sizeof(Tile) * (size_t)(room ? room : 1));
    if (out == NULL)
        return PyErr_NoMemory();
    Tree t;
    if (tree_open(&t, heights, nodes) < 0) {
        PyMem_Free(out);
        return NULL;
    }
    Py_ssize_t ntiles = 0;
    int bad = 0;
    long long pos = size;
    Py_BEGIN_ALLOW_THREADS
    const char *line = p, *endp = p + n;
    while (lines > 0 && !bad) {
        const char *nl = memchr(line, '\n', (size_t)(endp - line));
        const char *stop = nl ? nl : endp;
        bad = tree_append(&t, line, stop - line, pos, watch, out, &ntiles) < 0;
        pos++;
        if (nl == NULL)
            break;
        line = nl + 1;
    }
    Py_END_ALLOW_THREADS
    if (bad)
        PyErr_SetString(PyExc_RuntimeError, "SHA-256 failed or the tree is too large");
    for (Py_ssize_t k = 0; k < ntiles && !bad; k++) {
        PyObject *tile = Py_BuildValue("(iLy#)", out[k].height, out[k].index,
                                       (const char *)out[k].hash, (Py_ssize_t)32);
        bad = tile == NULL || PyList_Append(tiles, tile) < 0;
        Py_XDECREF(tile);
    }
    PyMem_Free(out);
    return tree_finish(&t, heights, nodes, bad, pos);
}

/* ``walk(lines, heights, nodes, seq, wanted, at)``: the leaves of ``lines`` (bytes, one record
 * each, from position ``seq`` on) appended to the frontier (updated in place); after each
 * position in the set ``wanted`` the frontier's nodes are stored in ``at[position]``. Returns
 * the next position. */
static PyObject *
native_walk(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "walk() takes 6 arguments");
        return NULL;
    }
    PyObject *lines = args[0], *heights = args[1], *nodes = args[2];
    PyObject *wanted = args[4], *at = args[5];
    long long seq;
    if (as_int(args[3], "seq", &seq) < 0)
        return NULL;
    if (!PyList_Check(lines) || !PyAnySet_Check(wanted) || !PyDict_Check(at)) {
        PyErr_SetString(PyExc_TypeError, "walk(): bad argument types");
        return NULL;
    }
    Tree t;
    if (tree_open(&t, heights, nodes) < 0)
        return NULL;
    int failed = 1;
    int any_wanted = PySet_GET_SIZE(wanted) > 0;
    Py_ssize_t n = PyList_GET_SIZE(lines);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *line = PyList_GET_ITEM(lines, i);
        if (!PyBytes_Check(line)) {
            PyErr_SetString(PyExc_TypeError, "walk(): lines must be bytes");
            goto done;
        }
        if (tree_append(&t, PyBytes_AS_STRING(line), PyBytes_GET_SIZE(line), seq, 0, NULL,
                        NULL) < 0) {
            PyErr_SetString(PyExc_RuntimeError, "SHA-256 failed or the tree is too large");
            goto done;
        }
        seq++;
        if (any_wanted) {
            PyObject *pos = PyLong_FromLongLong(seq);
            if (pos == NULL)
                goto done;
            int hit = PySet_Contains(wanted, pos);
            if (hit > 0) {
                PyObject *snap = PyList_New(t.n);
                for (int k = 0; snap != NULL && k < t.n; k++) {
                    PyObject *node = PyBytes_FromStringAndSize((const char *)t.nodes[k], 32);
                    if (node == NULL)
                        Py_CLEAR(snap);
                    else
                        PyList_SET_ITEM(snap, k, node);
                }
                hit = snap == NULL ? -1 : PyDict_SetItem(at, pos, snap);
                Py_XDECREF(snap);
            }
            Py_DECREF(pos);
            if (hit < 0)
                goto done;
        }
    }
    failed = 0;
done:
    return tree_finish(&t, heights, nodes, failed, seq);
}

/* A JSON text SQLite wrote that is also canonical as it is: ASCII, no ``\u`` escape (SQLite
 * and Python may write those differently), no DEL. */
static inline int
plain_json(PyObject *s)
{
    if (!PyUnicode_Check(s) || !PyUnicode_IS_ASCII(s))
        return 0;
    const unsigned char *a = PyUnicode_1BYTE_DATA(s);
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (a[i] == 0x7f || (a[i] == '\\' && i + 1 < n && a[i + 1] == 'u'))
            return 0;
    }
    return n >= 2;
}

/* ``joined(rows)``: the canonical lines of SQLite rows ``(head, personal, tail)`` - ``head``
 * the JSON array of the columns before ``personal``, ``tail`` of those after (as
 * ``verify_fast._joined`` puts them together) - as a list of bytes; None when a row is not
 * plain (then the caller re-encodes that chunk in Python). */
static PyObject *
native_joined(PyObject *self, PyObject *rows)
{
    if (!PyList_Check(rows)) {
        PyErr_SetString(PyExc_TypeError, "joined(): a list of rows expected");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(rows);
    PyObject *out = PyList_New(n);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != 3)
            goto not_plain;
        PyObject *h = PyTuple_GET_ITEM(row, 0), *p = PyTuple_GET_ITEM(row, 1);
        PyObject *t = PyTuple_GET_ITEM(row, 2);
        if (!plain_json(h) || !plain_json(t) || (p != Py_None && !PyBytes_Check(p)))
            goto not_plain;
        const char *hs = (const char *)PyUnicode_1BYTE_DATA(h);
        const char *ts = (const char *)PyUnicode_1BYTE_DATA(t);
        Py_ssize_t hl = PyUnicode_GET_LENGTH(h), tl = PyUnicode_GET_LENGTH(t);
        if (hs[hl - 1] != ']' || ts[0] != '[')
            goto not_plain;
        Py_ssize_t pl = p == Py_None ? 0 : PyBytes_GET_SIZE(p);
        /* head without "]", ",", the personal field, ",", tail without "[" */
        Py_ssize_t size = (hl - 1) + 1 + (p == Py_None ? 4 : 2 * pl + 2) + 1 + (tl - 1);
        PyObject *line = PyBytes_FromStringAndSize(NULL, size);
        if (line == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        char *o = PyBytes_AS_STRING(line);
        memcpy(o, hs, (size_t)(hl - 1));
        o += hl - 1;
        *o++ = ',';
        if (p == Py_None) {
            memcpy(o, "null", 4);
            o += 4;
        } else {
            o = hex_string(o, (const unsigned char *)PyBytes_AS_STRING(p), pl);
        }
        *o++ = ',';
        memcpy(o, ts + 1, (size_t)(tl - 1));
        PyList_SET_ITEM(out, i, line);
    }
    return out;
not_plain:
    Py_DECREF(out);
    Py_RETURN_NONE;
}

/* ``lines(rows)``: the canonical line of each row (a sequence of column values in
 * ``chain.FIELDS`` order, as ``chain.canonical`` takes it: int, str, None, or bytes written as
 * their hex digits) as a list of bytes. A value of another type is a TypeError. */
static PyObject *
native_lines(PyObject *self, PyObject *rows)
{
    if (!PyList_Check(rows)) {
        PyErr_SetString(PyExc_TypeError, "lines(): a list of rows expected");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(rows);
    PyObject *out = PyList_New(n);
    if (out == NULL)
        return NULL;
    Buf b = {NULL, 0, 0};
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = PySequence_Fast(PyList_GET_ITEM(rows, i), "lines(): a row is a sequence");
        if (row == NULL)
            goto fail;
        Py_ssize_t m = PySequence_Fast_GET_SIZE(row);
        PyObject **items = PySequence_Fast_ITEMS(row);
        b.len = 0;
        int bad = buf_reserve(&b, 2) < 0;
        if (!bad)
            b.p[b.len++] = '[';
        for (Py_ssize_t k = 0; k < m && !bad; k++) {
            PyObject *v = items[k];
            if (k > 0)
                b.p[b.len++] = ',';  /* room: every value below reserves one byte more */
            if (PyLong_CheckExact(v)) {
                long long x = PyLong_AsLongLong(v);
                bad = (x == -1 && PyErr_Occurred()) || put_int(&b, x) < 0;
            }
            else if (PyBytes_Check(v)) {
                bad = put_hex(&b, (const unsigned char *)PyBytes_AS_STRING(v),
                              PyBytes_GET_SIZE(v)) < 0;
            }
            else {
                bad = put_str(&b, v, "column") < 0;
            }
            bad = bad || buf_reserve(&b, 2) < 0;
        }
        Py_DECREF(row);
        if (bad)
            goto fail;
        b.p[b.len++] = ']';
        PyObject *line = PyBytes_FromStringAndSize(b.p, b.len);
        if (line == NULL)
            goto fail;
        PyList_SET_ITEM(out, i, line);
    }
    PyMem_Free(b.p);
    return out;
fail:
    PyMem_Free(b.p);
    Py_DECREF(out);
    return NULL;
}

/* A UTF-8 text as a JSON string (as ``put_str`` writes the str it decodes to). */
static int
put_utf8(Buf *b, const unsigned char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    while (i < n && s[i] >= ' ' && s[i] <= '~' && s[i] != '"' && s[i] != '\\')
        i++;
    if (i == n) {
        if (buf_reserve(b, n + 2) < 0)
            return -1;
        b->p[b->len++] = '"';
        put_raw(b, (const char *)s, n);
        b->p[b->len++] = '"';
        return 0;
    }
    PyObject *text = PyUnicode_DecodeUTF8((const char *)s, n, "strict");
    if (text == NULL)
        return -1;
    int rc = put_str(b, text, "column");
    Py_DECREF(text);
    return rc;
}

static inline long long
be_int(const unsigned char *p, int bytes)
{
    unsigned long long v = 0;
    for (int i = 0; i < bytes; i++)
        v = (v << 8) | p[i];
    if (bytes < 8 && (v >> (8 * bytes - 1)) & 1)
        v |= ~0ULL << (8 * bytes);  /* sign-extend */
    return (long long)v;
}

/* ``copy_lines(data, start, types)``: the canonical lines of the rows of a PostgreSQL binary
 * ``COPY ... TO STDOUT`` in ``data`` from offset ``start`` (after the file header): ``types``
 * says per column ``i`` (int8), ``b`` (bytea, written as hex) or ``t`` (text, UTF-8). Returns
 * ``(lines, end, done)``: the lines of the complete rows, the offset after the last of them,
 * and whether the end marker was read. A row of another shape is a ValueError. */
static PyObject *
native_copy_lines(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyBytes_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "copy_lines(data, start, types: bytes)");
        return NULL;
    }
    long long start;
    if (as_int(args[1], "start", &start) < 0)
        return NULL;
    const char *types = PyBytes_AS_STRING(args[2]);
    Py_ssize_t ntypes = PyBytes_GET_SIZE(args[2]);
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *p = view.buf;
    Py_ssize_t n = view.len, pos = (Py_ssize_t)start;
    PyObject *out = PyList_New(0);
    Buf b = {NULL, 0, 0};
    int done = 0;
    if (out == NULL || start < 0 || start > n) {
        if (out != NULL)
            PyErr_SetString(PyExc_ValueError, "copy_lines(): start out of range");
        goto fail;
    }
    while (pos + 2 <= n) {
        long long count = be_int(p + pos, 2);
        if (count == -1) {
            done = 1;
            pos += 2;
            break;
        }
        if (count != ntypes) {
            PyErr_Format(PyExc_ValueError, "a row of %lld columns, %zd expected", count, ntypes);
            goto fail;
        }
        /* The whole row must be here; else it waits for the next data. */
        Py_ssize_t q = pos + 2;
        int complete = 1;
        for (Py_ssize_t k = 0; k < ntypes; k++) {
            if (q + 4 > n) {
                complete = 0;
                break;
            }
            long long len = be_int(p + q, 4);
            q += 4;
            if (len < -1) {
                PyErr_SetString(PyExc_ValueError, "a field of negative length");
                goto fail;
            }
            if (len > 0) {
                if (q + len > n) {
                    complete = 0;
                    break;
                }
                q += len;
            }
        }
        if (!complete)
            break;
        b.len = 0;
        if (buf_reserve(&b, 2) < 0)
            goto fail;
        b.p[b.len++] = '[';
        q = pos + 2;
        for (Py_ssize_t k = 0; k < ntypes; k++) {
            long long len = be_int(p + q, 4);
            q += 4;
            if (k > 0)
                b.p[b.len++] = ',';
            if (len == -1) {
                if (buf_reserve(&b, 4) < 0)
                    goto fail;
                put_raw(&b, "null", 4);
            }
            else if (types[k] == 'i') {
                if (len != 8) {
                    PyErr_SetString(PyExc_ValueError, "an int8 field not of 8 bytes");
                    goto fail;
                }
                if (put_int(&b, be_int(p + q, 8)) < 0)
                    goto fail;
            }
            else if (types[k] == 'b') {
                if (put_hex(&b, p + q, (Py_ssize_t)len) < 0)
                    goto fail;
            }
            else if (types[k] == 't') {
                if (put_utf8(&b, p + q, (Py_ssize_t)len) < 0)
                    goto fail;
            }
            else {
                PyErr_SetString(PyExc_ValueError, "copy_lines(): types are i, b or t");
                goto fail;
            }
            if (len > 0)
                q += len;
            if (buf_reserve(&b, 2) < 0)  /* room for the next "," or the closing "]" */
                goto fail;
        }
        b.p[b.len++] = ']';
        PyObject *line = PyBytes_FromStringAndSize(b.p, b.len);
        if (line == NULL || PyList_Append(out, line) < 0) {
            Py_XDECREF(line);
            goto fail;
        }
        Py_DECREF(line);
        pos = q;
    }
    PyMem_Free(b.p);
    PyBuffer_Release(&view);
    return Py_BuildValue("(NnN)", out, pos, PyBool_FromLong(done));
fail:
    PyMem_Free(b.p);
    PyBuffer_Release(&view);
    Py_XDECREF(out);
    return NULL;
}

/* -- the drafts of an ingest batch ----------------------------------------------------------- */

/* Days from 1970-01-01 to a proleptic Gregorian date (the civil calendar, 400-year eras). */
static long long
days_from_civil(long long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

/* Microseconds since the epoch of a datetime in UTC (``datetime.UTC`` as its tzinfo); any
 * other value goes to ``fallback`` (``chain.datetime_to_us``). */
static PyObject *
to_us(PyObject *t, PyObject *fallback)
{
    if (PyDateTime_CheckExact(t) && PyDateTime_DATE_GET_TZINFO(t) == PyDateTime_TimeZone_UTC) {
        long long days = days_from_civil(PyDateTime_GET_YEAR(t), PyDateTime_GET_MONTH(t),
                                         PyDateTime_GET_DAY(t));
        long long secs = days * 86400 + PyDateTime_DATE_GET_HOUR(t) * 3600
                         + PyDateTime_DATE_GET_MINUTE(t) * 60 + PyDateTime_DATE_GET_SECOND(t);
        return PyLong_FromLongLong(secs * 1000000 + PyDateTime_DATE_GET_MICROSECOND(t));
    }
    return PyObject_CallOneArg(fallback, t);
}

/* A JSON value of a details object: 1 written, 0 not a simple value (the caller falls back). */
static int
put_simple(Buf *b, PyObject *v)
{
    if (v == Py_None || PyUnicode_CheckExact(v))
        return put_str(b, v, "details") < 0 ? -1 : 1;
    if (v == Py_True || v == Py_False) {
        if (buf_reserve(b, 5) < 0)
            return -1;
        if (v == Py_True)
            put_raw(b, "true", 4);
        else
            put_raw(b, "false", 5);
        return 1;
    }
    if (PyLong_CheckExact(v) || (PyFloat_CheckExact(v) && isfinite(PyFloat_AS_DOUBLE(v)))) {
        PyObject *r = PyObject_Repr(v);  /* what json writes for int and finite float */
        if (r == NULL)
            return -1;
        Py_ssize_t n;
        const char *u = PyUnicode_AsUTF8AndSize(r, &n);
        int rc = u == NULL || buf_reserve(b, n) < 0 ? -1 : 1;
        if (rc > 0)
            put_raw(b, u, n);
        Py_DECREF(r);
        return rc;
    }
    return 0;
}

/* ``details`` as ``chain.canonical_details`` writes it (keys sorted, compact, ASCII) for a dict
 * of str keys and simple values; anything else goes to ``fallback``. */
static PyObject *
details_json(PyObject *details, PyObject *fallback)
{
    if (details == Py_None)
        return Py_NewRef(Py_None);
    if (!PyDict_CheckExact(details) || PyDict_GET_SIZE(details) > 64)
        return PyObject_CallOneArg(fallback, details);
    PyObject *keys = PyDict_Keys(details);
    if (keys == NULL)
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(keys);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyUnicode_CheckExact(PyList_GET_ITEM(keys, i))) {
            Py_DECREF(keys);
            return PyObject_CallOneArg(fallback, details);
        }
    }
    if (PyList_Sort(keys) < 0) {
        Py_DECREF(keys);
        return NULL;
    }
    Buf b = {NULL, 0, 0};
    int rc = buf_reserve(&b, 2) < 0 ? -1 : 1;
    if (rc > 0)
        b.p[b.len++] = '{';
    for (Py_ssize_t i = 0; i < n && rc > 0; i++) {
        PyObject *k = PyList_GET_ITEM(keys, i);
        PyObject *v = PyDict_GetItemWithError(details, k);
        if (v == NULL) {
            rc = PyErr_Occurred() ? -1 : 0;
            break;
        }
        if (buf_reserve(&b, 2) < 0) {
            rc = -1;
            break;
        }
        if (i)
            b.p[b.len++] = ',';
        if (put_str(&b, k, "details") < 0 || buf_reserve(&b, 1) < 0) {
            rc = -1;
            break;
        }
        b.p[b.len++] = ':';
        rc = put_simple(&b, v);
    }
    Py_DECREF(keys);
    PyObject *out = NULL;
    if (rc > 0 && buf_reserve(&b, 1) == 0) {
        b.p[b.len++] = '}';
        out = PyUnicode_DecodeASCII(b.p, b.len, "strict");
    }
    else if (rc == 0) {
        out = PyObject_CallOneArg(fallback, details);
    }
    PyMem_Free(b.p);
    return out;
}

static PyObject *s_ip, *s_user_agent, *s_actor_name, *s_actor, *s_time, *s_action, *s_resource,
    *s_outcome, *s_request_id, *s_id, *s_details, *s_ingest, *s_a;

/* ``drafts(events, org_id, token_id, by_subject, anon, payloads, payload, ips, indexes, to_us,
 * details)``: the drafts of ``ingest._drafts`` as a list - the same tuples, made here.
 * ``payload``, ``indexes``, ``to_us`` and ``details`` are the Python functions used for what
 * the caches do not hold and for values off the fast paths. */
static PyObject *
native_drafts(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 11) {
        PyErr_SetString(PyExc_TypeError, "drafts() takes 11 arguments");
        return NULL;
    }
    PyObject *events = args[0], *org = args[1], *token = args[2], *by_subject = args[3];
    PyObject *anon = args[4], *payloads = args[5], *payload_fn = args[6], *ips = args[7];
    PyObject *indexes_fn = args[8], *to_us_fn = args[9], *details_fn = args[10];
    if (!PyList_Check(events) || !PyDict_Check(by_subject) || !PyDict_Check(payloads)
        || !PyDict_Check(ips)) {
        PyErr_SetString(PyExc_TypeError, "drafts(): bad argument types");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(events);
    PyObject *out = PyList_New(n);
    if (out == NULL)
        return NULL;
    PyObject *names[10] = {s_ip, s_user_agent, s_actor_name, s_actor, s_time, s_action,
                           s_resource, s_outcome, s_request_id, s_id};
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *ev = PyList_GET_ITEM(events, i);
        PyObject *a[10] = {NULL};
        PyObject *draft = NULL, *plain = NULL, *key = NULL, *idx = NULL, *ts = NULL;
        PyObject *det_in = NULL, *det = NULL;
        int ok = 0;
        for (int k = 0; k < 10; k++) {
            a[k] = PyObject_GetAttr(ev, names[k]);
            if (a[k] == NULL)
                goto next;
        }
        PyObject *ip = a[0], *ua = a[1], *name = a[2], *actor = a[3];
        int t_ip = PyObject_IsTrue(ip), t_ua = PyObject_IsTrue(ua), t_name = PyObject_IsTrue(name);
        if (t_ip < 0 || t_ua < 0 || t_name < 0)
            goto next;
        if (t_ip || t_ua || t_name) {
            PyObject *pk = PyTuple_Pack(3, ip, ua, name);
            if (pk == NULL)
                goto next;
            plain = PyDict_GetItemWithError(payloads, pk);
            Py_DECREF(pk);
            int truthy = plain != NULL ? PyObject_IsTrue(plain) : 0;
            if (truthy < 0 || (plain == NULL && PyErr_Occurred()))
                goto next;
            if (truthy)
                Py_INCREF(plain);
            else
                plain = PyObject_CallFunctionObjArgs(payload_fn, ip, ua, name, NULL);
            if (plain == NULL)
                goto next;
            int t_actor = PyObject_IsTrue(actor);
            if (t_actor < 0)
                goto next;
            PyObject *subject = t_actor ? PyTuple_Pack(3, s_a, org, actor) : Py_NewRef(anon);
            if (subject == NULL)
                goto next;
            key = PyDict_GetItemWithError(by_subject, subject);
            if (key == NULL) {
                if (!PyErr_Occurred())
                    PyErr_SetObject(PyExc_KeyError, subject);
                Py_DECREF(subject);
                goto next;
            }
            Py_DECREF(subject);
            if (!PyTuple_Check(key) || PyTuple_GET_SIZE(key) != 3) {
                PyErr_SetString(PyExc_TypeError, "a key: (key id, AES-GCM, key id bytes)");
                key = NULL;
                goto next;
            }
            Py_INCREF(key);
            if (t_ip) {
                idx = PyDict_GetItemWithError(ips, ip);
                int t_idx = idx != NULL ? PyObject_IsTrue(idx) : 0;
                if (t_idx < 0 || (idx == NULL && PyErr_Occurred())) {
                    idx = NULL;
                    goto next;
                }
                if (t_idx)
                    Py_INCREF(idx);
                else
                    idx = PyObject_CallOneArg(indexes_fn, ip);
                if (idx == NULL)
                    goto next;
                if (!PyTuple_Check(idx) || PyTuple_GET_SIZE(idx) != 2) {
                    PyErr_SetString(PyExc_TypeError, "address indexes: a pair expected");
                    goto next;
                }
            }
        }
        ts = to_us(a[4], to_us_fn);
        if (ts == NULL)
            goto next;
        det_in = PyObject_GetAttr(ev, s_details);
        if (det_in == NULL)
            goto next;
        det = details_json(det_in, details_fn);
        if (det == NULL)
            goto next;
        draft = PyTuple_New(18);
        if (draft == NULL)
            goto next;
        PyObject *items[18] = {
            ts, s_ingest, org, Py_None, token, actor,
            key ? PyTuple_GET_ITEM(key, 0) : Py_None, plain ? plain : Py_None,
            idx ? PyTuple_GET_ITEM(idx, 0) : Py_None, idx ? PyTuple_GET_ITEM(idx, 1) : Py_None,
            a[5], a[6], a[7], a[8], a[9], det,
            key ? PyTuple_GET_ITEM(key, 1) : Py_None, key ? PyTuple_GET_ITEM(key, 2) : Py_None,
        };
        for (int k = 0; k < 18; k++)
            PyTuple_SET_ITEM(draft, k, Py_NewRef(items[k]));
        PyList_SET_ITEM(out, i, draft);
        ok = 1;
    next:
        for (int k = 0; k < 10; k++)
            Py_XDECREF(a[k]);
        Py_XDECREF(plain);
        Py_XDECREF(key);
        Py_XDECREF(idx);
        Py_XDECREF(ts);
        Py_XDECREF(det_in);
        Py_XDECREF(det);
        if (!ok) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

/* ``scan(events, org_id, anon, received)``: one pass over an ingest batch, for the checks and
 * the keys before the append: ``(distinct, earliest, subjects)`` - whether the events' ids are
 * all different, the earliest ``time`` (None for no events) and the key subject of every event
 * with personal data (``("a", org_id, actor)``, or ``anon`` without an actor), each mapped to
 * ``received`` - what ``ingest._scan`` makes in Python. */
static PyObject *
native_scan(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "scan(events, org_id, anon, received)");
        return NULL;
    }
    PyObject *events = args[0], *org = args[1], *anon = args[2], *received = args[3];
    Py_ssize_t n = PyList_GET_SIZE(events);
    PyObject *ids = PySet_New(NULL), *subjects = PyDict_New(), *earliest = NULL;
    PyObject *names[3] = {s_ip, s_user_agent, s_actor_name};
    if (ids == NULL || subjects == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *ev = PyList_GET_ITEM(events, i);
        PyObject *id = PyObject_GetAttr(ev, s_id);
        if (id == NULL)
            goto fail;
        int rc = PySet_Add(ids, id);
        Py_DECREF(id);
        if (rc < 0)
            goto fail;
        PyObject *t = PyObject_GetAttr(ev, s_time);
        if (t == NULL)
            goto fail;
        int earlier = earliest == NULL ? 1 : PyObject_RichCompareBool(t, earliest, Py_LT);
        if (earlier < 0) {
            Py_DECREF(t);
            goto fail;
        }
        if (earlier)
            Py_XSETREF(earliest, t);
        else
            Py_DECREF(t);
        int personal = 0;
        for (int k = 0; k < 3 && !personal; k++) {
            PyObject *v = PyObject_GetAttr(ev, names[k]);
            if (v == NULL)
                goto fail;
            personal = PyObject_IsTrue(v);
            Py_DECREF(v);
            if (personal < 0)
                goto fail;
        }
        if (!personal)
            continue;
        PyObject *actor = PyObject_GetAttr(ev, s_actor);
        if (actor == NULL)
            goto fail;
        int t_actor = PyObject_IsTrue(actor);
        PyObject *subject = t_actor > 0 ? PyTuple_Pack(3, s_a, org, actor)
            : t_actor == 0 ? Py_NewRef(anon) : NULL;
        Py_DECREF(actor);
        if (subject == NULL)
            goto fail;
        rc = PyDict_SetItem(subjects, subject, received);
        Py_DECREF(subject);
        if (rc < 0)
            goto fail;
    }
    PyObject *out = Py_BuildValue("(OOO)", PySet_GET_SIZE(ids) == n ? Py_True : Py_False,
                                  earliest ? earliest : Py_None, subjects);
    Py_DECREF(ids);
    Py_DECREF(subjects);
    Py_XDECREF(earliest);
    return out;
fail:
    Py_XDECREF(ids);
    Py_XDECREF(subjects);
    Py_XDECREF(earliest);
    return NULL;
}

/* ``ids(prefix, rnd)``: ``len(rnd) // 20`` record ids, as ``chain.fast_ids`` makes them from
 * the time prefix and the hex digits ``rnd`` of the random bytes. */
static PyObject *
native_ids(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    static const char VARIANT[] = "89ab89ab89ab89ab";
    if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyUnicode_Check(args[1])
        || !PyUnicode_IS_ASCII(args[0]) || !PyUnicode_IS_ASCII(args[1])) {
        PyErr_SetString(PyExc_TypeError, "ids(prefix, hex digits)");
        return NULL;
    }
    Py_ssize_t pn = PyUnicode_GET_LENGTH(args[0]), rn = PyUnicode_GET_LENGTH(args[1]);
    const char *prefix = (const char *)PyUnicode_1BYTE_DATA(args[0]);
    const char *rnd = (const char *)PyUnicode_1BYTE_DATA(args[1]);
    Py_ssize_t n = rn / 20;
    PyObject *out = PyList_New(n);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *r = rnd + 20 * i;
        int v = r[3] >= 'a' ? r[3] - 'a' + 10 : r[3] - '0';
        if (v < 0 || v > 15) {
            Py_DECREF(out);
            PyErr_SetString(PyExc_ValueError, "ids(): hex digits expected");
            return NULL;
        }
        PyObject *id = PyUnicode_New(pn + 3 + 1 + 1 + 3 + 1 + 12, 127);
        if (id == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        char *o = (char *)PyUnicode_1BYTE_DATA(id);
        memcpy(o, prefix, (size_t)pn);
        o += pn;
        memcpy(o, r, 3);
        o += 3;
        *o++ = '-';
        *o++ = VARIANT[v];
        memcpy(o, r + 4, 3);
        o += 3;
        *o++ = '-';
        memcpy(o, r + 7, 12);
        PyList_SET_ITEM(out, i, id);
    }
    return out;
}

/* ``quote(s)``: the JSON string of ``s`` as ``json.encoder.encode_basestring_ascii`` writes it
 * (for tests). */
static PyObject *
native_quote(PyObject *self, PyObject *s)
{
    Buf b = {NULL, 0, 0};
    if (s == Py_None || put_str(&b, s, "s") < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "quote(): str expected");
        PyMem_Free(b.p);
        return NULL;
    }
    PyObject *out = PyUnicode_DecodeASCII(b.p, b.len, "strict");
    PyMem_Free(b.p);
    return out;
}

static PyMethodDef methods[] = {
    {"append", (PyCFunction)(void (*)(void))native_append, METH_FASTCALL,
     "Seal, line and emit a batch of drafts; returns the next position."},
    {"hash_chunk", (PyCFunction)(void (*)(void))native_hash_chunk, METH_FASTCALL,
     "Hash the lines of a chunk into a frontier, without the GIL; returns the new size."},
    {"walk", (PyCFunction)(void (*)(void))native_walk, METH_FASTCALL,
     "Hash record lines into a frontier; returns the next position."},
    {"joined", native_joined, METH_O,
     "The canonical lines of SQLite's (head, personal, tail) rows, or None."},
    {"lines", native_lines, METH_O,
     "The canonical lines of rows of column values (as chain.canonical makes them)."},
    {"copy_lines", (PyCFunction)(void (*)(void))native_copy_lines, METH_FASTCALL,
     "The canonical lines of the rows of a PostgreSQL binary COPY, and where they end."},
    {"drafts", (PyCFunction)(void (*)(void))native_drafts, METH_FASTCALL,
     "The drafts of an ingest batch (as ingest._drafts makes them)."},
    {"scan", (PyCFunction)(void (*)(void))native_scan, METH_FASTCALL,
     "The checks and key subjects of an ingest batch in one pass (as ingest._scan)."},
    {"ids", (PyCFunction)(void (*)(void))native_ids, METH_FASTCALL,
     "Record ids from a time prefix and random hex digits (as chain.fast_ids)."},
    {"quote", native_quote, METH_O, "A str as a JSON string (ASCII escapes)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "vern.audit._native",
    "The audit trail's per-record loops in C (optional; see vern.audit.native).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    s_encrypt = PyUnicode_InternFromString("encrypt");
    if (s_encrypt == NULL)
        return NULL;
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL)
        return NULL;
    struct { PyObject **slot; const char *text; } names[] = {
        {&s_ip, "ip"}, {&s_user_agent, "user_agent"}, {&s_actor_name, "actor_name"},
        {&s_actor, "actor"}, {&s_time, "time"}, {&s_action, "action"},
        {&s_resource, "resource"}, {&s_outcome, "outcome"}, {&s_request_id, "request_id"},
        {&s_id, "id"}, {&s_details, "details"}, {&s_ingest, "ingest"}, {&s_a, "a"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        *names[i].slot = PyUnicode_InternFromString(names[i].text);
        if (*names[i].slot == NULL)
            return NULL;
    }
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (sha256_md == NULL) {
        PyErr_SetString(PyExc_ImportError, "OpenSSL has no SHA-256");
        return NULL;
    }
    if (PyType_Ready(&GcmType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Gcm", (PyObject *)&GcmType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
