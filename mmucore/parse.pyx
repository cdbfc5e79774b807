# The fast text-trace parser: Valgrind lackey, Dinero IV din and extended din (xdin), and
# Pin pinatrace text into the trace columns addr (uint64) / op (uint8) / size (uint16).
#
# docs/traces.md, section "Text formats: exact parsing rules", states what every format
# accepts and why (with the tools' sources); tests/reference_parse.py is the pure-Python
# oracle with exactly the same semantics.
#
# How it is fast: one pass over the bytes, a 256-entry hex table, no strtoull, no
# per-line calls that do not inline. The buffer is cut at its last '\n': every line in
# front of that cut ends with a '\n', and no scanning loop ever steps over a '\n', so the
# lines there are parsed with no bounds checks at all (the '\n' is the sentinel). Only
# the last line of a final buffer, which has no '\n', is parsed by a bounds-checked copy
# of the same code, in which a read at or past the end sees a '\n'. The two copies, and
# one copy per format, are fused specialisations chosen once per call.
from mmucore._types cimport (uint8_t, uint16_t, uint32_t, int32_t, uint64_t, intp_t,
                             OP_LOAD, OP_STORE, OP_IFETCH, OP_MODIFY)

from collections import namedtuple as _namedtuple

import numpy as np

cdef extern from *:
    """
    /* hex digit value of a byte, 255 for a byte that is not a hex digit */
    static const unsigned char mmucore_hexval[256] = {
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
          0,   1,   2,   3,   4,   5,   6,   7,   8,   9, 255, 255, 255, 255, 255, 255,
        255,  10,  11,  12,  13,  14,  15, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        255,  10,  11,  12,  13,  14,  15, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
        255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    };
    """
    const uint8_t HEXVAL "mmucore_hexval"[256]

#: Format codes of `parse_text` (values are part of the cimport contract, parse.pxd).
FMT_LACKEY = PARSE_FMT_LACKEY
FMT_DIN = PARSE_FMT_DIN
FMT_XDIN = PARSE_FMT_XDIN
FMT_PINATRACE = PARSE_FMT_PINATRACE
#: Format name -> code.
FORMATS = {"lackey": FMT_LACKEY, "din": FMT_DIN, "xdin": FMT_XDIN,
           "pinatrace": FMT_PINATRACE}
#: Code -> format name.
FORMAT_NAMES = tuple(sorted(FORMATS, key=FORMATS.get))
#: The cimport contract's version (parse.pxd).
ABI_VERSION = PARSE_ABI_VERSION

# What a line was (internal).
cdef enum:
    L_REC = 0       # one record
    L_SKIP = 1      # blank, Valgrind message or comment line
    L_IGN = 2       # well-formed, but not an access (lackey SB, din 4/5, xdin c/v)
    L_EOF = 3       # pinatrace '#eof'
    L_BAD = 4       # malformed

cdef enum:
    NL = 10
    CR = 13
    SP = 32
    TAB = 9

# Compile-time selectors (as in tlb.pyx): a NULL pointer of one of these types picks the
# specialisation; `if M is _Bound:` vanishes at compile time.
cdef struct _Sent:          # the region ends with '\n': no bounds checks
    char unused
cdef struct _Bound:         # the last line of a final buffer: reads at/past `end` see '\n'
    char unused
ctypedef fused Mode:
    _Sent
    _Bound

cdef struct _Lackey:
    char unused
cdef struct _Din:
    char unused
cdef struct _Xdin:
    char unused
cdef struct _Pin:
    char unused
ctypedef fused Fmt:
    _Lackey
    _Din
    _Xdin
    _Pin


# ----------------------------------------------------------------------------------------
# scanning primitives. Invariant: a read at p + k happens only after p[0..k-1] were seen
# not to be '\n' (or, in _Bound mode, is guarded by `end`).

cdef inline uint32_t _at(Mode* m, const uint8_t* p, const uint8_t* end) noexcept nogil:
    if Mode is _Bound:
        if p >= end:
            return NL
    return p[0]


