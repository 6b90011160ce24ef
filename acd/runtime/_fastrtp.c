/* acd.runtime._fastrtp: the bridged-RTP fast path of acd.runtime.rtpendpoint in C.
 *
 * Why: a bridged call relays 100 packets/s, and at a thousand calls the Python per-packet
 * path (recvfrom, header unpack, latch check, receive statistics, re-stamping, sendto) cost
 * 12-18 us per packet, most of it interpreter and socket-object overhead around two system
 * calls that take about 2 us. This module serves ready sockets of one epoll object and, for
 * each datagram, does exactly what MediaEndpoint._on_rtp would do for the common packet: a
 * plain RTP header (version 2, no padding, extension or CSRCs), the negotiated audio payload
 * type, from the latched source, the current SSRC, in sequence. Its state stays in the
 * Python objects (it reads and writes their attributes), so Python code sees no difference.
 *
 * Anything else is handed to Python unchanged, before any state was touched: the datagram
 * goes to MediaEndpoint._on_rtp as bytes and an address tuple built the way the socket
 * module builds them. Once state has been touched (the receive statistics), the remaining
 * steps that are not the common case call the same Python methods the Python path calls
 * (_audio_in, the peer's Outgoing.relay, _tap_out), so the outcome is the same.
 *
 * tests/unit/test_fastrtp.py feeds the same packet sequences through both paths and compares
 * every counter, the statistics and the bytes sent.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#ifndef __linux__
#error "acd.runtime._fastrtp needs Linux (epoll); the pure-Python path is used elsewhere"
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define MAX_DATAGRAM 2048 /* as acd.runtime.rtpendpoint.MAX_DATAGRAM */
#define MAX_DROPOUT 3000  /* as media.rtpstream */
#define MAX_EVENTS 4096

/* The attributes read and written, by name. Where an object's type is exactly the type seen
 * before and the attribute is a plain __slots__ member of it (and the type does not customise
 * attribute access), the slot is read and written directly: the generic lookup would cost
 * about as much as the rest of the packet's handling. Anything else takes the generic path,
 * which is also the path of every error (an unset slot raises AttributeError there). */
typedef struct {
    const char *text;
    PyObject *name;     /* interned */
    PyTypeObject *type; /* the type last looked at (a strong reference), or NULL */
    Py_ssize_t offset;  /* of the slot in `type`'s instances; 0: not a plain slot there */
} Attr;

static Attr A_src = {"_src", NULL, NULL, 0};
static Attr A_recv_pt = {"recv_pt", NULL, NULL, 0};
static Attr A_rx_ssrc = {"_rx_ssrc", NULL, NULL, 0};
static Attr A_rx = {"_rx", NULL, NULL, 0};
static Attr A_recv_ok = {"_recv_ok", NULL, NULL, 0};
static Attr A_taps = {"_taps", NULL, NULL, 0};
static Attr A_out_taps = {"taps", NULL, NULL, 0};
static Attr A_inband = {"_inband", NULL, NULL, 0};
static Attr A_peer = {"_peer", NULL, NULL, 0};
static Attr A_out = {"_out", NULL, NULL, 0};
static Attr A_to_peer = {"_to_peer", NULL, NULL, 0};
static Attr A_now = {"_now", NULL, NULL, 0};
static Attr A_last_rx = {"last_rx", NULL, NULL, 0};
static Attr A_packets_in = {"packets_in", NULL, NULL, 0};
static Attr A_batch = {"_batch", NULL, NULL, 0};
static Attr A_audio_in = {"_audio_in", NULL, NULL, 0};
static Attr A_on_rtp = {"_on_rtp", NULL, NULL, 0};
static Attr A_packet_failed = {"_packet_failed", NULL, NULL, 0};
static Attr A_send_ok = {"send_ok", NULL, NULL, 0};
static Attr A_busy = {"busy", NULL, NULL, 0};
static Attr A_relaying = {"_relaying", NULL, NULL, 0};
static Attr A_sender = {"sender", NULL, NULL, 0};
static Attr A_latch = {"latch", NULL, NULL, 0};
static Attr A_dest = {"dest", NULL, NULL, 0};
static Attr A_sock = {"_sock", NULL, NULL, 0};
static Attr A_pt = {"pt", NULL, NULL, 0};
static Attr A_last_sent = {"last_sent", NULL, NULL, 0};
static Attr A_packets_out = {"packets_out", NULL, NULL, 0};
static Attr A_send_errors = {"send_errors", NULL, NULL, 0};
static Attr A_tap_out = {"_tap_out", NULL, NULL, 0};
/* the recording's ChannelTap (acd.runtime.rtprecorder), its Recorder and ChannelAligner */
static Attr A_codec = {"codec", NULL, NULL, 0};
static Attr A_recorder = {"recorder", NULL, NULL, 0};
static Attr A_aligner = {"aligner", NULL, NULL, 0};
static Attr A_buf = {"buf", NULL, NULL, 0};
static Attr A_pos = {"pos", NULL, NULL, 0};
static Attr A_ch = {"ch", NULL, NULL, 0};
static Attr A_paused = {"paused", NULL, NULL, 0};
static Attr A_rec_now = {"_now", NULL, NULL, 0};
static Attr A_last_flush = {"_last_flush", NULL, NULL, 0};
static Attr A_flush = {"_flush", NULL, NULL, 0};
static Attr A_al_start = {"_start", NULL, NULL, 0};
static Attr A_al_rate = {"_rate", NULL, NULL, 0};
static Attr A_al_slack = {"_slack", NULL, NULL, 0};
static Attr A_flush_every = {"flush_every", NULL, NULL, 0};
static Attr A_relay = {"relay", NULL, NULL, 0};
static Attr A_their_ssrc = {"_their_ssrc", NULL, NULL, 0};
static Attr A_their_max = {"_their_max", NULL, NULL, 0};
static Attr A_marker = {"_marker", NULL, NULL, 0};
static Attr A_seq_off = {"_seq_off", NULL, NULL, 0};
static Attr A_ts_off = {"_ts_off", NULL, NULL, 0};
static Attr A_seq = {"_seq", NULL, NULL, 0};
static Attr A_ts = {"_ts", NULL, NULL, 0};
static Attr A_packets_sent = {"packets_sent", NULL, NULL, 0};
static Attr A_octets_sent = {"octets_sent", NULL, NULL, 0};
static Attr A_ssrc = {"ssrc", NULL, NULL, 0};
static Attr A_packets = {"packets", NULL, NULL, 0};
static Attr A_octets = {"octets", NULL, NULL, 0};
static Attr A_started = {"_started", NULL, NULL, 0};
static Attr A_max = {"_max", NULL, NULL, 0};
static Attr A_duplicates = {"duplicates", NULL, NULL, 0};
static Attr A_cycles = {"_cycles", NULL, NULL, 0};
static Attr A_seen = {"_seen", NULL, NULL, 0};
static Attr A_received = {"received", NULL, NULL, 0};
static Attr A_clock_rate = {"clock_rate", NULL, NULL, 0};
static Attr A_transit = {"_transit", NULL, NULL, 0};
static Attr A_jitter = {"jitter", NULL, NULL, 0};

