"""coreexplain's helpers inside gdb (13 or later).

    $ coreexplain gdb CORE [BINARY]       (or coreexplain gdb attach PID)
    (gdb) source /path/to/dlvext/gdb/coreexplain.py
    (gdb) ce gm | ce errno [TID] | ce explain [REPORT.json] | ce slicecheck EXPR | ce addrinfo ADDR

`coreexplain gdb` analyses the core, writes this file and the report into the user's cache and
starts gdb with both loaded (`ce explain REPORT`). By hand, source this file by its path from
any directory: it is whole and loads no other file.

On a core, what only coreexplain knows - the signal behind the Go runtime's re-raise, the
findings, each thread's errno slot, what is at an address - comes from running coreexplain
on the core (`coreexplain --json`, `addr --json`, `slice --json`), found on PATH, in
$COREEXPLAIN or in `set coreexplain-path FILE`; its reports are cached per core.

On a live process (gdb -p PID) gdb holds the ptrace attachment, so coreexplain cannot read the
process. The commands then compute what they need through gdb: Ms and goroutines from
runtime.allm, each thread's errno slot by running __errno_location's few instructions on the
thread's registers and memory (read, never executed: gdb's own `p errno` needs libthread_db,
which musl does not have), the Go heap from runtime.mheap_, the memory map from /proc. Only
`ce explain` needs coreexplain's rules; on a live process it writes a core with
generate-core-file to a temporary directory first, which takes a while (gdb dumps the Go
runtime's address-space reservations too), so it says so and removes the core afterwards.
"""

import errno as _errno
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile

import gdb

# Bounds for walking target memory, which may be damaged.
MAX_MS = 4096
MAX_GS = 1 << 20
MAX_PIECES = 64
MAX_FRAMES = 64
RUN_TIMEOUT = 600  # seconds one coreexplain run may take

# g.atomicstatus values (runtime/runtime2.go; 10 and 11 added in Go 1.26).
GSTATES = ["idle", "runnable", "running", "syscall", "waiting", "moribund", "dead",
           "enqueue", "copystack", "preempted", "leaked", "deadextra"]

# Frames that are the runtime's, cgo's or the C library's, not the program's.
NOT_USER = ("runtime.", "runtime/", "internal/", "syscall.", "crosscall", "_cgo_", "x_cgo_", "__")


class CoreexplainPath(gdb.Parameter):
    """The coreexplain executable the ce commands run (default: $COREEXPLAIN, else PATH)."""

    set_doc = "Set the coreexplain executable the ce commands run."
    show_doc = "Show the coreexplain executable the ce commands run."

    def __init__(self):
        super().__init__("coreexplain-path", gdb.COMMAND_DATA, gdb.PARAM_OPTIONAL_FILENAME)
        self.value = os.environ.get("COREEXPLAIN", "")

    def get_set_string(self):
        return ""

    def get_show_string(self, svalue):
        return svalue or "(not set: $COREEXPLAIN, else coreexplain on PATH)"


_path_param = CoreexplainPath()


def coreexplain():
    path = _path_param.value or shutil.which("coreexplain")
    if not path:
        raise gdb.GdbError("coreexplain not found: put it on PATH, set $COREEXPLAIN, or `set coreexplain-path FILE`")
    return path


# An inherited descriptor named as a file: `coreexplain gdb` on a compressed
# core hands gdb the decompressed copy that way (/proc/self/fd/N, or
# /dev/fd/N on darwin).
INHERITED = re.compile(r"^/(?:proc/self/fd|dev/fd)/(\d+)$")


def run_coreexplain(args):
    """Runs coreexplain and returns its decoded JSON output."""
    cmd = [coreexplain()] + args
    # An inherited core is passed on under the same number, so that its
    # name means the same file in coreexplain.
    fds = tuple(int(m.group(1)) for m in (INHERITED.match(a) for a in args) if m)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT, pass_fds=fds)
    except subprocess.TimeoutExpired:
        raise gdb.GdbError("%s: no answer within %d s" % (" ".join(cmd), RUN_TIMEOUT))
    if out.returncode != 0:
        raise gdb.GdbError(out.stderr.strip() or "%s: exit status %d" % (" ".join(cmd), out.returncode))
    return json.loads(out.stdout)


# ---- the target