cdef inline const uint8_t* _ws(Mode* m, const uint8_t* p, const uint8_t* end) noexcept nogil:
    """Skip spaces and tabs."""
    cdef uint32_t c = _at(m, p, end)
    while c == SP or c == TAB:
        p += 1
        c = _at(m, p, end)
    return p


cdef inline const uint8_t* _eol(Mode* m, const uint8_t* p, const uint8_t* end) noexcept nogil:
    """The start of the next line when p is at the end of its line ('\n', or '\r\n'),
    else NULL."""
    cdef uint32_t c = _at(m, p, end)
    if c == CR:
        p += 1
        c = _at(m, p, end)
    if c != NL:
        return NULL
    if Mode is _Bound:
        return end
    else:
        return p + 1


cdef inline const uint8_t* _next_line(Mode* m, const uint8_t* p,
                                      const uint8_t* end) noexcept nogil:
    """The start of the line after the one p is in."""
    while _at(m, p, end) != NL:
        p += 1
    if Mode is _Bound:
        return end
    else:
        return p + 1


cdef inline const uint8_t* _hex(Mode* m, const uint8_t* p, const uint8_t* end,
                                uint64_t* out) noexcept nogil:
    """A hex number with an optional 0x/0X prefix and at least one digit, whose value fits
    in 64 bits (leading zeros are allowed): the position after it, or NULL."""
    cdef const uint8_t* start
    cdef const uint8_t* q
    cdef uint64_t v = 0
    cdef uint32_t d
    if _at(m, p, end) == 48 and (_at(m, p + 1, end) | 0x20) == 120:   # "0x" or "0X"
        p += 2
    start = p
    d = HEXVAL[_at(m, p, end)]
    while d < 16:
        v = (v << 4) | d
        p += 1
        d = HEXVAL[_at(m, p, end)]
    if p == start:
        return NULL
    if p - start > 16:              # more than 16 digits: only leading zeros may be extra
        q = start
        while q < p - 16:
            if q[0] != 48:
                return NULL
            q += 1
    out[0] = v
    return p


cdef inline const uint8_t* _dec16(Mode* m, const uint8_t* p, const uint8_t* end,
                                  uint16_t* out) noexcept nogil:
    """A decimal number of at least one digit with a value <= 65535: the position after
    it, or NULL."""
    cdef uint32_t v = 0
    cdef uint32_t d = _at(m, p, end) - 48
    if d >= 10:
        return NULL
    while d < 10:
        v = v * 10 + d
        if v > 0xFFFF:
            return NULL
        p += 1
        d = _at(m, p, end) - 48
    out[0] = <uint16_t>v
    return p


cdef inline const uint8_t* _ptr(Mode* m, const uint8_t* p, const uint8_t* end,
                                uint64_t* out) noexcept nogil:
    """A pinatrace pointer: a hex number as in _hex, or glibc's "(nil)" (= 0)."""
    if _at(m, p, end) == 40:                                  # "("
        if (_at(m, p + 1, end) == 110 and _at(m, p + 2, end) == 105          # "ni"
                and _at(m, p + 3, end) == 108 and _at(m, p + 4, end) == 41):  # "l)"
            out[0] = 0
            return p + 5
        return NULL
    return _hex(m, p, end, out)


cdef inline int _blank(Mode* m, const uint8_t* p, const uint8_t* end,
                       const uint8_t** nxt) noexcept nogil:
    """p is at the first non-blank byte of a line, which is '\n' or '\r'."""
    cdef const uint8_t* q = _eol(m, p, end)
    if q == NULL:
        return L_BAD
    nxt[0] = q
    return L_SKIP


# ----------------------------------------------------------------------------------------
# one line of each format: status, and for L_REC the record; nxt = start of the next line
# (not set for L_BAD)