static Attr *all_attrs[] = {
    &A_src,
    &A_recv_pt,
    &A_rx_ssrc,
    &A_rx,
    &A_recv_ok,
    &A_taps,
    &A_out_taps,
    &A_inband,
    &A_peer,
    &A_out,
    &A_to_peer,
    &A_now,
    &A_last_rx,
    &A_packets_in,
    &A_batch,
    &A_audio_in,
    &A_on_rtp,
    &A_packet_failed,
    &A_send_ok,
    &A_busy,
    &A_relaying,
    &A_sender,
    &A_latch,
    &A_dest,
    &A_sock,
    &A_pt,
    &A_last_sent,
    &A_packets_out,
    &A_send_errors,
    &A_tap_out,
    &A_codec,
    &A_recorder,
    &A_aligner,
    &A_buf,
    &A_pos,
    &A_ch,
    &A_paused,
    &A_rec_now,
    &A_last_flush,
    &A_flush,
    &A_al_start,
    &A_al_rate,
    &A_al_slack,
    &A_flush_every,
    &A_relay,
    &A_their_ssrc,
    &A_their_max,
    &A_marker,
    &A_seq_off,
    &A_ts_off,
    &A_seq,
    &A_ts,
    &A_packets_sent,
    &A_octets_sent,
    &A_ssrc,
    &A_packets,
    &A_octets,
    &A_started,
    &A_max,
    &A_duplicates,
    &A_cycles,
    &A_seen,
    &A_received,
    &A_clock_rate,
    &A_transit,
    &A_jitter,
};

/* the slot of `obj` holding attribute `a`, or NULL for the generic path */
static PyObject **slot_of(PyObject *obj, Attr *a) {
    PyTypeObject *tp = Py_TYPE(obj);
    if (tp != a->type) {
        Py_ssize_t offset = 0;
        if (tp->tp_getattro == PyObject_GenericGetAttr &&
            tp->tp_setattro == PyObject_GenericSetAttr) {
            PyObject *d = PyObject_GetAttr((PyObject *)tp, a->name);
            if (d == NULL) {
                PyErr_Clear();
            } else {
                if (Py_TYPE(d) == &PyMemberDescr_Type) {
                    PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
                    if (m->type == T_OBJECT_EX && !(m->flags & READONLY)) offset = m->offset;
                }
                Py_DECREF(d);
            }
        }
        Py_INCREF(tp);
        Py_XSETREF(a->type, tp);
        a->offset = offset;
    }
    if (a->offset == 0) return NULL;
    return (PyObject **)((char *)obj + a->offset);
}

/* getattr(obj, a): a new reference, or NULL with an exception set */
static PyObject *aget(PyObject *obj, Attr *a) {
    PyObject **slot = slot_of(obj, a);
    if (slot != NULL && *slot != NULL) {
        Py_INCREF(*slot);
        return *slot;
    }
    return PyObject_GetAttr(obj, a->name);
}

/* setattr(obj, a, v): 0, or -1 with an exception set */
static int aset(PyObject *obj, Attr *a, PyObject *v) {
    PyObject **slot = slot_of(obj, a);
    if (slot != NULL) {
        PyObject *old = *slot;
        Py_INCREF(v);
        *slot = v;
        Py_XDECREF(old);
        return 0;
    }
    return PyObject_SetAttr(obj, a->name, v);
}

/* set by configure(): the two transcoders MediaEndpoint._to_peer may hold, and their tables */
static PyObject *g_u2a_func, *g_a2u_func;
static unsigned char g_u2a[256], g_a2u[256];
static PyObject *g_window_mask; /* (1 << RtpReceiverStats.WINDOW) - 1 */
/* recording natively (optional in configure()): the ChannelTap type, G.711 -> 16-bit LE */
static PyObject *g_chtap_type;
static unsigned char g_ulaw_pcm[512], g_alaw_pcm[512];
static PyObject *g_one;
/* datagrams served: handled here, handed to _on_rtp, relayed here, relayed through Python */
static unsigned long long n_native, n_python, n_relayed, n_relay_python, n_captured;

/* -- small helpers: each returns -1 with an exception set on failure ----------------------- */

static int get_long(PyObject *obj, Attr *name, long *out) {
    PyObject *v = aget(obj, name);
    if (v == NULL) return -1;
    *out = PyLong_AsLong(v);
    Py_DECREF(v);
    if (*out == -1 && PyErr_Occurred()) return -1;
    return 0;
}

/* an attribute that may be None: 1 with *out set, 0 for None (or not an int) */
static int get_opt_long(PyObject *obj, Attr *name, long *out) {
    PyObject *v = aget(obj, name);
    if (v == NULL) return -1;
    if (!PyLong_Check(v)) {
        Py_DECREF(v);
        return 0;
    }
    *out = PyLong_AsLong(v);
    Py_DECREF(v);
    if (*out == -1 && PyErr_Occurred()) return -1;
    return 1;
}

