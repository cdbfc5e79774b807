#!/usr/bin/env bash
# Record the small real Valgrind lackey traces bundled in pyapi/data/traces/.
#
#   bench/record_traces.sh                 # record all, rewrite MANIFEST.json + README.md
#   bench/record_traces.sh sort gzip       # record only these (others keep their entries)
#
# Each trace is the log stream of `valgrind --tool=lackey --trace-mem=yes`: valgrind's
# `==pid==` banner lines at the top (and the exit summary at the bottom) with the
# I/L/S/M records in between, exactly as lackey wrote them, compressed with `xz -9e`.
# The inputs are generated here from fixed seeds; the programs run with an empty
# environment plus LC_ALL=C, TZ=UTC, PYTHONHASHSEED=0, a fixed PATH and HOME, in a fixed
# work directory, inside a fresh PID namespace when `unshare` is allowed (so the banners
# say ==2== instead of a random pid). Valgrind lays out the guest address space itself,
# so a re-run on the same machine repeats the traces: the windowed ones (python,
# sqlite3) byte for byte; a full run from ld.so's first instruction can differ in a
# few load addresses (a re-run of sort: 2 of 3.1 M lines, a byte-table lookup in ld.so
# on a string near the stack top), never in counts. Keep WORK at its default: the
# working directory's name shifts the initial stack. Another distribution or other
# tool versions give other traces; the manifest then records the new facts.
#
# Environment: PYTHON (default python3; resolved to the real ELF binary), WORK (default
# /tmp/mmucore-record-traces, wiped), OUT (default pyapi/data/traces), CAP (max lines
# per trace, default 6000000), XZ_LEVEL (default -9e; e.g. -0 for trial runs).
set -euo pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$REPO/pyapi/data/traces}
WORK=${WORK:-/tmp/mmucore-record-traces}
CAP=${CAP:-6000000}          # refuse traces longer than this many lines
XZ_LEVEL=${XZ_LEVEL:--9e}    # the committed files use -9e; e.g. XZ_LEVEL=-0 for trial runs