cdef inline int _line_lackey(Mode* m, const uint8_t* p, const uint8_t* end,
                             const uint8_t** nxt, uint64_t* a, uint8_t* o,
                             uint16_t* s) noexcept nogil:
    cdef uint32_t c
    cdef uint64_t ignored_addr
    p = _ws(m, p, end)
    c = _at(m, p, end)
    if c == 73:                                     # 'I'
        o[0] = OP_IFETCH
    elif c == 76:                                   # 'L'
        o[0] = OP_LOAD
    elif c == 83:                                   # 'S': store, or "SB addr"
        if _at(m, p + 1, end) == 66:                # 'B'
            p += 2
            c = _at(m, p, end)
            if c != SP and c != TAB:
                return L_BAD
            p = _hex(m, _ws(m, p, end), end, &ignored_addr)
            if p == NULL:
                return L_BAD
            p = _eol(m, _ws(m, p, end), end)
            if p == NULL:
                return L_BAD
            nxt[0] = p
            return L_IGN
        o[0] = OP_STORE
    elif c == 77:                                   # 'M'
        o[0] = OP_MODIFY
    elif c == NL or c == CR:
        return _blank(m, p, end, nxt)
    else:
        # a Valgrind message line: [>...] then two equal chars of = - + * ?
        while c == 62:                              # '>'
            p += 1
            c = _at(m, p, end)
        if (c == 61 or c == 45 or c == 43 or c == 42 or c == 63) and _at(m, p + 1, end) == c:
            nxt[0] = _next_line(m, p, end)
            return L_SKIP
        return L_BAD
    p += 1
    c = _at(m, p, end)
    if c != SP and c != TAB:
        return L_BAD
    p = _hex(m, _ws(m, p, end), end, a)
    if p == NULL:
        return L_BAD
    p = _ws(m, p, end)
    if _at(m, p, end) != 44:                        # ","
        return L_BAD
    p = _dec16(m, _ws(m, p + 1, end), end, s)
    if p == NULL:
        return L_BAD
    p = _eol(m, _ws(m, p, end), end)
    if p == NULL:
        return L_BAD
    nxt[0] = p
    return L_REC


cdef inline int _line_din(Mode* m, const uint8_t* p, const uint8_t* end,
                          const uint8_t** nxt, uint64_t* a, uint8_t* o,
                          uint16_t* s) noexcept nogil:
    cdef uint32_t c
    cdef uint64_t label = 0
    p = _ws(m, p, end)
    c = _at(m, p, end)
    if c == NL or c == CR:
        return _blank(m, p, end, nxt)
    p = _hex(m, p, end, &label)
    if p == NULL:
        return L_BAD
    c = _at(m, p, end)
    if c != SP and c != TAB:
        return L_BAD
    p = _hex(m, _ws(m, p, end), end, a)
    if p == NULL:
        return L_BAD
    c = _at(m, p, end)
    if c == SP or c == TAB:                         # the rest of the line is ignored
        p = _next_line(m, p, end)
    else:
        p = _eol(m, p, end)
        if p == NULL:
            return L_BAD
    if label > 5:
        return L_BAD
    nxt[0] = p
    if label >= 4:                                  # copy-back, invalidate
        return L_IGN
    if label == 0 or label == 3:                    # read, misc (a read without prefetch)
        o[0] = OP_LOAD
    elif label == 1:
        o[0] = OP_STORE
    else:
        o[0] = OP_IFETCH
    a[0] = a[0] & ~(<uint64_t>3)                    # "dineroIII is pretty much word-oriented"
    s[0] = 4
    return L_REC