static int set_long(PyObject *obj, Attr *name, long value) {
    PyObject *v = PyLong_FromLong(value);
    if (v == NULL) return -1;
    int r = aset(obj, name, v);
    Py_DECREF(v);
    return r;
}

static int add_long(PyObject *obj, Attr *name, long delta) {
    long v;
    if (get_long(obj, name, &v) < 0) return -1;
    return set_long(obj, name, v + delta);
}

static int get_truth(PyObject *obj, Attr *name) {
    PyObject *v = aget(obj, name);
    if (v == NULL) return -1;
    int r = PyObject_IsTrue(v);
    Py_DECREF(v);
    return r;
}

static int get_double(PyObject *obj, Attr *name, double *out) {
    PyObject *v = aget(obj, name);
    if (v == NULL) return -1;
    *out = PyFloat_AsDouble(v);
    Py_DECREF(v);
    if (*out == -1.0 && PyErr_Occurred()) return -1;
    return 0;
}

/* -- recording ------------------------------------------------------------------------------ */

#define MAX_TAPS 8

/* One ChannelTap.__call__(decode(codec, payload), "in"), with `pcm` the decoded payload:
 * ChannelAligner.feed into tap.buf / tap.pos[tap.ch] at the recorder's now, then the
 * recorder's _flush(now) when due. 0, or -1 with an exception set. */
static int capture_one(PyObject *tap, const unsigned char *pcm, Py_ssize_t samples) {
    int r = -1;
    PyObject *rec = NULL, *aligner = NULL, *buf = NULL, *pos = NULL, *now = NULL,
             *clock = NULL;
    long ch, rate, slack;
    double start, t, last, every;
    if ((rec = aget(tap, &A_recorder)) == NULL || (aligner = aget(tap, &A_aligner)) == NULL ||
        (buf = aget(tap, &A_buf)) == NULL || (pos = aget(tap, &A_pos)) == NULL)
        goto done;
    if (!PyByteArray_CheckExact(buf) || !PyList_CheckExact(pos)) {
        PyErr_SetString(PyExc_TypeError, "ChannelTap.buf / .pos are not a bytearray / list");
        goto done;
    }
    if (get_long(tap, &A_ch, &ch) < 0 || get_double(aligner, &A_al_start, &start) < 0 ||
        get_long(aligner, &A_al_rate, &rate) < 0 || get_long(aligner, &A_al_slack, &slack) < 0)
        goto done;
    if (ch < 0 || ch >= PyList_GET_SIZE(pos)) {
        PyErr_SetString(PyExc_IndexError, "ChannelTap.ch out of range");
        goto done;
    }
    int paused = get_truth(rec, &A_paused);
    if (paused < 0) goto done;
    if ((clock = aget(rec, &A_rec_now)) == NULL || (now = PyObject_CallNoArgs(clock)) == NULL)
        goto done;
    t = PyFloat_AsDouble(now);
    if (t == -1.0 && PyErr_Occurred()) goto done;
    long placed = PyLong_AsLong(PyList_GET_ITEM(pos, ch));
    if (placed == -1 && PyErr_Occurred()) goto done;
    /* ChannelAligner.feed: a frame arriving now started `samples` earlier; beyond the
     * slack it is placed exactly, after silence */
    long first = (long)((t - start) * (double)rate) - (long)samples;
    Py_ssize_t pad = 0;
    if (first - placed > slack && first - placed > 0) pad = first - placed;
    Py_ssize_t old = PyByteArray_GET_SIZE(buf);
    if (PyByteArray_Resize(buf, old + 2 * (pad + samples)) < 0) goto done;
    char *dst = PyByteArray_AS_STRING(buf) + old;
    memset(dst, 0, (size_t)(2 * pad));
    if (paused)
        memset(dst + 2 * pad, 0, (size_t)(2 * samples));
    else
        memcpy(dst + 2 * pad, pcm, (size_t)(2 * samples));
    PyObject *np = PyLong_FromLong(placed + (long)pad + (long)samples);
    if (np == NULL) goto done;
    if (PyList_SetItem(pos, ch, np) < 0) goto done; /* steals np */
    if (get_double(rec, &A_last_flush, &last) < 0) goto done;
    if (get_double(tap, &A_flush_every, &every) < 0) goto done;
    if (t - last >= every) {
        PyObject *res = PyObject_CallMethodOneArg(rec, A_flush.name, now);
        if (res == NULL) goto done;
        Py_DECREF(res);
    }
    r = 0;
done:
    Py_XDECREF(rec);
    Py_XDECREF(aligner);
    Py_XDECREF(buf);
    Py_XDECREF(pos);
    Py_XDECREF(clock);
    Py_XDECREF(now);
    return r;
}

/* MediaEndpoint._audio_in(payload) for the common recorded packet: no in-band DTMF
 * detector, a G.711 codec, and nothing but ChannelTaps (at most MAX_TAPS) among the taps.
 * 1 when done here, 0 when _audio_in must run instead, -1 with an exception set. As the
 * Python path, the taps are those of the moment the packet arrived (a _flush may remove
 * some), and a tap that fails stops the ones after it. */
static int capture(PyObject *ep, PyObject *taps, const unsigned char *payload, Py_ssize_t plen) {
    if (g_chtap_type == NULL || !PyList_CheckExact(taps)) return 0;
    Py_ssize_t n = PyList_GET_SIZE(taps);
    if (n < 1 || n > MAX_TAPS || plen > MAX_DATAGRAM) return 0;
    PyObject *inband = aget(ep, &A_inband);
    if (inband == NULL) return -1;
    int plain = inband == Py_None;
    Py_DECREF(inband);
    if (!plain) return 0;
    long codec;
    if (get_long(ep, &A_codec, &codec) < 0) return -1;
    const unsigned char *table = codec == 0 ? g_ulaw_pcm : codec == 8 ? g_alaw_pcm : NULL;
    if (table == NULL) return 0;
    PyObject *snapshot[MAX_TAPS];
    for (Py_ssize_t i = 0; i < n; i++)
        if ((PyObject *)Py_TYPE(PyList_GET_ITEM(taps, i)) != g_chtap_type) return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        snapshot[i] = PyList_GET_ITEM(taps, i);
        Py_INCREF(snapshot[i]);
    }
    unsigned char pcm[2 * MAX_DATAGRAM];
    for (Py_ssize_t i = 0; i < plen; i++) {
        pcm[2 * i] = table[2 * payload[i]];
        pcm[2 * i + 1] = table[2 * payload[i] + 1];
    }
    int r = 1;
    for (Py_ssize_t i = 0; i < n && r == 1; i++)
        if (capture_one(snapshot[i], pcm, plen) < 0) r = -1;
    for (Py_ssize_t i = 0; i < n; i++) Py_DECREF(snapshot[i]);
    if (r == 1) n_captured++;
    return r;
}