class Target:
    """What gdb is looking at: a core (path, exe) or a live process (pid, exe)."""

    def __init__(self):
        inf = gdb.selected_inferior()
        if not inf.pid:
            raise gdb.GdbError("no process: load a core (gdb BINARY CORE) or attach (gdb -p PID)")
        self.inf = inf
        self.exe = inf.progspace.filename
        self.pid = inf.pid
        self.core = None
        info = gdb.execute("info target", to_string=True)
        m = re.search(r"Local core dump file:\s*`([^']+)'", info)
        if m:
            self.core = m.group(1)

    @property
    def live(self):
        return self.core is None

    def key(self):
        if self.core:
            st = os.stat(self.core)
            return ("core", self.core, st.st_mtime_ns, st.st_size)
        return ("live", self.pid)


_reports = {}    # Target.key() -> report loaded with `ce explain FILE` or computed
_selected = {}   # Target.key() -> goroutine selected by `ce explain`


def report(t, required):
    """coreexplain's report on the target: loaded, cached, or (for a core) computed now."""
    k = t.key()
    if k in _reports:
        return _reports[k]
    if t.live:
        if required:
            raise gdb.GdbError("a live process has no report yet: `ce explain` makes one, or load one with "
                               "`ce explain REPORT.json` (coreexplain attach --json PID, taken before gdb attached)")
        return None
    args = ["--json", t.core]
    if t.exe:
        args.append(t.exe)
    _reports[k] = run_coreexplain(args)
    return _reports[k]


def live_report(t):
    """Writes a core of the live process and runs coreexplain on it."""
    d = tempfile.mkdtemp(prefix="coreexplain-gdb-")
    core = os.path.join(d, "core.%d" % t.pid)
    try:
        print("writing a core of process %d with generate-core-file for coreexplain (gdb dumps every "
              "mapping, the Go runtime's reservations too: this takes a while)..." % t.pid)
        gdb.execute("generate-core-file " + core, to_string=True)
        return run_coreexplain(["--json", core] + ([t.exe] if t.exe else []))
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- memory and Go values

def inferior():
    return gdb.selected_inferior()


def read(addr, n):
    return bytes(inferior().read_memory(addr, n))


def u64(addr):
    return struct.unpack("<Q", read(addr, 8))[0]


def readable(addr):
    try:
        read(addr, 1)
        return True
    except gdb.MemoryError:
        return False


def val(expr):
    return gdb.parse_and_eval(expr)


def user_val(expr):
    """Evaluates a user's expression. gdb's Go parser resolves pkg.Var only once the
    package's symbols are loaded, so a leading package-qualified global is quoted for it
    ('main.pending'.body) when the expression as written fails."""
    try:
        return gdb.parse_and_eval(expr)
    except gdb.error:
        m = re.match(r"[&*(]*([\w./-]+)", expr)
        if not m:
            raise
        parts = m.group(1).split(".")
        for k in range(len(parts), 1, -1):
            name = ".".join(parts[:k])
            if gdb.lookup_global_symbol(name) or gdb.lookup_static_symbol(name):
                rest = m.group(1)[len(name):]
                return gdb.parse_and_eval(expr[:m.start(1)] + "'%s'" % name + rest + expr[m.end(1):])
        raise


def glob(name):
    """A Go global ('runtime.allm' needs quoting for gdb's parser)."""
    return val("'%s'" % name)


def const(name):
    return int(glob(name))


def gptr(addr, typ):
    return gdb.Value(addr).cast(gdb.lookup_type(typ).pointer()).dereference()


def ms():
    """Every M on runtime.allm, bounded and cycle-checked."""
    out, seen = [], set()
    m = glob("runtime.allm")
    for _ in range(MAX_MS):
        a = int(m)
        if not a or a in seen:
            break
        seen.add(a)
        out.append({"addr": a, "id": int(m["id"]), "procid": int(m["procid"]), "curg": int(m["curg"]),
                    "lockedg": int(m["lockedg"]), "caughtsig": int(m["caughtsig"]),
                    "throwing": int(m["throwing"]), "dying": int(m["dying"]), "incgo": bool(m["incgo"])})
        m = m["alllink"]
    return out


def goroutine(addr):
    g = gptr(addr, "runtime.g")
    st = int(g["atomicstatus"]["value"])
    return {"addr": addr, "goid": int(g["goid"]), "state": gstate(st)}


def gstate(st):
    s = GSTATES[st & 0xfff] if (st & 0xfff) < len(GSTATES) else str(st)
    return s + "+scan" if st & 0x1000 else s


def crashing_m(mlist):
    """The M that is dying (running the runtime's crash); the Ms the crash sent SIGQUIT to are
    "throwing" too, so throwing decides only when no M is dying."""
    for m in mlist:
        if m["dying"] > 0:
            return m
    for m in mlist:
        if m["throwing"] > 0 and m["caughtsig"]:
            return m
    return None