cdef inline int _line_xdin(Mode* m, const uint8_t* p, const uint8_t* end,
                           const uint8_t** nxt, uint64_t* a, uint8_t* o,
                           uint16_t* s) noexcept nogil:
    cdef uint32_t c
    cdef uint64_t size = 0
    cdef bint ign = False
    p = _ws(m, p, end)
    c = _at(m, p, end)
    if c == NL or c == CR:
        return _blank(m, p, end, nxt)
    c = c | 0x20                                    # case-insensitive letter
    if c == 114:                                    # r
        o[0] = OP_LOAD
    elif c == 119:                                  # w
        o[0] = OP_STORE
    elif c == 105:                                  # i
        o[0] = OP_IFETCH
    elif c == 109:                                  # m: misc, a read without prefetch
        o[0] = OP_LOAD
    elif c == 99 or c == 118:                       # c: copy-back, v: invalidate
        ign = True
    else:
        return L_BAD
    p += 1
    c = _at(m, p, end)
    if c != SP and c != TAB:
        return L_BAD
    p = _hex(m, _ws(m, p, end), end, a)
    if p == NULL:
        return L_BAD
    c = _at(m, p, end)
    if c != SP and c != TAB:
        return L_BAD
    p = _hex(m, _ws(m, p, end), end, &size)
    if p == NULL or size > 0xFFFF:
        return L_BAD
    c = _at(m, p, end)
    if c == SP or c == TAB:
        p = _next_line(m, p, end)
    else:
        p = _eol(m, p, end)
        if p == NULL:
            return L_BAD
    nxt[0] = p
    if ign:
        return L_IGN
    s[0] = <uint16_t>size
    return L_REC


cdef inline int _line_pin(Mode* m, const uint8_t* p, const uint8_t* end,
                          const uint8_t** nxt, uint64_t* a, uint8_t* o,
                          uint16_t* s) noexcept nogil:
    cdef uint32_t c
    cdef uint64_t ip = 0
    cdef const uint8_t* q
    p = _ws(m, p, end)
    c = _at(m, p, end)
    if c == NL or c == CR:
        return _blank(m, p, end, nxt)
    if c == 35:                                     # '#': "#eof", or a comment
        if (_at(m, p + 1, end) == 101 and _at(m, p + 2, end) == 111
                and _at(m, p + 3, end) == 102):     # "eof"
            q = _eol(m, _ws(m, p + 4, end), end)
            if q != NULL:
                nxt[0] = q
                return L_EOF
        nxt[0] = _next_line(m, p, end)
        return L_SKIP
    p = _ptr(m, p, end, &ip)
    if p == NULL:
        return L_BAD
    p = _ws(m, p, end)
    if _at(m, p, end) != 58:                        # ":"
        return L_BAD
    p = _ws(m, p + 1, end)
    c = _at(m, p, end)
    if c == 82:                                     # 'R'
        o[0] = OP_LOAD
    elif c == 87:                                   # 'W'
        o[0] = OP_STORE
    else:
        return L_BAD
    p += 1
    c = _at(m, p, end)
    if c != SP and c != TAB:
        return L_BAD
    p = _ptr(m, _ws(m, p, end), end, a)
    if p == NULL:
        return L_BAD
    s[0] = 0
    c = _at(m, p, end)
    if c == SP or c == TAB:
        p = _ws(m, p, end)
        if _at(m, p, end) - 48 < 10:           # SimpleExamples/pinatrace: a size
            p = _dec16(m, p, end, s)
            if p == NULL:
                return L_BAD
            c = _at(m, p, end)
            if c == SP or c == TAB:                 # then the value: ignored
                nxt[0] = _next_line(m, p, end)
                return L_REC
    p = _eol(m, p, end)
    if p == NULL:
        return L_BAD
    nxt[0] = p
    return L_REC


# ----------------------------------------------------------------------------------------
# the loop over the lines of one region