die() { echo "record_traces: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "missing tool: $1"; }
for t in valgrind xz file mawk sha256sum; do need "$t"; done

# Real ELF binaries, never shell shims (pyenv's python3 is a bash script).
resolve_elf() {
    local p
    p=$(readlink -f "$1") || die "cannot resolve $1"
    file -L "$p" | grep -q 'ELF' || die "$1 -> $p is not an ELF binary: $(file -L "$p")"
    printf '%s\n' "$p"
}
PYTHON=${PYTHON:-python3}
PY=$(resolve_elf "$("$PYTHON" -c 'import sys; print(sys.executable)')")
VG_VERSION=$(valgrind --version)

# A PID namespace makes the banner pids fixed (==2==, Parent PID: 1).
if unshare --pid --fork --mount-proc /bin/true 2>/dev/null; then
    NS=(unshare --pid --fork --mount-proc /bin/sh -c '"$@"; exit $?' sh)
else
    echo "record_traces: unshare not permitted; banner pids will vary" >&2
    NS=()
fi
# PYTHONHASHSEED=0: CPython randomizes str hashes (so dict layouts) per run otherwise;
# this is also why the interpreter runs with -s -S rather than -I (which ignores it).
CLEAN_ENV=(env -i LC_ALL=C TZ=UTC PATH=/usr/bin:/bin HOME=/nonexistent PYTHONHASHSEED=0)
LACKEY=(valgrind --tool=lackey --trace-mem=yes)

# WORK is wiped: refuse a non-empty directory this script did not make.
if [[ -d $WORK && -n $(ls -A "$WORK") && ! -e $WORK/.record_traces ]]; then
    die "WORK=$WORK is not empty and not ours"
fi
rm -rf "$WORK"
mkdir -p "$WORK" "$OUT"
: >"$WORK/.record_traces"
cd "$WORK"

# ---------------------------------------------------------------- inputs (fixed seeds)
"$PY" -I -S - <<'PYEOF'
import random
r = random.Random(20260501)
letters = "abcdefghijklmnopqrstuvwxyz"
vocab = ["".join(r.choice(letters) for _ in range(r.randint(2, 10))) for _ in range(800)]

def text(n_lines, lo, hi):
    return "".join(" ".join(r.choice(vocab) for _ in range(r.randint(lo, hi))) + "\n"
                   for _ in range(n_lines))

# sort: random lines of random words
open("lines.txt", "w").write(text(2000, 1, 6))
# gzip and xz: wordy text with some numbers
open("words.txt", "w").write("".join(
    "%s %d\n" % (line, r.randrange(10**6)) for line in text(500, 2, 7).splitlines()))
# awk: word-frequency input
open("corpus.txt", "w").write(text(400, 4, 12))
PYEOF
head -c 16384 words.txt > gzip-input.txt
head -c 2048 words.txt > xz-input.txt

cat > churn.py <<'PYEOF'
# dict/list churn in the real interpreter: pointer-heavy objects spread over the heap.
import os
try:
    os.stat("/mmucore-trace-start")      # the trace window starts at this syscall
except OSError:
    pass
seed = 12345
def rnd():
    global seed
    seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
    return seed
table = {}
rows = []
for i in range(250):
    k = rnd()
    row = [k, str(k), (i, k & 255), {"id": i}, [i] * 32]
    table[k] = row
    rows.append(row)
for row in rows[::2]:
    del table[row[0]]
names = sorted(table.values(), key=lambda r: r[1])
buckets = {}
for row in names:
    buckets.setdefault(row[2][1] & 31, []).append(row[3])
total = sum(len(v) for v in buckets.values())
os._exit(0 if total == len(table) else 1)
PYEOF

cat > queries.sql <<'SQLEOF'
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v TEXT);
BEGIN;
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 200)
INSERT INTO t(k, v) SELECT (i * 7919) % 200, printf('row-%06d-%x', i, i * 2654435761) FROM c;
COMMIT;
CREATE INDEX t_k ON t(k);
SELECT count(*), sum(length(v)) FROM t WHERE k BETWEEN 40 AND 120;
SELECT v FROM t WHERE k = 123;
SQLEOF

# ---------------------------------------------------------------- recording
# record NAME PROGRAM INPUT-DESCRIPTION WINDOW -- ARGV...
#   WINDOW=full: the whole run, --log-file straight to disk.
#   WINDOW=syscall:STRING: the program's start-up (e.g. 37 M lines of CPython
#     initialisation) is dropped: valgrind runs with --trace-syscalls=yes and --log-fd into
#     a pipe, and the filter keeps the leading banner lines, skips everything up to the
#     first syscall line containing STRING (a file name), then keeps every record and
#     banner line to the end; the SYSCALL lines themselves are dropped.
record() {
    local name=$1 program=$2 input=$3 window=$4; shift 5
    local raw="$WORK/$name.lackey" xzf="$OUT/$name.lackey.xz"
    echo "record_traces: $name: $*" >&2
    local t0=$SECONDS
    if [[ $window == full ]]; then
        "${NS[@]}" "${CLEAN_ENV[@]}" "${LACKEY[@]}" --log-file="$raw" "$@" \
            >"$WORK/$name.stdout" 2>"$WORK/$name.stderr"
    else
        { "${NS[@]}" "${CLEAN_ENV[@]}" "${LACKEY[@]}" --trace-syscalls=yes --log-fd=9 "$@" \
              9>&1 >"$WORK/$name.stdout" 2>"$WORK/$name.stderr"; } |
        mawk -v marker="${window#syscall:}" '
            state == 0 && /^==[0-9]+==/ { print; next }
            state == 0 { state = 1 }
            state == 1 { if (/^SYSCALL/ && index($0, marker)) state = 2; next }
            /^(I  | [LSM] )/ || /^==[0-9]+==/ { print }
            END { if (state != 2) { print "marker not found" > "/dev/stderr"; exit 1 } }
        ' >"$raw"
    fi
    local n
    n=$(wc -l <"$raw")
    (( n <= CAP )) || die "$name: $n lines > CAP=$CAP; use a smaller input"
    grep -Eq '^==[0-9]+== Exit code: +0$' "$raw" || die "$name: run did not finish with exit code 0"
    xz "$XZ_LEVEL" -T1 --check=crc64 -c "$raw" >"$xzf"
    echo "record_traces: $name: $n lines, $(stat -c %s "$xzf") bytes xz, $((SECONDS - t0)) s" >&2
    "$PY" -I "$REPO/bench/trace_summary.py" add --manifest "$OUT/MANIFEST.json" \
        --name "$name" --program "$program" --input "$input" --window "$window" \
        --valgrind "$VG_VERSION" --raw "$raw" --xz "$xzf" -- "$@"
}

