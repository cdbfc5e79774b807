"""Pure-Python reference of mmucore.parse (the oracle of the differential tests).

Written independently of the Cython kernel, from the rules of docs/traces.md ("Text
formats: exact parsing rules"): the buffer is split into lines, one trailing '\\r' is
dropped from each line, and each line is matched against one regular expression per kind
of line. ``parse_text`` returns exactly what ``mmucore.parse.parse_text`` returns, plus
the records as lists.
"""
import re

LOAD, STORE, IFETCH, MODIFY = 0, 1, 2, 3
FORMATS = {"lackey": 0, "din": 1, "xdin": 2, "pinatrace": 3}

HEX = rb"(?:0[xX])?([0-9a-fA-F]+)"          # value must also fit in 64 bits
PTR = rb"(\(nil\)|(?:0[xX])?[0-9a-fA-F]+)"
BLANK = re.compile(rb"[ \t]*")
# lackey
LK_REC = re.compile(rb"[ \t]*([ILSM])[ \t]+" + HEX + rb"[ \t]*,[ \t]*([0-9]+)[ \t]*")
LK_SB = re.compile(rb"[ \t]*SB[ \t]+" + HEX + rb"[ \t]*")
LK_MSG = re.compile(rb"[ \t]*>*([-=+*?])\1")          # re.match: a prefix
LK_OPS = {b"I": IFETCH, b"L": LOAD, b"S": STORE, b"M": MODIFY}
# din
DIN_REC = re.compile(rb"[ \t]*" + HEX + rb"[ \t]+" + HEX + rb"(?:[ \t].*)?", re.S)
DIN_OPS = {0: LOAD, 1: STORE, 2: IFETCH, 3: LOAD}
# xdin
XDIN_REC = re.compile(rb"[ \t]*([rwimcvRWIMCV])[ \t]+" + HEX + rb"[ \t]+" + HEX
                      + rb"(?:[ \t].*)?", re.S)
XDIN_OPS = {b"r": LOAD, b"w": STORE, b"i": IFETCH, b"m": LOAD}
# pinatrace
PIN_EOF = re.compile(rb"[ \t]*#eof[ \t]*")
PIN_COMMENT = re.compile(rb"[ \t]*#")                  # re.match: a prefix
PIN_REC = re.compile(rb"[ \t]*" + PTR + rb"[ \t]*:[ \t]*([RW])[ \t]+" + PTR
                     + rb"(?:[ \t]+([0-9]+)(?:[ \t].*)?)?[ \t]*", re.S)

REC, SKIP, IGN, EOF, BAD = "rec", "skip", "ignored", "eof", "bad"


def _hex(text):
    v = int(text, 16)
    return v if v < 1 << 64 else None


def _ptr(text):
    return 0 if text == b"(nil)" else _hex(text[2:] if text[:2] in (b"0x", b"0X") else text)


def classify(fmt, line):
    """(kind, record) of one line's content (no '\\n', trailing '\\r' removed)."""
    if BLANK.fullmatch(line):
        return SKIP, None
    if fmt == 0:
        m = LK_REC.fullmatch(line)
        if m:
            a, s = _hex(m.group(2)), int(m.group(3))
            if a is None or s > 0xFFFF:
                return BAD, None
            return REC, (a, LK_OPS[m.group(1)], s)
        m = LK_SB.fullmatch(line)
        if m:
            return (IGN, None) if _hex(m.group(1)) is not None else (BAD, None)
        if LK_MSG.match(line):
            return SKIP, None
        return BAD, None
    if fmt == 1:
        m = DIN_REC.fullmatch(line)
        if not m:
            return BAD, None
        label, a = _hex(m.group(1)), _hex(m.group(2))
        if label is None or a is None or label > 5:
            return BAD, None
        if label >= 4:
            return IGN, None
        return REC, (a & ~3, DIN_OPS[label], 4)
    if fmt == 2:
        m = XDIN_REC.fullmatch(line)
        if not m:
            return BAD, None
        kind, a, s = m.group(1).lower(), _hex(m.group(2)), _hex(m.group(3))
        if a is None or s is None or s > 0xFFFF:
            return BAD, None
        if kind in (b"c", b"v"):
            return IGN, None
        return REC, (a, XDIN_OPS[kind], s)
    if fmt == 3:
        if PIN_EOF.fullmatch(line):
            return EOF, None
        if PIN_COMMENT.match(line):
            return SKIP, None
        m = PIN_REC.fullmatch(line)
        if not m:
            return BAD, None
        ip, a = _ptr(m.group(1)), _ptr(m.group(3))
        s = int(m.group(4)) if m.group(4) is not None else 0
        if ip is None or a is None or s > 0xFFFF:
            return BAD, None
        return REC, (a, LOAD if m.group(2) == b"R" else STORE, s)
    raise ValueError(f"unknown format code {fmt}")


def parse_text(fmt, buf, final, cap, skip_errors=False):
    """Returns ``(records, (n_records, consumed, lines, skipped, err_offset),
    eof_seen, ignored)`` with the semantics of ``mmucore.parse.parse_text`` for output
    columns of capacity ``cap``; records are ``(addr, op, size)`` tuples."""
    buf = bytes(buf)
    records, lines, skipped, ignored, eof = [], 0, 0, 0, False
    pos, err = 0, -1
    while pos < len(buf):
        if len(records) >= cap:
            break
        nl = buf.find(b"\n", pos)
        if nl < 0:
            if not final:
                break
            content, nxt = buf[pos:], len(buf)
        else:
            content, nxt = buf[pos:nl], nl + 1
        if content.endswith(b"\r"):
            content = content[:-1]
        kind, rec = classify(fmt, content)
        if kind == BAD:
            if not skip_errors:
                err = pos
                break
            skipped += 1
        elif kind == REC:
            records.append(rec)
        elif kind == IGN:
            ignored += 1
        lines += 1
        pos = nxt
        if kind == EOF:
            eof = True
            break
    return records, (len(records), pos, lines, skipped, err), eof, ignored