/* -- addresses -------------------------------------------------------------------------- */

/* The address tuple socket.recvfrom returns: (host, port) for IPv4, (host, port, flowinfo,
 * scope_id) for IPv6. */
static PyObject *make_addr(const struct sockaddr_storage *ss) {
    char host[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        if (inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host)) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("(si)", host, (int)ntohs(a->sin_port));
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        if (inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host)) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("(siII)", host, (int)ntohs(a->sin6_port),
                             (unsigned int)ntohl(a->sin6_flowinfo),
                             (unsigned int)a->sin6_scope_id);
    }
    Py_RETURN_NONE;
}

static int tuple_long_eq(PyObject *t, Py_ssize_t i, unsigned long want) {
    PyObject *v = PyTuple_GET_ITEM(t, i);
    if (!PyLong_Check(v)) return 0;
    unsigned long got = PyLong_AsUnsignedLong(v);
    if (got == (unsigned long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return got == want;
}

static int tuple_str_eq(PyObject *t, Py_ssize_t i, const char *want) {
    PyObject *v = PyTuple_GET_ITEM(t, i);
    if (!PyUnicode_Check(v)) return 0;
    const char *got = PyUnicode_AsUTF8(v);
    if (got == NULL) {
        PyErr_Clear();
        return 0;
    }
    return strcmp(got, want) == 0;
}

/* Would `make_addr(ss) == src` hold? (without building the tuple) */
static int addr_equals(const struct sockaddr_storage *ss, PyObject *src) {
    char host[INET6_ADDRSTRLEN];
    if (!PyTuple_Check(src)) return 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        if (PyTuple_GET_SIZE(src) != 2) return 0;
        if (!tuple_long_eq(src, 1, ntohs(a->sin_port))) return 0;
        if (inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host)) == NULL) return 0;
        return tuple_str_eq(src, 0, host);
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        if (PyTuple_GET_SIZE(src) != 4) return 0;
        if (!tuple_long_eq(src, 1, ntohs(a->sin6_port))) return 0;
        if (!tuple_long_eq(src, 2, ntohl(a->sin6_flowinfo))) return 0;
        if (!tuple_long_eq(src, 3, a->sin6_scope_id)) return 0;
        if (inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host)) == NULL) return 0;
        return tuple_str_eq(src, 0, host);
    }
    return 0;
}

/* The sockaddr socket.sendto would use for `dest`, for numeric addresses only (1); 0 when
 * Python must resolve it (a name, a scoped literal, an odd tuple). */
static int dest_sockaddr(PyObject *dest, struct sockaddr_storage *ss, socklen_t *len) {
    if (!PyTuple_Check(dest)) return 0;
    Py_ssize_t n = PyTuple_GET_SIZE(dest);
    if (n < 2 || n > 4) return 0;
    PyObject *h = PyTuple_GET_ITEM(dest, 0), *p = PyTuple_GET_ITEM(dest, 1);
    if (!PyUnicode_Check(h) || !PyLong_Check(p)) return 0;
    const char *host = PyUnicode_AsUTF8(h);
    long port = PyLong_AsLong(p);
    if (host == NULL || port < 0 || port > 65535) {
        PyErr_Clear();
        return 0;
    }
    memset(ss, 0, sizeof(*ss));
    if (n == 2) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        if (inet_pton(AF_INET, host, &a->sin_addr) == 1) {
            a->sin_family = AF_INET;
            a->sin_port = htons((unsigned short)port);
            *len = sizeof(*a);
            return 1;
        }
    }
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1) return 0;
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((unsigned short)port);
    if (n >= 3) {
        PyObject *f = PyTuple_GET_ITEM(dest, 2);
        if (!PyLong_Check(f)) return 0;
        unsigned long flow = PyLong_AsUnsignedLong(f);
        if (PyErr_Occurred() || flow > 0xFFFFF) {
            PyErr_Clear();
            return 0; /* Python raises OverflowError there: let it */
        }
        a6->sin6_flowinfo = htonl((uint32_t)flow);
    }
    if (n == 4) {
        PyObject *s = PyTuple_GET_ITEM(dest, 3);
        if (!PyLong_Check(s)) return 0;
        unsigned long scope = PyLong_AsUnsignedLong(s);
        if (PyErr_Occurred() || scope > 0xFFFFFFFFUL) {
            PyErr_Clear();
            return 0;
        }
        a6->sin6_scope_id = (uint32_t)scope;
    }
    *len = sizeof(*a6);
    return 1;
}

/* -- RtpReceiverStats.update, in-sequence packets and duplicates ------------------------- */

/* 1: this packet takes update()'s common branch (done here); 0: it does not (nothing
 * touched); -1: error. */
static int rx_check(PyObject *rx, unsigned seq, long *delta_out) {
    int started = get_truth(rx, &A_started);
    if (started <= 0) return started;
    long max;
    if (get_long(rx, &A_max, &max) < 0) return -1;
    long delta = ((long)seq - max) & 0xFFFF;
    if (delta != 0 && delta >= MAX_DROPOUT) return 0;
    *delta_out = delta;
    return 1;
}