cdef const uint8_t* _region(Fmt* f, Mode* m, const uint8_t* buf, const uint8_t* p,
                            const uint8_t* end, uint64_t* addr, uint8_t* op,
                            uint16_t* size, intp_t cap, bint skip_errors,
                            ParseCounts* st) noexcept nogil:
    cdef intp_t n = st.n_records
    cdef intp_t lines = st.lines
    cdef const uint8_t* nxt = p
    cdef uint64_t a = 0
    cdef uint8_t o = 0
    cdef uint16_t s = 0
    cdef int r
    while p < end:
        if n >= cap:
            break
        if Fmt is _Lackey:
            r = _line_lackey(m, p, end, &nxt, &a, &o, &s)
        elif Fmt is _Din:
            r = _line_din(m, p, end, &nxt, &a, &o, &s)
        elif Fmt is _Xdin:
            r = _line_xdin(m, p, end, &nxt, &a, &o, &s)
        else:
            r = _line_pin(m, p, end, &nxt, &a, &o, &s)
        if r == L_REC:
            addr[n] = a
            op[n] = o
            size[n] = s
            n += 1
        elif r == L_BAD:
            if not skip_errors:
                st.err_offset = p - buf
                break
            st.skipped += 1
            nxt = _next_line(m, p, end)
        elif r == L_IGN:
            st.ignored += 1
        elif r == L_EOF:
            st.eof_seen = 1
            lines += 1
            p = nxt
            break
        lines += 1
        p = nxt
    st.n_records = n
    st.lines = lines
    return p


cdef inline const uint8_t* _both(Fmt* f, const uint8_t* buf, const uint8_t* cut,
                                 const uint8_t* end, bint final, uint64_t* addr,
                                 uint8_t* op, uint16_t* size, intp_t cap, bint skip_errors,
                                 ParseCounts* st) noexcept nogil:
    """The lines up to `cut` (just past the last '\n'), then, when final, the rest."""
    cdef const uint8_t* p = buf
    if cut > buf:
        p = _region(f, <_Sent*>NULL, buf, buf, cut, addr, op, size, cap, skip_errors, st)
    if final and p == cut and cut < end and st.err_offset < 0 and not st.eof_seen:
        p = _region(f, <_Bound*>NULL, buf, cut, end, addr, op, size, cap, skip_errors, st)
    return p


cdef int parse_buffer(int32_t fmt, const uint8_t* buf, intp_t nbytes, bint final,
                      uint64_t* addr, uint8_t* op, uint16_t* size, intp_t cap,
                      bint skip_errors, ParseCounts* out) noexcept nogil:
    cdef const uint8_t* cut
    cdef const uint8_t* end
    cdef const uint8_t* p
    if fmt < 0 or fmt >= PARSE_FMT_COUNT:
        return -1
    out.n_records = 0
    out.consumed = 0
    out.lines = 0
    out.skipped = 0
    out.err_offset = -1
    out.ignored = 0
    out.eof_seen = 0
    if buf == NULL or nbytes <= 0:
        return 0
    if addr == NULL or op == NULL or size == NULL or cap < 0:
        cap = 0
    end = buf + nbytes
    cut = end
    while cut > buf and (cut - 1)[0] != NL:
        cut -= 1
    if fmt == PARSE_FMT_LACKEY:
        p = _both(<_Lackey*>NULL, buf, cut, end, final, addr, op, size, cap, skip_errors, out)
    elif fmt == PARSE_FMT_DIN:
        p = _both(<_Din*>NULL, buf, cut, end, final, addr, op, size, cap, skip_errors, out)
    elif fmt == PARSE_FMT_XDIN:
        p = _both(<_Xdin*>NULL, buf, cut, end, final, addr, op, size, cap, skip_errors, out)
    else:
        p = _both(<_Pin*>NULL, buf, cut, end, final, addr, op, size, cap, skip_errors, out)
    out.consumed = p - buf
    return 0


# ----------------------------------------------------------------------------------------
# Python surface

_ParseResultBase = _namedtuple("_ParseResultBase",
                              "n_records consumed_bytes lines skipped err_offset")