def thread_state(m):
    if m is None:
        return "non-Go thread"
    if not m["curg"]:
        return "idle M"
    s = goroutine(m["curg"])["state"]
    if m["incgo"]:
        s += ", in C (cgo call)"
    if m["lockedg"]:
        s += ", locked"
    return s


def go_runtime():
    """The Ms, or None with the reason when the binary has no Go runtime gdb can read."""
    try:
        return ms(), None
    except gdb.error as e:
        return None, "the Go runtime is not readable through gdb (%s): a stripped or non-Go binary" % e


# ---- threads

class Selection:
    """Restores the user's thread and frame after the commands switch threads."""

    def __enter__(self):
        self.thread = gdb.selected_thread()
        try:
            self.frame = gdb.selected_frame()
        except gdb.error:
            self.frame = None
        return self

    def __exit__(self, *exc):
        if self.thread is not None and self.thread.is_valid():
            self.thread.switch()
            if self.frame is not None and self.frame.is_valid():
                self.frame.select()
        return False


def threads():
    return sorted(inferior().threads(), key=lambda th: th.ptid[1])


def reg(name):
    return int(val("$" + name)) & (1 << 64) - 1


def where(frame):
    name = frame.name() or "?"
    sal = frame.find_sal()
    if sal.symtab:
        name += " %s:%d" % (os.path.basename(sal.symtab.filename), sal.line)
    return name


def table(rows):
    # gdb prints a warning's "warning: " at once but keeps its text in the
    # stderr buffer (e.g. "Section `.reg-xstate/N' in core file too small",
    # when a thread's registers are first read): flushed here, it lands
    # before the table instead of inside one of its lines.
    gdb.flush(gdb.STDERR)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join([r[i].ljust(widths[i]) for i in range(len(r) - 1)] + [r[-1]]).rstrip())


def hexs(n):
    return "0x%x" % n


def errno_name(v):
    return _errno.errorcode.get(v, "") if v > 0 else ""


def is_user(name):
    if not name or name == "?" or "._Cfunc_" in name or "._cgo_" in name:
        return False
    return not name.startswith(NOT_USER)


# ---- ce gm

def cmd_gm(t, arg):
    mlist, why = go_runtime()
    if mlist is None:
        raise gdb.GdbError(why)
    byproc = {m["procid"]: m for m in mlist}
    crash = crashing_m(mlist)
    rows = [["TID", "TP", "M", "G", "STATE", "", "WHERE"]]
    with Selection():
        for th in threads():
            th.switch()
            tid = th.ptid[1]
            m = byproc.get(tid)
            g = goroutine(m["curg"]) if m and m["curg"] else None
            rows.append([str(tid), hexs(reg("fs_base")), str(m["id"]) if m else "-", str(g["goid"]) if g else "-",
                         thread_state(m), "crashing" if crash and m and m["addr"] == crash["addr"] else "",
                         where(gdb.newest_frame())])
    table(rows)
    tids = {th.ptid[1] for th in threads()}
    orphans = ["m%d (procid %d)" % (m["id"], m["procid"]) for m in mlist if m["procid"] not in tids]
    if orphans:
        print("Ms with no thread in the process (extra Ms for cgo callbacks, exited threads): " + ", ".join(orphans))


# ---- ce errno

def errno_location_slot(fn, fs):
    """The errno address __errno_location returns on a thread whose thread pointer is fs,
    from its code: glibc `mov GOT(%rip),%rax; add %fs:0,%rax; ret`, musl `mov %fs:0,%rax;
    add $off,%rax; ret`. None for any other code."""
    code = read(fn, 48)
    rax, i = None, 0
    for _ in range(8):
        c = code[i:]
        if c[:4] == b"\xf3\x0f\x1e\xfa":  # endbr64
            i += 4
        elif c[:5] == b"\x64\x48\x8b\x04\x25":  # mov %fs:d32,%rax
            rax = u64(fs + struct.unpack("<i", c[5:9])[0])
            i += 9
        elif c[:5] == b"\x64\x48\x03\x04\x25" and rax is not None:  # add %fs:d32,%rax
            rax += u64(fs + struct.unpack("<i", c[5:9])[0])
            i += 9
        elif c[:3] == b"\x48\x8b\x05":  # mov d32(%rip),%rax
            rax = u64(fn + i + 7 + struct.unpack("<i", c[3:7])[0])
            i += 7
        elif c[:3] == b"\x48\x83\xc0" and rax is not None:  # add $i8,%rax
            rax += struct.unpack("<b", c[3:4])[0]
            i += 4
        elif c[:2] == b"\x48\x05" and rax is not None:  # add $i32,%rax
            rax += struct.unpack("<i", c[2:6])[0]
            i += 6
        elif c[:3] == b"\x48\x8d\x40" and rax is not None:  # lea d8(%rax),%rax
            rax += struct.unpack("<b", c[3:4])[0]
            i += 4
        elif c[:3] == b"\x48\x8d\x80" and rax is not None:  # lea d32(%rax),%rax
            rax += struct.unpack("<i", c[3:7])[0]
            i += 7
        elif c[:1] == b"\xc3":
            return rax & (1 << 64) - 1 if rax is not None else None
        else:
            return None
    return None