static int rx_update(PyObject *rx, unsigned seq, uint32_t ts, double now, long size,
                     long delta) {
    if (add_long(rx, &A_packets, 1) < 0 || add_long(rx, &A_octets, size) < 0) return -1;
    if (delta == 0) return add_long(rx, &A_duplicates, 1);
    long max;
    if (get_long(rx, &A_max, &max) < 0) return -1;
    if ((long)seq < max && add_long(rx, &A_cycles, 0x10000) < 0) return -1;
    if (set_long(rx, &A_max, seq) < 0) return -1;
    /* _seen = ((_seen << delta) | 1) & ((1 << WINDOW) - 1) */
    PyObject *seen = aget(rx, &A_seen);
    if (seen == NULL) return -1;
    PyObject *d = PyLong_FromLong(delta);
    PyObject *t1 = d ? PyNumber_Lshift(seen, d) : NULL;
    Py_DECREF(seen);
    Py_XDECREF(d);
    PyObject *t2 = t1 ? PyNumber_Or(t1, g_one) : NULL;
    Py_XDECREF(t1);
    PyObject *t3 = t2 ? PyNumber_And(t2, g_window_mask) : NULL;
    Py_XDECREF(t2);
    if (t3 == NULL) return -1;
    int r = aset(rx, &A_seen, t3);
    Py_DECREF(t3);
    if (r < 0 || add_long(rx, &A_received, 1) < 0) return -1;
    long rate;
    if (get_long(rx, &A_clock_rate, &rate) < 0) return -1;
    double transit = now * (double)rate - (double)ts;
    PyObject *prev = aget(rx, &A_transit);
    if (prev == NULL) return -1;
    if (prev != Py_None) {
        double p = PyFloat_AsDouble(prev);
        Py_DECREF(prev);
        if (p == -1.0 && PyErr_Occurred()) return -1;
        double dd = transit - p;
        if (dd > 2147483648.0 || dd < -2147483648.0) {
            /* Python's float % takes the sign of the divisor */
            double m = fmod(dd + 2147483648.0, 4294967296.0);
            if (m < 0) m += 4294967296.0;
            dd = m - 2147483648.0;
        }
        PyObject *jo = aget(rx, &A_jitter);
        if (jo == NULL) return -1;
        double j = PyFloat_AsDouble(jo);
        Py_DECREF(jo);
        if (j == -1.0 && PyErr_Occurred()) return -1;
        j += (fabs(dd) - j) / 16.0;
        PyObject *nj = PyFloat_FromDouble(j);
        if (nj == NULL) return -1;
        r = aset(rx, &A_jitter, nj);
        Py_DECREF(nj);
        if (r < 0) return -1;
    } else {
        Py_DECREF(prev);
    }
    PyObject *tr = PyFloat_FromDouble(transit);
    if (tr == NULL) return -1;
    r = aset(rx, &A_transit, tr);
    Py_DECREF(tr);
    return r;
}

/* -- the peer's side: Outgoing.relay + RtpSender.relay ----------------------------------- */

/* Relay one payload (already in the peer's law) to the peer's remote. Natively when the
 * Outgoing is relaying and the packet continues the sender's anchor, else through
 * Outgoing.relay. `payload_obj` is the payload as a Python object, or NULL: it is then made
 * from `payload` only if Python code needs it (a relay through Python, a tap). 0 or -1. */