class ParseResult(_ParseResultBase):
    """What one `parse_text` call did: a 5-tuple
    ``(n_records, consumed_bytes, lines, skipped, err_offset)`` (unpack it as such) whose
    fields also have those names, plus two attributes that are not tuple items:

    ``eof_seen``
        True when a pinatrace ``#eof`` line ended the trace: parsing stopped just past
        it, and the caller must not parse anything after it.
    ``ignored``
        well-formed lines that are not memory accesses and were dropped: lackey ``SB``
        lines, din labels 4 (copy-back) and 5 (invalidate), xdin ``c`` and ``v``.

    >>> r = ParseResult(2, 30, 3, 0, -1, eof_seen=True, ignored=1)
    >>> n, consumed, lines, skipped, err = r
    >>> (n, consumed, r.lines, r.eof_seen, r.ignored), r == (2, 30, 3, 0, -1)
    ((2, 30, 3, True, 1), True)
    """

    def __new__(cls, n_records, consumed_bytes, lines, skipped, err_offset,
                eof_seen=False, ignored=0):
        self = super().__new__(cls, n_records, consumed_bytes, lines, skipped, err_offset)
        self.eof_seen = bool(eof_seen)
        self.ignored = int(ignored)
        return self

    def __repr__(self):
        return (f"ParseResult(n_records={self[0]}, consumed_bytes={self[1]}, "
                f"lines={self[2]}, skipped={self[3]}, err_offset={self[4]}, "
                f"eof_seen={self.eof_seen}, ignored={self.ignored})")

    def __reduce__(self):
        return (ParseResult, tuple(self) + (self.eof_seen, self.ignored))


cdef object _result(ParseCounts* st):
    return ParseResult(st.n_records, st.consumed, st.lines, st.skipped, st.err_offset,
                       st.eof_seen != 0, st.ignored)


def parse_text(int fmt, const uint8_t[::1] buf, bint final,
               uint64_t[::1] addr, uint8_t[::1] op, uint16_t[::1] size,
               bint skip_errors=False):
    """Parse the complete lines of ``buf`` (format ``fmt``, one of ``FMT_*``) into the
    output columns, from index 0, in one ``nogil`` call.

    Parameters
    ----------
    fmt : int
        ``FMT_LACKEY``, ``FMT_DIN``, ``FMT_XDIN`` or ``FMT_PINATRACE`` (``FORMATS[name]``).
    buf : bytes-like of uint8, C-contiguous, may be read-only
        The text. Only whole lines are parsed (those ending with ``\\n``) and, when
        ``final``, a last line without ``\\n`` too.
    final : bool
        True when ``buf`` ends the input.
    addr, op, size : writable uint64 / uint8 / uint16 arrays
        The output columns; ``min(len)`` of the three is the capacity.
    skip_errors : bool
        Skip (and count) malformed lines instead of stopping at the first.

    Returns
    -------
    ParseResult
        The tuple ``(n_records, consumed_bytes, lines, skipped, err_offset)``, and the
        attributes ``eof_seen`` and ``ignored``. ``n_records`` records are in the
        columns' first slots. ``consumed_bytes`` is always the end of a whole line (just
        past its ``\\n``, or ``len(buf)`` after a final last line): parsing stops when the
        columns are full (before any further line, even a blank one), when no complete
        line remains, at ``#eof``, or at a malformed line when not ``skip_errors``: then
        ``err_offset`` is that line's offset in ``buf`` and equals ``consumed_bytes``
        (otherwise ``err_offset`` is -1). ``lines`` counts every line consumed
        (records, skipped, blank, banner, comment and ignored lines).

    Examples
    --------
    >>> import numpy as np
    >>> a, o, s = np.zeros(8, np.uint64), np.zeros(8, np.uint8), np.zeros(8, np.uint16)
    >>> text = b"==12== Lackey\\nI  0400d7d4,3\\n L 1ffefffd68,8\\n M 0421ac30,4\\n S 04"
    >>> parse_text(FMT_LACKEY, text, False, a, o, s)[:]
    (3, 58, 4, 0, -1)
    >>> [hex(x) for x in a[:3]], o[:3].tolist(), s[:3].tolist()
    (['0x400d7d4', '0x1ffefffd68', '0x421ac30'], [2, 0, 3], [3, 8, 4])
    >>> r = parse_text(FMT_DIN, b"0 1003\\nx 12\\n", True, a, o, s)
    >>> r[:], hex(a[0]), int(s[0])
    ((1, 7, 1, 0, 7), '0x1000', 4)
    >>> r = parse_text(FMT_PINATRACE, b"0x40: W 0x7ff0\\n#eof\\n0x41: R 0x10\\n", True, a, o, s)
    >>> r[:], r.eof_seen
    ((1, 20, 2, 0, -1), True)
    """
    cdef ParseCounts st
    cdef intp_t nbytes = buf.shape[0]
    cdef intp_t cap = min(addr.shape[0], op.shape[0], size.shape[0])
    cdef const uint8_t* pbuf = NULL
    cdef uint64_t* paddr = NULL
    cdef uint8_t* pop = NULL
    cdef uint16_t* psize = NULL
    cdef int32_t f = fmt
    if fmt < 0 or fmt >= PARSE_FMT_COUNT:
        raise ValueError(f"unknown text format code {fmt} (known: {FORMATS})")
    if nbytes > 0:
        pbuf = &buf[0]
    if cap > 0:
        paddr = &addr[0]
        pop = &op[0]
        psize = &size[0]
    else:
        cap = 0
    with nogil:
        parse_buffer(f, pbuf, nbytes, final, paddr, pop, psize, cap, skip_errors, &st)
    return _result(&st)