def errno_slots(t):
    """{tid: (slot, value in the report or None, note)}: coreexplain's slots for a core, else
    what __errno_location's code computes on each thread."""
    out = {}
    r = None
    if not t.live:
        try:
            r = report(t, True)
        except gdb.GdbError as e:
            print("(%s: running __errno_location's code instead)" % e)
    if r is not None:
        for th in r.get("threads") or []:
            e = th.get("errno")
            if e:
                out[th["tid"]] = (int(e["addr"], 16), e["value"], e.get("note", ""))
        if out:
            return out
        print("(coreexplain reports no errno slots: running __errno_location's code instead)")
    try:
        fn = int(val("__errno_location").address)
    except gdb.error:
        raise gdb.GdbError("no __errno_location in the process: no C library, or its symbols are stripped")
    with Selection():
        for th in threads():
            th.switch()
            slot = errno_location_slot(fn, reg("fs_base"))
            out[th.ptid[1]] = (slot, None, "" if slot else "__errno_location at %s has code this decoder does not know" % hexs(fn))
    return out


def cmd_errno(t, arg):
    only = int(arg, 0) if arg.strip() else None
    slots = errno_slots(t)
    mlist, _ = go_runtime()
    byproc = {m["procid"]: m for m in mlist or []}
    rows = [["TID", "M", "SLOT", "VALUE", "NAME", "NOTE"]]
    for th in threads():
        tid = th.ptid[1]
        if only is not None and tid != only:
            continue
        m = byproc.get(tid)
        mid = "m%d" % m["id"] if m else "-"
        slot, rvalue, note = slots.get(tid, (None, None, "no errno slot known for this thread"))
        if not slot:
            rows.append([str(tid), mid, "?", "?", "", note])
            continue
        try:
            v = struct.unpack("<i", read(slot, 4))[0]
        except gdb.MemoryError as e:
            rows.append([str(tid), mid, hexs(slot), "?", "", "unreadable: %s" % e])
            continue
        if rvalue is not None and rvalue != v:
            note = "coreexplain read %d here" % rvalue + ("; " + note if note else "")
        rows.append([str(tid), mid, hexs(slot), str(v), errno_name(v), note])
    table(rows)


# ---- ce explain

def report_story(r, t):
    p = r.get("process") or {}
    print("coreexplain report on %s (pid %d)" % (p.get("exe", "?"), p.get("pid", 0)))
    if p.get("pid") != t.pid:
        print("  note: the report is about process %d, the target is process %d: findings, addresses and errno "
              "slots may not apply" % (p.get("pid", 0), t.pid))
    s = r.get("signal")
    if s:
        line = "signal: %s (%s)" % (s["name"], s.get("code", ""))
        if s.get("addr"):
            line += " at address " + s["addr"]
        if s.get("pc"):
            line += ", pc " + s["pc"]
        if s.get("function"):
            line += " in " + s["function"]
        print(line + " [" + s.get("source", "") + "]")
        if s.get("reraised"):
            print("  the core itself records %s (%s): the Go runtime re-raised to dump core"
                  % (s["reraised"]["name"], s["reraised"]["code"]))
    c = r.get("crash")
    if c:
        m = c.get("m")
        print("crash site: thread %d, M %s, goroutine %s%s" % (c["tid"], m if m is not None else "-",
              c.get("goroutine") or "-", ", in C (cgo)" if c.get("in_cgo") else ""))
        for f in [f for f in (c.get("frames") or []) if not f.get("plumbing")][:8]:
            print("  " + loc_where(f))
    fs = r.get("findings") or []
    if not fs:
        print("findings: none")
    for i, f in enumerate(fs):
        print("%d. [%s, %s] %s" % (i + 1, f["class"], f.get("confidence", ""), f["summary"]))
        loc = f.get("location")
        if loc and loc.get("function"):
            print("   at " + loc_where(loc))
        for e in (f.get("evidence") or [])[:6]:
            print("   - " + e["what"] + (" (" + e["source"] + ")" if e.get("source") else ""))
    for th in r.get("threads") or []:
        e = th.get("errno")
        if e and e.get("note"):
            print("errno of thread %d: %d %s: %s" % (th["tid"], e["value"], e.get("name", ""), e["note"]))
    for n in r.get("notes") or []:
        print("note: " + n)