static int relay_to(PyObject *out, PyObject *payload_obj, const unsigned char *payload,
                    Py_ssize_t plen, int marker, unsigned seq, uint32_t ts, uint32_t ssrc,
                    PyObject *now) {
    PyObject *sender = NULL, *latch = NULL, *dest = NULL, *sock = NULL, *made = NULL;
    int native = 0, r = -1;
    long pt = 0, their_max = 0;
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    int relaying = get_truth(out, &A_relaying);
    if (relaying < 0) return -1;
    if (get_long(out, &A_pt, &pt) < 0) return -1;
    if (relaying && payload != NULL && plen <= MAX_DATAGRAM) {
        sender = aget(out, &A_sender);
        if (sender == NULL) goto done;
        long their_ssrc;
        int has = get_opt_long(sender, &A_their_ssrc, &their_ssrc);
        if (has < 0) goto done;
        if (has && (uint32_t)their_ssrc == ssrc) {
            if (get_long(sender, &A_their_max, &their_max) < 0) goto done;
            if ((((long)seq - their_max) & 0xFFFF) < MAX_DROPOUT) {
                latch = aget(out, &A_latch);
                if (latch == NULL) goto done;
                dest = aget(latch, &A_dest);
                if (dest == NULL) goto done;
                sock = aget(out, &A_sock);
                if (sock == NULL) goto done;
                native = dest != Py_None && dest_sockaddr(dest, &ss, &sslen) && pt >= 0 &&
                         pt <= 127;
            }
        }
    }
    if (native) n_relayed++; else n_relay_python++;
    if (payload_obj == NULL && !native) {
        payload_obj = made = PyBytes_FromStringAndSize((const char *)payload, plen);
        if (made == NULL) goto done;
    }
    if (!native) {
        /* out.relay(payload, out.pt, marker, seq, ts, ssrc, now, len(payload)) */
        PyObject *res = PyObject_CallMethod(out, "relay", "OlOkkkOn", payload_obj, pt,
                                            marker ? Py_True : Py_False, (unsigned long)seq,
                                            (unsigned long)ts, (unsigned long)ssrc, now,
                                            plen);
        Py_XDECREF(res);
        r = res == NULL ? -1 : 0;
        goto done;
    }
    {
        int fd = PyObject_AsFileDescriptor(sock);
        if (fd < 0) goto done;
        if (set_long(sender, &A_their_max, seq) < 0) goto done;
        int pending = get_truth(sender, &A_marker);
        if (pending < 0) goto done;
        if (pending) {
            marker = 1;
            if (aset(sender, &A_marker, Py_False) < 0) goto done;
        }
        long seq_off, ts_off, our_seq, our_ts, our_ssrc;
        if (get_long(sender, &A_seq_off, &seq_off) < 0 || get_long(sender, &A_ts_off, &ts_off) < 0 ||
            get_long(sender, &A_seq, &our_seq) < 0 || get_long(sender, &A_ts, &our_ts) < 0 ||
            get_long(sender, &A_ssrc, &our_ssrc) < 0)
            goto done;
        unsigned out_seq = (unsigned)((seq + (unsigned long)seq_off) & 0xFFFF);
        uint32_t out_ts = (uint32_t)(ts + (unsigned long)ts_off);
        if ((((long)out_seq + 1 - our_seq) & 0x8000) == 0 &&
            set_long(sender, &A_seq, (out_seq + 1) & 0xFFFF) < 0)
            goto done;
        uint32_t end_ts = out_ts + (uint32_t)plen;
        if (((end_ts - (uint32_t)our_ts) & 0x80000000u) == 0 &&
            set_long(sender, &A_ts, (long)end_ts) < 0)
            goto done;
        if (add_long(sender, &A_packets_sent, 1) < 0 || add_long(sender, &A_octets_sent, plen) < 0)
            goto done;
        unsigned char pkt[12 + MAX_DATAGRAM];
        pkt[0] = 0x80;
        pkt[1] = (unsigned char)(marker ? (pt | 0x80) : pt);
        pkt[2] = (unsigned char)(out_seq >> 8);
        pkt[3] = (unsigned char)out_seq;
        pkt[4] = (unsigned char)(out_ts >> 24);
        pkt[5] = (unsigned char)(out_ts >> 16);
        pkt[6] = (unsigned char)(out_ts >> 8);
        pkt[7] = (unsigned char)out_ts;
        uint32_t s = (uint32_t)our_ssrc;
        pkt[8] = (unsigned char)(s >> 24);
        pkt[9] = (unsigned char)(s >> 16);
        pkt[10] = (unsigned char)(s >> 8);
        pkt[11] = (unsigned char)s;
        memcpy(pkt + 12, payload, (size_t)plen);
        if (aset(out, &A_last_sent, now) < 0) goto done;
        ssize_t sent = sendto(fd, pkt, 12 + (size_t)plen, MSG_DONTWAIT, (struct sockaddr *)&ss,
                              sslen);
        if (sent < 0) {
            r = add_long(out, &A_send_errors, 1);
            goto done;
        }
        if (add_long(out, &A_packets_out, 1) < 0) goto done;
        PyObject *taps = aget(out, &A_out_taps);
        if (taps == NULL) goto done;
        int any = PyObject_IsTrue(taps);
        Py_DECREF(taps);
        if (any < 0) goto done;
        if (any && payload_obj == NULL) {
            payload_obj = made = PyBytes_FromStringAndSize((const char *)payload, plen);
            if (made == NULL) goto done;
        }
        if (any) {
            PyObject *res = PyObject_CallMethodOneArg(out, A_tap_out.name, payload_obj);
            if (res == NULL) goto done;
            Py_DECREF(res);
        }
        r = 0;
    }
done:
    Py_XDECREF(made);
    Py_XDECREF(sender);
    Py_XDECREF(latch);
    Py_XDECREF(dest);
    Py_XDECREF(sock);
    return r;
}

/* -- one datagram ----------------------------------------------------------------------- */

/* 0: handled; 1: not the common case, nothing touched: hand it to _on_rtp; -1: error (an
 * exception is set; state may be partly updated, as it would be in Python). */