def _format_code(fmt):
    if isinstance(fmt, str):
        if fmt not in FORMATS:
            raise ValueError(f"unknown text format {fmt!r} (known: {', '.join(FORMATS)})")
        return FORMATS[fmt]
    code = int(fmt)
    if code < 0 or code >= PARSE_FMT_COUNT:
        raise ValueError(f"unknown text format code {code} (known: {FORMATS})")
    return code


def parse_bytes(fmt, data, bint skip_errors=False):
    """Parse a whole text trace held in memory (``data``: bytes-like) into new columns.

    ``fmt`` is a format name (``"lackey"``, ``"din"``, ``"xdin"``, ``"pinatrace"``) or
    code. Returns ``(addr, op, size, result)``: uint64, uint8 and uint16 arrays of the
    records and the `ParseResult` of the single `parse_text` call with ``final=True``
    (``result.consumed_bytes < len(data)`` only after a pinatrace ``#eof``). A malformed
    line raises ``ValueError`` naming its 1-based line number, unless ``skip_errors``.

    >>> addr, op, size, r = parse_bytes("xdin", b"r 0x10 4\\nw 2000 0x8 comment\\nv 0 0\\n")
    >>> addr.tolist(), op.tolist(), size.tolist(), r.ignored
    ([16, 8192], [0, 1], [4, 8], 1)
    >>> parse_bytes("lackey", b"I  0400d7d4,3\\nI  0400d7d7\\n")
    Traceback (most recent call last):
    ...
    ValueError: line 2: malformed lackey line: b'I  0400d7d7'
    """
    cdef int32_t code = _format_code(fmt)
    cdef const uint8_t[::1] buf = data
    cdef intp_t nbytes = buf.shape[0]
    cdef intp_t i, cap = 1
    cdef const uint8_t* pbuf = NULL
    cdef ParseCounts st
    cdef uint64_t[::1] av
    cdef uint8_t[::1] ov
    cdef uint16_t[::1] sv
    if nbytes > 0:
        pbuf = &buf[0]
        with nogil:
            for i in range(nbytes):
                cap += pbuf[i] == NL
    addr = np.empty(cap, np.uint64)
    op = np.empty(cap, np.uint8)
    size = np.empty(cap, np.uint16)
    av, ov, sv = addr, op, size
    with nogil:
        parse_buffer(code, pbuf, nbytes, True, &av[0], &ov[0], &sv[0], cap, skip_errors,
                     &st)
    if st.err_offset >= 0:
        stop = bytes(buf[st.err_offset:min(nbytes, st.err_offset + 200)]).split(b"\n")[0]
        if stop.endswith(b"\r"):
            stop = stop[:len(stop) - 1]
        raise ValueError(f"line {st.lines + 1}: malformed {FORMAT_NAMES[code]} line: "
                         f"{stop[:80]!r}")
    n = st.n_records
    return addr[:n].copy(), op[:n].copy(), size[:n].copy(), _result(&st)