def loc_where(loc):
    s = loc["function"]
    if loc.get("file"):
        s += " %s:%d" % (os.path.basename(loc["file"]), loc.get("line", 0))
    return s


def crash_site(r):
    """(tid, goroutine, function) of the crash, from the finding that is the cause."""
    loc = {}
    for f in r.get("findings") or []:
        lo = f.get("location") or {}
        if lo and (not loc or f.get("cause")):
            loc = lo
            if f.get("cause"):
                break
    c = r.get("crash") or r.get("stopped") or {}  # "stopped": a live snapshot's thread stopped first
    return c.get("tid") or loc.get("tid") or 0, c.get("goroutine") or loc.get("goroutine") or 0, loc.get("function", "")


def select(tid, fn):
    """Selects thread tid and its frame running fn, else its first user frame."""
    th = next((x for x in threads() if x.ptid[1] == tid), None)
    if th is None:
        print("thread %d is not in this process" % tid)
        return
    th.switch()
    frames, f = [], gdb.newest_frame()
    while f is not None and len(frames) < MAX_FRAMES:
        frames.append(f)
        try:
            f = f.older()
        except gdb.error:
            break
    pick = next((f for f in frames if fn and f.name() == fn), None) or next((f for f in frames if is_user(f.name())), None)
    if pick is None:
        print("selected thread %d (gdb #%d); gdb does not unwind its stack to %s (Go's system stack and "
              "signal frames): ce slicecheck evaluates there through coreexplain" % (tid, th.num, fn or "a user frame"))
        return
    pick.select()
    print("selected thread %d (gdb #%d) frame %d: %s" % (tid, th.num, pick.level(), where(pick)))


def cmd_explain(t, arg):
    path = arg.strip()
    if path:
        with open(os.path.expanduser(path)) as f:
            r = json.load(f)
        if r.get("schema") != "coreexplain/v1":
            raise gdb.GdbError("%s is not a coreexplain report (schema coreexplain/v1)" % path)
        _reports[t.key()] = r
    elif t.live:
        r = _reports.get(t.key()) or live_report(t)
        _reports[t.key()] = r
    else:
        r = report(t, True)
    report_story(r, t)
    tid, g, fn = crash_site(r)
    if not tid:
        mlist, _ = go_runtime()
        m = crashing_m(mlist or [])
        if m:
            tid = m["procid"]
            g = g or (goroutine(m["curg"])["goid"] if m["curg"] else 0)
    _selected[t.key()] = g
    if tid:
        select(tid, fn)


# ---- memory classification for a live process, as the Delve helpers do it