static int on_packet(PyObject *ep, const unsigned char *data, Py_ssize_t n,
                     const struct sockaddr_storage *ss) {
    if (n < 12 || data[0] != 0x80) return 1;
    long pt = data[1] & 0x7F;
    int marker = data[1] > 0x7F;
    unsigned seq = ((unsigned)data[2] << 8) | data[3];
    uint32_t ts = ((uint32_t)data[4] << 24) | ((uint32_t)data[5] << 16) |
                  ((uint32_t)data[6] << 8) | data[7];
    uint32_t ssrc = ((uint32_t)data[8] << 24) | ((uint32_t)data[9] << 16) |
                    ((uint32_t)data[10] << 8) | data[11];
    long recv_pt, rx_ssrc, delta = 0;
    if (get_long(ep, &A_recv_pt, &recv_pt) < 0) return -1;
    if (pt != recv_pt) return 1;
    PyObject *src = aget(ep, &A_src);
    if (src == NULL) return -1;
    int same = addr_equals(ss, src);
    Py_DECREF(src);
    if (!same) return 1;
    int has = get_opt_long(ep, &A_rx_ssrc, &rx_ssrc);
    if (has <= 0) return has < 0 ? -1 : 1;
    if ((uint32_t)rx_ssrc != ssrc) return 1;
    PyObject *rx = aget(ep, &A_rx);
    if (rx == NULL) return -1;
    int r = -1, common = rx_check(rx, seq, &delta);
    PyObject *now = NULL, *payload = NULL, *peer = NULL, *out = NULL, *to_peer = NULL,
             *moved = NULL;
    if (common <= 0) {
        r = common < 0 ? -1 : 1;
        goto done;
    }
    /* from here on this is MediaEndpoint._on_rtp, line by line */
    {
        PyObject *clock = aget(ep, &A_now);
        if (clock == NULL) goto done;
        now = PyObject_CallNoArgs(clock);
        Py_DECREF(clock);
    }
    if (now == NULL) goto done;
    double t = PyFloat_AsDouble(now);
    if (t == -1.0 && PyErr_Occurred()) goto done;
    if (aset(ep, &A_last_rx, now) < 0 || add_long(ep, &A_packets_in, 1) < 0) goto done;
    Py_ssize_t plen = n - 12;
    if (rx_update(rx, seq, ts, t, (long)plen, delta) < 0) goto done;
    int recv_ok = get_truth(ep, &A_recv_ok);
    if (recv_ok <= 0) {
        r = recv_ok;
        goto done;
    }
    {
        PyObject *taps = aget(ep, &A_taps);
        if (taps == NULL) goto done;
        int want = PyObject_IsTrue(taps);
        if (want > 0) {
            int c = capture(ep, taps, data + 12, plen);
            if (c != 0) want = c < 0 ? -1 : 0; /* done here, or failed */
        } else if (want == 0) {
            PyObject *inband = aget(ep, &A_inband);
            if (inband == NULL) {
                Py_DECREF(taps);
                goto done;
            }
            want = inband != Py_None;
            Py_DECREF(inband);
        }
        Py_DECREF(taps);
        if (want < 0) goto done;
        if (want) {
            payload = PyBytes_FromStringAndSize((const char *)data + 12, plen);
            if (payload == NULL) goto done;
            PyObject *res = PyObject_CallMethodOneArg(ep, A_audio_in.name, payload);
            if (res == NULL) goto done;
            Py_DECREF(res);
        }
    }
    peer = aget(ep, &A_peer);
    if (peer == NULL) goto done;
    if (peer == Py_None) {
        r = 0;
        goto done;
    }
    out = aget(peer, &A_out);
    if (out == NULL) goto done;
    int send_ok = get_truth(out, &A_send_ok);
    if (send_ok < 0) goto done;
    int busy = send_ok ? get_truth(out, &A_busy) : 1;
    if (busy < 0) goto done;
    if (!send_ok || busy) {
        r = 0;
        goto done;
    }
    to_peer = aget(ep, &A_to_peer);
    if (to_peer == NULL) goto done;
    const unsigned char *bytes = data + 12;
    if (to_peer != Py_None) {
        if (to_peer == g_u2a_func || to_peer == g_a2u_func) {
            const unsigned char *table = to_peer == g_u2a_func ? g_u2a : g_a2u;
            moved = PyBytes_FromStringAndSize(NULL, plen);
            if (moved == NULL) goto done;
            unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(moved);
            for (Py_ssize_t i = 0; i < plen; i++) dst[i] = table[data[12 + i]];
        } else {
            if (payload == NULL &&
                (payload = PyBytes_FromStringAndSize((const char *)data + 12, plen)) == NULL)
                goto done;
            moved = PyObject_CallOneArg(to_peer, payload);
            if (moved == NULL) goto done;
            if (!PyBytes_Check(moved)) {
                /* not ours to interpret: Outgoing.relay takes it as it would from Python */
                Py_ssize_t mlen = PyObject_Length(moved);
                if (mlen < 0) goto done;
                r = relay_to(out, moved, NULL, mlen, marker, seq, ts, ssrc, now);
                goto done;
            }
        }
        bytes = (const unsigned char *)PyBytes_AS_STRING(moved);
        plen = PyBytes_GET_SIZE(moved);
    }
    r = relay_to(out, moved != NULL ? moved : payload, bytes, plen, marker, seq, ts, ssrc, now);
done:
    Py_XDECREF(rx);
    Py_XDECREF(now);
    Py_XDECREF(payload);
    Py_XDECREF(peer);
    Py_XDECREF(out);
    Py_XDECREF(to_peer);
    Py_XDECREF(moved);
    return r;
}

/* -- the reader: MediaEndpoint._read_rtp ------------------------------------------------ */

static void report_failure(PyObject *ep) {
    PyObject *type, *exc, *tb;
    PyErr_Fetch(&type, &exc, &tb);
    PyErr_NormalizeException(&type, &exc, &tb);
    if (exc != NULL && tb != NULL) PyException_SetTraceback(exc, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    if (exc == NULL) {
        exc = Py_None;
        Py_INCREF(exc);
    }
    PyObject *res = PyObject_CallMethodOneArg(ep, A_packet_failed.name, exc);
    Py_XDECREF(exc);
    if (res == NULL)
        PyErr_WriteUnraisable(ep);
    else
        Py_DECREF(res);
}

/* Up to ep._batch datagrams from fd, each handled here or by ep._on_rtp. Failures of one
 * packet are reported through ep._packet_failed and do not stop the socket. -1 only when the
 * endpoint itself is unusable. */
static int read_endpoint(PyObject *ep, int fd) {
    long batch;
    if (get_long(ep, &A_batch, &batch) < 0) return -1;
    unsigned char buf[MAX_DATAGRAM];
    for (long k = 0; k < batch; k++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        ssize_t n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&ss, &sl);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
            continue; /* an ICMP error queued on the socket, say: as the Python reader */
        }
        int r = on_packet(ep, buf, n, &ss);
        if (r == 0) n_native++;
        if (r == 1) {
            n_python++;
            PyObject *data = PyBytes_FromStringAndSize((const char *)buf, n);
            PyObject *addr = data ? make_addr(&ss) : NULL;
            PyObject *res = addr ? PyObject_CallMethodObjArgs(ep, A_on_rtp.name, data, addr, NULL)
                                 : NULL;
            Py_XDECREF(data);
            Py_XDECREF(addr);
            if (res == NULL)
                r = -1;
            else
                Py_DECREF(res);
        }
        if (r < 0) report_failure(ep);
    }
    return 0;
}

PyDoc_STRVAR(serve_doc,
"serve(epfd, endpoints, maxevents) -> (ready, others)\n\n"
"One non-blocking epoll_wait on the epoll descriptor `epfd`. Ready descriptors found in\n"
"`endpoints` (fd -> MediaEndpoint) are read and handled here; the others are returned for\n"
"their Python callbacks. `ready` counts them all.");

/* serve() and handle() need the tables configure() gives */
static int configured(void) {
    if (g_window_mask != NULL) return 1;
    PyErr_SetString(PyExc_RuntimeError, "_fastrtp.configure() has not been called");
    return 0;
}

