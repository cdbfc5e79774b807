# The text-trace parser's public cimport surface.
#
# One kernel parses the complete lines of a byte buffer of lackey, din, xdin or
# pinatrace text into the trace columns addr/op/size (DESIGN section 3), without the GIL
# and without touching Python objects. docs/traces.md ("Text formats: exact parsing
# rules") is the statement of what it accepts; tests/reference_parse.py is the oracle.
from mmucore._types cimport uint8_t, uint16_t, int32_t, uint64_t, intp_t

cdef enum:
    PARSE_ABI_VERSION = 1       # bumped with every change of ParseCounts or a kernel signature
    PARSE_FMT_LACKEY = 0        # Valgrind lackey --trace-mem=yes
    PARSE_FMT_DIN = 1           # Dinero IV traditional din (-informat d)
    PARSE_FMT_XDIN = 2          # Dinero IV extended din (-informat D)
    PARSE_FMT_PINATRACE = 3     # Pin pinatrace (ManualExamples and SimpleExamples)
    PARSE_FMT_COUNT = 4

# What one call did. Offsets are in bytes from the start of the buffer.
cdef struct ParseCounts:
    intp_t n_records        # records written to addr/op/size[0:n_records]
    intp_t consumed         # bytes consumed: the end of a whole line
    intp_t lines            # lines consumed (records, skipped, blank, banner, comment lines)
    intp_t skipped          # malformed lines skipped (skip_errors only)
    intp_t err_offset       # -1, or the start of the first malformed line (not skip_errors)
    intp_t ignored          # well-formed lines that are not accesses (lackey SB, din 4/5, xdin c/v)
    intp_t eof_seen         # 1 when a pinatrace '#eof' line ended the trace (parsing stopped)

# Parse the complete lines of buf[0:nbytes] (and, when `final`, a last line without
# '\n') into addr/op/size[0:...], at most `cap` records, from index 0. Fills *out.
# Returns 0, or -1 (and touches nothing) when fmt is not a PARSE_FMT_* value.
# Never reads outside buf[0:nbytes] nor writes outside the columns' first `cap` slots.
cdef int parse_buffer(int32_t fmt, const uint8_t* buf, intp_t nbytes, bint final,
                      uint64_t* addr, uint8_t* op, uint16_t* size, intp_t cap,
                      bint skip_errors, ParseCounts* out) noexcept nogil