SELECTED=" $* "
sel() { [[ $SELECTED == "  " || $SELECTED == *" $1 "* ]]; }

PYVER=$("$PY" -I -S -c 'import sys; print(sys.version.split()[0])')
SORT=$(resolve_elf "$(command -v sort)")
GZIP=$(resolve_elf "$(command -v gzip)")
AWK=$(resolve_elf "$(command -v awk)")

if sel python; then
    record python "CPython $PYVER interpreter ($PY)" \
        "churn.py (generated by this script): 250 rows (a list holding an int, a str, a tuple, a dict and a 32-slot list) in a dict keyed by an LCG; delete every other row, sort the rest by their str, regroup them into 32 buckets; os._exit at the end" \
        syscall:/mmucore-trace-start -- "$PY" -s -S churn.py
fi
if sel sort; then
    record sort "$("$SORT" --version | head -1)" \
        "lines.txt: 2000 lines of 1-6 random words from an 800-word vocabulary (Python random seed 20260501)" \
        full -- "$SORT" --parallel=1 --buffer-size=4M -o sorted.txt lines.txt
fi
if sel gzip; then
    record gzip "$("$GZIP" --version | head -1)" \
        "gzip-input.txt: first 16384 bytes of 500 lines of random words plus a random number (seed 20260501)" \
        full -- "$GZIP" -9 -n -c gzip-input.txt
fi
if sel xz; then
    XZ=$(resolve_elf "$(command -v xz)")
    record xz "$("$XZ" --version | head -1)" \
        "xz-input.txt: the first 2048 bytes of gzip-input.txt; -9 = 64 MiB dictionary, BT4 match finder, so its hash tables are touched sparsely" \
        full -- "$XZ" -9 -T1 -c xz-input.txt
fi
if sel sqlite3 && command -v sqlite3 >/dev/null; then
    SQLITE=$(resolve_elf "$(command -v sqlite3)")
    record sqlite3 "SQLite $("$SQLITE" --version | cut -d' ' -f1) shell" \
        "in-memory database; queries.sql: 200 rows inserted by a recursive CTE in one transaction, CREATE INDEX, a range count and a point query through the index" \
        syscall:queries.sql -- "$SQLITE" -batch :memory: ".read queries.sql"
elif sel sqlite3; then
    echo "record_traces: sqlite3 not installed, skipped" >&2
fi
if sel awk; then
    record awk "$("$AWK" -W version 2>&1 | head -1)" \
        "corpus.txt: 400 lines of 4-12 random words (seed 20260501); word-frequency associative array" \
        full -- "$AWK" '{ for (i = 1; i <= NF; i++) count[$i]++ } END { for (w in count) { n++; if (count[w] > 6) f++ } print n, f }' corpus.txt
fi

HOST="$(. /etc/os-release && echo "$PRETTY_NAME")"
[[ -r /etc/debian_version ]] && HOST+=" ($(cat /etc/debian_version))"
HOST+=", $(getconf GNU_LIBC_VERSION)"
command -v dpkg-query >/dev/null && HOST+=" ($(dpkg-query -W -f='${Version}' libc6 2>/dev/null || true))"
HOST+=", $(uname -m)"
"$PY" -I "$REPO/bench/trace_summary.py" readme --manifest "$OUT/MANIFEST.json" --out "$OUT/README.md" \
    --host "$HOST"
echo "record_traces: done; total $(du -cb "$OUT"/*.xz | tail -1 | cut -f1) bytes" >&2