static PyObject *serve(PyObject *self, PyObject *args) {
    int epfd, maxevents;
    PyObject *endpoints;
    if (!PyArg_ParseTuple(args, "iO!i", &epfd, &PyDict_Type, &endpoints, &maxevents))
        return NULL;
    if (!configured()) return NULL;
    if (maxevents < 1 || maxevents > MAX_EVENTS) maxevents = MAX_EVENTS;
    /* per call, not static: a Python callback below may (in principle) serve again */
    struct epoll_event *events = PyMem_Malloc(sizeof(*events) * (size_t)maxevents);
    if (events == NULL) return PyErr_NoMemory();
    int n = epoll_wait(epfd, events, maxevents, 0);
    if (n < 0) {
        if (errno != EINTR) {
            PyMem_Free(events);
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        n = 0;
    }
    PyObject *others = PyList_New(0);
    if (others == NULL) {
        PyMem_Free(events);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        int fd = events[i].data.fd;
        PyObject *key = PyLong_FromLong(fd);
        if (key == NULL) goto fail;
        PyObject *ep = PyDict_GetItemWithError(endpoints, key); /* borrowed */
        if (ep == NULL) {
            if (PyErr_Occurred() || PyList_Append(others, key) < 0) {
                Py_DECREF(key);
                goto fail;
            }
            Py_DECREF(key);
            continue;
        }
        Py_DECREF(key);
        Py_INCREF(ep); /* a callback may close it and drop it from the dict */
        int r = read_endpoint(ep, fd);
        Py_DECREF(ep);
        if (r < 0) goto fail;
    }
    PyMem_Free(events);
    return Py_BuildValue("(iN)", n, others);
fail:
    PyMem_Free(events);
    Py_DECREF(others);
    return NULL;
}

PyDoc_STRVAR(handle_doc,
"handle(endpoint, data, addr) -> bool\n\n"
"The per-datagram path alone, for tests: True when handled here, False when `data` (received\n"
"from `addr`) is not the common case and nothing was touched (MediaEndpoint._on_rtp must\n"
"take it). Exceptions from Python callbacks propagate.");

static PyObject *handle(PyObject *self, PyObject *args) {
    PyObject *ep, *addr;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "Oy*O", &ep, &data, &addr)) return NULL;
    if (!configured()) {
        PyBuffer_Release(&data);
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t len;
    int ok = dest_sockaddr(addr, &ss, &len);
    if (!ok || data.len > MAX_DATAGRAM) {
        PyBuffer_Release(&data);
        Py_RETURN_FALSE; /* only numeric addresses arrive from a socket */
    }
    int r = on_packet(ep, (const unsigned char *)data.buf, data.len, &ss);
    PyBuffer_Release(&data);
    if (r < 0) return NULL;
    return PyBool_FromLong(r == 0);
}

PyDoc_STRVAR(configure_doc,
"configure(u2a, a2u, u2a_table, a2u_table, window[, channel_tap, ulaw_pcm, alaw_pcm])\n\n"
"The transcoders of media.g711 (recognised by identity, applied by table here) and\n"
"RtpReceiverStats.WINDOW; with channel_tap (acd.runtime.rtprecorder.ChannelTap) and the\n"
"16-bit decodings of the 256 u-law and A-law bytes, recordings are fed here too.");

static PyObject *configure(PyObject *self, PyObject *args) {
    PyObject *u2a, *a2u, *chtap = NULL;
    Py_buffer t1, t2, pu = {0}, pa = {0};
    int window;
    if (!PyArg_ParseTuple(args, "OOy*y*i|Oy*y*", &u2a, &a2u, &t1, &t2, &window, &chtap, &pu,
                          &pa))
        return NULL;
    int bad = t1.len != 256 || t2.len != 256 || window < 1 || window > 4096 ||
              (chtap != NULL && (!PyType_Check(chtap) || pu.len != 512 || pa.len != 512));
    if (!bad) {
        memcpy(g_u2a, t1.buf, 256);
        memcpy(g_a2u, t2.buf, 256);
        if (chtap != NULL) {
            memcpy(g_ulaw_pcm, pu.buf, 512);
            memcpy(g_alaw_pcm, pa.buf, 512);
        }
    }
    PyBuffer_Release(&t1);
    PyBuffer_Release(&t2);
    if (pu.obj != NULL) PyBuffer_Release(&pu);
    if (pa.obj != NULL) PyBuffer_Release(&pa);
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "tables must hold 256 bytes (decode tables 512), "
                        "window 1..4096, and the tap type a type");
        return NULL;
    }
    Py_XINCREF(chtap);
    Py_XSETREF(g_chtap_type, chtap); /* without it, recorded packets go through _audio_in */
    PyObject *w = PyLong_FromLong(window);
    PyObject *shifted = w ? PyNumber_Lshift(g_one, w) : NULL;
    Py_XDECREF(w);
    PyObject *mask = shifted ? PyNumber_Subtract(shifted, g_one) : NULL;
    Py_XDECREF(shifted);
    if (mask == NULL) return NULL;
    Py_XSETREF(g_window_mask, mask);
    Py_INCREF(u2a);
    Py_XSETREF(g_u2a_func, u2a);
    Py_INCREF(a2u);
    Py_XSETREF(g_a2u_func, a2u);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(counters_doc,
"counters() -> dict\n\n"
"Datagrams served since the process started: 'native' handled here, 'python' handed to\n"
"_on_rtp; of those handled here, 'relayed' sent here and 'relay_python' through\n"
"Outgoing.relay, and 'captured' handed to recordings here.");

static PyObject *counters(PyObject *self, PyObject *unused) {
    return Py_BuildValue("{sKsKsKsKsK}", "native", n_native, "python", n_python, "relayed",
                         n_relayed, "relay_python", n_relay_python, "captured", n_captured);
}

static PyMethodDef methods[] = {
    {"counters", counters, METH_NOARGS, counters_doc},
    {"serve", serve, METH_VARARGS, serve_doc},
    {"handle", handle, METH_VARARGS, handle_doc},
    {"configure", configure, METH_VARARGS, configure_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastrtp",
    "The bridged-RTP fast path of acd.runtime.rtpendpoint (see the C source's header).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__fastrtp(void) {
    for (size_t i = 0; i < sizeof(all_attrs) / sizeof(all_attrs[0]); i++)
        if ((all_attrs[i]->name = PyUnicode_InternFromString(all_attrs[i]->text)) == NULL)
            return NULL;
    if ((g_one = PyLong_FromLong(1)) == NULL) return NULL;
    return PyModule_Create(&module);
}