class Space:
    """Classifies addresses of a live process: its Go heap through runtime.mheap_, goroutine
    stacks through runtime.allgs, everything else through /proc/PID/maps."""

    def __init__(self, t):
        self.maps = []
        with open("/proc/%d/maps" % t.pid) as f:
            for line in f:
                fs = line.split()
                a, b = (int(x, 16) for x in fs[0].split("-"))
                self.maps.append({"start": a, "end": b, "perm": fs[1][:3], "file": fs[5] if len(fs) > 5 else ""})
        try:
            self.heap = {k: const("runtime." + v) for k, v in (
                ("base", "arenaBaseOffsetUintptr"), ("log", "logHeapArenaBytes"), ("l1", "arenaL1Bits"),
                ("l2", "arenaL2Bits"), ("page", "pageSize"), ("ppa", "pagesPerArena"),
                ("inuse", "mSpanInUse"), ("manual", "mSpanManual"))}
            self.heap["base"] &= (1 << 64) - 1
        except gdb.error:
            self.heap = None
        self._gs = None

    def map_of(self, a):
        return next((m for m in self.maps if m["start"] <= a < m["end"]), None)

    def classify(self, a):
        """{"kind", "what", "dangling", "end"}; end is where the answer stops holding."""
        if self.heap:
            h = self.heap
            ri = ((a - h["base"]) % (1 << 64)) >> h["log"]
            if ri < 1 << (h["l1"] + h["l2"]):
                arena = int(glob("runtime.mheap_")["arenas"][ri >> h["l2"]].dereference()[ri & ((1 << h["l2"]) - 1)])
                if arena:
                    span = int(gptr(arena, "runtime.heapArena")["spans"][(a // h["page"]) % h["ppa"]])
                    return self.heap_span(a, span)
        return self.mapping(a)

    def heap_span(self, a, s):
        h = self.heap
        page_end = (a // h["page"] + 1) * h["page"]
        if not s:
            return {"kind": "go-heap-unused", "what": "Go heap arena, page never used by a span", "dangling": True,
                    "end": page_end}
        sp = gptr(s, "runtime.mspan")
        start, state = int(sp["startAddr"]), int(sp["state"]["s"]["value"])
        end = start + int(sp["npages"]) * h["page"]
        span = "span %s-%s" % (hexs(start), hexs(end))
        if not start <= a < end or state not in (h["inuse"], h["manual"]):
            return {"kind": "go-heap-free", "what": "Go heap, free pages (no span in use holds it; %s is stale)" % span,
                    "dangling": True, "end": page_end}
        if state == h["manual"]:
            return self.stack(a, span, end)
        elem, limit = int(sp["elemsize"]), int(sp["limit"]) or end
        if a >= limit:
            return {"kind": "go-heap-tail", "what": "Go heap, %s past its last object" % span, "dangling": True, "end": end}
        idx = (a - start) // elem
        obj = start + idx * elem
        bits = int(sp["allocBits"])
        allocated = idx < int(sp["freeindex"]) or bool(bits and read(bits + idx // 8, 1)[0] >> (idx % 8) & 1)
        what = "Go heap object %s+%s (slot %d of %d, %d-byte elements) in %s, %s" % (
            hexs(obj), hexs(a - obj), idx, int(sp["nelems"]), elem, span, "allocated" if allocated else "FREE (not allocated)")
        return {"kind": "go-heap" if allocated else "go-heap-freed", "what": what, "dangling": not allocated, "end": obj + elem}

    def allgs(self):
        if self._gs is None:
            gs = glob("runtime.allgs")
            n = min(int(gs["len"]), MAX_GS)
            base = int(gs["array"])
            raw = read(base, 8 * n) if n else b""
            self._gs = list(struct.unpack("<%dQ" % n, raw))
        return self._gs

    def stack(self, a, span, end):
        for g in self.allgs():
            if not g:
                continue
            lo, hi = struct.unpack("<QQ", read(g, 16))
            if not lo <= a < hi:
                continue
            gi = goroutine(g)
            sp, src = self.g_sp(gi)
            what = "goroutine %d's stack %s-%s (%s)" % (gi["goid"], hexs(lo), hexs(hi), gi["state"])
            if sp is None:
                return {"kind": "go-stack", "what": what, "dangling": False, "end": hi}
            if a < sp:
                return {"kind": "go-stack-dead", "what": what + ", below its sp %s (%s): a dead frame" % (hexs(sp), src),
                        "dangling": True, "end": sp}
            return {"kind": "go-stack", "what": what + ", live part (sp %s, %s)" % (hexs(sp), src), "dangling": False,
                    "end": hi}
        return {"kind": "go-stack-unowned", "what": "stack %s that no goroutine owns: freed or moved by stack growth" % span,
                "dangling": True, "end": end}

    def g_sp(self, g):
        gv = gptr(g["addr"], "runtime.g")
        if g["state"].startswith("syscall"):
            return int(gv["syscallsp"]), "g.syscallsp"
        if g["state"].startswith("running"):
            m = next((m for m in ms() if m["curg"] == g["addr"]), None)
            th = next((x for x in threads() if m and x.ptid[1] == m["procid"]), None)
            if th is None:
                return None, ""
            with Selection():
                th.switch()
                return reg("rsp"), "rsp of thread %d" % th.ptid[1]
        return int(gv["sched"]["sp"]), "g.sched.sp"

    def mapping(self, a):
        if a < 0x1000:
            return {"kind": "null-page", "what": "the null page: a nil pointer plus %s" % hexs(a), "dangling": True, "end": 0x1000}
        m = self.map_of(a)
        if m is None:
            below = [x for x in self.maps if x["end"] <= a]
            above = [x for x in self.maps if x["start"] > a]
            what = "not mapped"
            if below:
                what += "; %s bytes past the end of %s" % (hexs(a - below[-1]["end"]), describe_map(below[-1]))
            if above:
                what += "; %s bytes below %s" % (hexs(above[0]["start"] - a), describe_map(above[0]))
            return {"kind": "unmapped", "what": what, "dangling": True, "end": above[0]["start"] if above else a + 1}
        what = "mapped: " + describe_map(m)
        if m["perm"] == "---":
            what += " (no access: a guard page or a reservation)"
        sym = gdb.execute("info symbol %d" % a, to_string=True).strip()
        if not sym.startswith("No symbol"):
            what += "; " + sym
        return {"kind": "mapped", "what": what, "dangling": m["perm"] == "---", "end": m["end"]}


def describe_map(m):
    s = "%s-%s %s" % (hexs(m["start"]), hexs(m["end"]), m["perm"])
    return s + " " + m["file"] if m["file"] else s


# ---- ce slicecheck and ce addrinfo

def slice_value(expr):
    """(value, data, len, cap, elem type) of a slice or *[N]T expression gdb can evaluate."""
    v = user_val(expr)
    ty = v.type.strip_typedefs()
    if ty.code == gdb.TYPE_CODE_PTR and ty.target().strip_typedefs().code == gdb.TYPE_CODE_ARRAY:
        at = ty.target().strip_typedefs()
        n = at.range()[1] + 1
        return v, int(v), n, n, at.target()
    names = [f.name for f in ty.fields()] if ty.code == gdb.TYPE_CODE_STRUCT else []
    if names[:3] != ["array", "len", "cap"]:
        raise gdb.GdbError("%s has type %s, not a slice or a pointer to an array" % (expr, v.type))
    return v, int(v["array"]), int(v["len"]), int(v["cap"]), ty.fields()[0].type.target()


def cmd_slicecheck(t, arg):
    expr = arg.strip()
    if not expr:
        raise gdb.GdbError("usage: ce slicecheck EXPR")
    if t.live:
        return slicecheck_live(t, expr)
    # On a core the check is coreexplain's: gdb finds the header when it can evaluate expr
    # to memory; otherwise coreexplain evaluates expr in the crashing goroutine's frames.
    spec, args = expr, []
    try:
        v = user_val(expr)
        if v.address is not None and v.type.name and v.type.name.startswith("[]"):
            spec = "%s:%s" % (hexs(int(v.address)), v.type.name[2:])
    except gdb.error:
        pass
    g = _selected.get(t.key())
    if spec == expr and g:
        args = ["--goroutine", str(g)]
    sl = run_coreexplain(["slice", "--json"] + args + [t.core] + ([t.exe] if t.exe else []) + [spec])
    where = "frame %d, %s" % (sl["frame"], sl["function"]) if spec == expr else "header found by gdb"
    print("%s %s (%s)" % (expr, sl["type"], where))
    hdr = "header at " + sl["header"] if sl.get("header") else "header in registers"
    print("  %s: data %s, len %d, cap %d; %d-byte %s elements" % (hdr, sl["data"], sl["len"], sl["cap"],
                                                                  sl["elem_size"], sl["elem_type"]))
    if sl.get("ranges"):
        print("  backing array %s-%s:" % (sl["data"], sl["ranges"][-1]["end"]))
        for r in sl["ranges"]:
            print("    %s-%s  %s: %s" % (r["start"], r["end"], r["region"]["kind"], r["region"]["summary"]))
    for p in sl.get("problems") or []:
        print("  problem: " + p)
    if sl.get("confusion"):
        print("  suspicious: " + sl["confusion"])
    if sl.get("dangling"):
        print("  DANGLING: " + sl["dangling_why"])
    elif not sl.get("problems") and not sl.get("confusion"):
        print("  ok: the header is consistent and the backing array is valid memory")


def slicecheck_live(t, expr):
    v, data, length, capacity, elem = slice_value(expr)
    esize = elem.sizeof
    hdr = "header at %s" % hexs(int(v.address)) if v.address is not None else "header in registers"
    f = gdb.selected_frame()
    print("%s %s (frame %d, %s)" % (expr, v.type, f.level(), where(f)))
    print("  %s: data %s, len %d, cap %d; %d-byte %s elements" % (hdr, hexs(data), length, capacity, esize, elem))
    problems = []
    if length > capacity:
        problems.append("len %d > cap %d: not a valid slice header" % (length, capacity))
    if data == 0:
        if capacity:
            problems.append("nil data pointer with cap %d" % capacity)
        for p in problems:
            print("  problem: " + p)
        if not problems:
            print("  ok: a nil slice")
        return
    sp, end, a, dangling = Space(t), data + max(capacity * esize, 1), data, ""
    print("  backing array %s-%s:" % (hexs(data), hexs(end)))
    for _ in range(MAX_PIECES):
        if a >= end:
            break
        r = sp.classify(a)
        nxt = min(max(r["end"], a + 1), end)
        print("    %s-%s  %s" % (hexs(a), hexs(nxt), r["what"]))
        if r["dangling"] and not dangling:
            dangling = "bytes %s-%s of the backing array: %s" % (hexs(a - data), hexs(nxt - data), r["kind"])
        a = nxt
    if a < end:
        problems.append("backing array classified only up to " + hexs(a))
    for p in problems:
        print("  problem: " + p)
    if dangling:
        print("  DANGLING: " + dangling)
    elif not problems:
        print("  ok: the header is consistent and the backing array is valid memory")


def cmd_addrinfo(t, arg):
    if not arg.strip():
        raise gdb.GdbError("usage: ce addrinfo ADDR")
    a = int(user_val(arg)) & (1 << 64) - 1
    if t.live:
        r = Space(t).classify(a)
        print("%s  %s" % (hexs(a), r["kind"]))
        print("  " + r["what"])
        if r["dangling"]:
            print("  DANGLING: nothing valid lives here")
        return
    regions = run_coreexplain(["addr", "--json", t.core] + ([t.exe] if t.exe else []) + [hexs(a)])
    for r in regions:
        print("%s  %s" % (r["addr"], r["kind"]))
        print("  " + r["summary"])
        m = r.get("mapping")
        if m:
            print("  mapping: %s-%s %s %s" % (m["start"], m["end"], m["perm"], m.get("file") or m.get("role", "")))
        if r.get("dangling"):
            print("  DANGLING: " + r.get("dangling_why", ""))
        for n in r.get("notes") or []:
            print("  note: " + n)


# ---- the ce command and its subcommands

class Ce(gdb.Command):
    """coreexplain's helpers: ce gm, ce errno [TID], ce explain [REPORT.json], ce slicecheck EXPR,
ce addrinfo ADDR. Each has `help ce NAME`."""

    def __init__(self):
        super().__init__("ce", gdb.COMMAND_USER, gdb.COMPLETE_NONE, True)


class Sub(gdb.Command):
    def __init__(self, name, fn, doc):
        self.__doc__ = doc
        super().__init__("ce " + name, gdb.COMMAND_USER, gdb.COMPLETE_EXPRESSION)
        self.fn = fn

    def invoke(self, arg, from_tty):
        self.fn(Target(), arg)


Ce()
Sub("gm", cmd_gm, """Threads, Ms and goroutines: thread id, thread pointer, M id, goroutine id and state.

The M of each thread is the M on runtime.allm whose procid is the thread id; its goroutine is
m.curg. A thread no M claims is a C thread the Go runtime does not know (or one not yet
initialised). "crashing" marks the M that is dying: the one running the runtime's crash.""")
Sub("errno", cmd_errno, """errno of every thread (or of thread TID): slot address, value and name.

Usage: ce errno [TID]
On a core the slots come from coreexplain (glibc's errno is a TLS variable at a link-time
offset from the thread pointer, musl's sits in struct pthread); on a live process from
__errno_location's code run on each thread's registers. gdb reads the values.""")
Sub("explain", cmd_explain, """The crash story: the real signal, the crash site, the main findings; then selects the crashing thread and its first user frame.

Usage: ce explain [REPORT.json]
Runs coreexplain on the core (or loads REPORT.json). On a live process it first writes a core
with generate-core-file to a temporary directory, which takes a while.""")
Sub("slicecheck", cmd_slicecheck, """Decodes a slice and checks its backing array.

Usage: ce slicecheck EXPR
Prints data, len and cap, and classifies [data, data+cap*elemsize) piece by piece: live or
freed Go heap object, free heap pages, live or dead part of a goroutine stack, mapped or
unmapped memory. A *[N]T is checked as arr[:]. On a core the check is coreexplain's; when
gdb cannot evaluate EXPR in the selected frame, coreexplain evaluates it in the crashing
goroutine's frames.""")
Sub("addrinfo", cmd_addrinfo, """What is at an address: mapping, Go heap span and object, goroutine stack, symbol.

Usage: ce addrinfo ADDR""")
