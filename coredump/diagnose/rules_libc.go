package diagnose

import (
	"fmt"
	"sort"
	"strings"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/libc"
)

// Rules about the C runtime: several C libraries in one process, errno
// slots that disagree, C aborts and heap corruption. The x86-64 TCB
// header an errno slot can land in is glibc's tcbhead_t
// (sysdeps/x86_64/nptl/tls.h); abort texts are glibc's __abort_msg
// (stdlib/abort.c) with the messages listed at isHeapMessage; musl keeps
// no abort text, and its internal checks crash with a_crash, hlt on
// x86-64 (arch/x86_64/atomic_arch.h).
func init() {
	Register(Rule{Name: "libc-mix", Run: ruleLibcMix})
	Register(Rule{Name: "errno-slot-mismatch", Run: ruleErrnoSlotMismatch})
	Register(Rule{Name: "c-abort", Run: ruleCAbort})
	Register(Rule{Name: "c-heap-corruption", Run: ruleCHeapCorruption})
}

// libcView returns the C runtime, and passes on what it could not read
// (Note drops repeats).
func libcView(f *Facts) *libc.Runtime {
	rt, err := f.Libc()
	if err != nil {
		f.Note("C runtime: %v", err)
		return nil
	}
	for _, n := range rt.Notes {
		f.Note("C runtime: %s", n)
	}
	return rt
}

func ruleLibcMix(f *Facts) []Finding {
	rt := libcView(f)
	if rt == nil || !rt.Mixed() {
		return nil
	}
	var names []string
	fd := Finding{Class: LibcMix, Confidence: High, Rank: 20}
	for _, l := range rt.Libs {
		names = append(names, l.String())
		fd.Evidence = append(fd.Evidence, Evidence{
			What:   fmt.Sprintf("%s: %s", l, l.Evidence),
			Addr:   AddrPtr(l.Image.Base),
			Source: l.Image.Path,
		})
		if l.Evidence == "" || strings.HasPrefix(l.Evidence, "file name") {
			fd.Confidence, fd.Why = Medium, l.Image.Name()+" was identified by its file name only: its file is not available"
		}
	}
	fd.Summary = fmt.Sprintf("%d C runtimes in one process (%s): each keeps its own thread-local state, and code of one reading the other's thread control block reads the wrong fields",
		len(rt.Libs), strings.Join(names, "; "))
	return []Finding{fd}
}

// crashThread is the thread the crash happened on: the fault's, else the
// first thread of the core.
func crashThread(rt *libc.Runtime) *libc.Thread {
	if flt := rt.Fault(); flt != nil {
		if t := rt.Thread(flt.TID); t != nil {
			return t
		}
	}
	if len(rt.Threads) > 0 {
		return rt.Threads[0]
	}
	return nil
}

func ruleErrnoSlotMismatch(f *Facts) []Finding {
	rt := libcView(f)
	if rt == nil || len(rt.Errno) == 0 {
		return nil
	}
	byOff := map[int64][]*libc.ErrnoImpl{}
	var offs []int64
	for _, e := range rt.Errno {
		if !e.OffsetKnown || e.Err != nil || e.Kind == libc.KindFallback {
			continue
		}
		if _, ok := byOff[e.Offset]; !ok {
			offs = append(offs, e.Offset)
		}
		byOff[e.Offset] = append(byOff[e.Offset], e)
	}
	sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
	// A slot inside glibc's TCB header is wrong even when it is the only
	// one: errno writes land on the thread's own control fields.
	var overlaps []string
	var overlapField string
	for _, off := range offs {
		if name, start, ok := rt.TCBFieldAt(off); ok {
			overlapField = name
			overlaps = append(overlaps, fmt.Sprintf("%%fs:%#x, the slot %s computes, lies inside glibc's tcbhead_t.%s (%%fs:%#x): every errno write there changes it",
				off, byOff[off][0], name, start))
		}
	}
	if len(offs) < 2 && len(overlaps) == 0 {
		return nil
	}
	th := crashThread(rt)
	fd := Finding{Class: ErrnoSlotMismatch, Confidence: High, Rank: 10}
	for _, off := range offs {
		for _, e := range byOff[off] {
			vis := "exported"
			if e.Hidden {
				vis = "hidden, named only by " + e.Found
			}
			fd.Evidence = append(fd.Evidence, Evidence{
				What:   fmt.Sprintf("%s (%s) puts errno at %s: %s", e, vis, e.Where(rt.TPName()), e.Source),
				Addr:   AddrPtr(e.Addr),
				Source: "disassembly of " + e.Image.Path,
			})
		}
	}
	for _, b := range rt.Bindings {
		if b.Impl == nil {
			continue
		}
		fd.Evidence = append(fd.Evidence, Evidence{
			What:   fmt.Sprintf("code in %s calls %s: %s", b.Image.Name(), b.Impl, b.How),
			Addr:   addrOrNil(b.Slot),
			Source: "relocations of " + b.Image.Name() + " and the GOT in the core",
		})
	}
	if th != nil {
		for _, s := range th.Slots {
			if s.Err != nil {
				continue
			}
			fd.Evidence = append(fd.Evidence, Evidence{
				What:   fmt.Sprintf("thread %d: %s's errno slot holds %s", th.TID, s.Impl, errnoText(s.Value)),
				Addr:   AddrPtr(s.Addr),
				Value:  fmt.Sprint(int32(s.Value)),
				Source: "core memory",
			})
		}
	}
	for _, o := range overlaps {
		fd.Evidence = append(fd.Evidence, Evidence{What: o, Source: "x86-64 tcbhead_t layout (sysdeps/x86_64/nptl/tls.h)"})
	}
	damaged := false
	for _, t := range rt.Threads {
		for _, pr := range t.Problems {
			if overlapField != "" && strings.Contains(pr.What, overlapField) {
				fd.Evidence = append(fd.Evidence, Evidence{What: fmt.Sprintf("thread %d: %s", t.TID, pr.What), Addr: AddrPtr(pr.Addr), Value: pr.Value, Source: "TCBs of all threads"})
				if th != nil && t.TID == th.TID {
					damaged = true
				}
			}
		}
	}
	var impls []string
	for _, off := range offs {
		impls = append(impls, fmt.Sprintf("%s at %s", byOff[off][0], byOff[off][0].Where(rt.TPName())))
	}
	if len(offs) >= 2 {
		fd.Summary = fmt.Sprintf("errno lives in %d places per thread (%s): C code that sets errno through one and reads it through the other sees a stale value",
			len(offs), strings.Join(impls, " vs "))
	} else {
		fd.Summary = fmt.Sprintf("errno slot %s lies inside the C library's thread control block", impls[0])
	}
	if overlapField == "pointer_guard" {
		fd.Summary += "; writes to it change glibc's pointer_guard, so pointers glibc mangled before (setjmp/longjmp buffers, atexit handlers) demangle to garbage"
	}
	if damaged {
		// The damaged guard explains a crash other rules see only as a
		// wild jump or a non-canonical address.
		fd.Cause, fd.Rank = true, -20
		fd.Summary += fmt.Sprintf(" — thread %d's guard is damaged, and that thread crashed", th.TID)
		if flt := rt.Fault(); flt != nil {
			fd.Evidence = append(fd.Evidence, Evidence{
				What:   fmt.Sprintf("the crash: %s %s at pc %#x (%s)", flt.Info.Signo, flt.Info.CodeName(), flt.PC, innermostCFrame(flt.Frames)),
				Addr:   AddrPtr(flt.PC),
				Source: flt.Source,
			})
		}
	}
	if th != nil {
		fd.Location = &Location{TID: th.TID}
	}
	return []Finding{fd}
}

func addrOrNil(a uint64) *coredump.Addr {
	if a == 0 {
		return nil
	}
	return AddrPtr(a)
}

func errnoText(e libc.Errno) string {
	if e.Name() == "" {
		return fmt.Sprint(int32(e))
	}
	return fmt.Sprintf("%d (%s, %s)", int32(e), e.Name(), e.Description())
}

func innermostCFrame(frames []libc.Frame) string {
	if len(frames) == 0 {
		return "no frames"
	}
	return frames[0].String()
}

// framesText writes C frames innermost first, at most n.
func framesText(frames []libc.Frame, n int) string {
	var parts []string
	for i, fr := range frames {
		if i == n {
			parts = append(parts, "...")
			break
		}
		parts = append(parts, fr.String())
	}
	return strings.Join(parts, " ← ")
}

// abortKind tells what kind of abort the C frames show: glibc's (or
// musl's) abort(), or musl's a_crash, the hlt instruction its internal
// checks execute.
func abortKind(rt *libc.Runtime, flt *libc.Fault) (abort, hlt bool) {
	if flt == nil {
		return false, false
	}
	if flt.Info.Signo == coredump.SIGABRT {
		for i, fr := range flt.Frames {
			if i > 8 || !rt.InLibc(fr) && fr.Func != "" {
				break
			}
			if n := coredump.FuncBase(fr.Func); n == "abort" || n == "raise" || n == "pthread_kill" {
				return true, false
			}
		}
		return false, false
	}
	if flt.Info.Signo == coredump.SIGSEGV && flt.Info.Code == coredump.SI_KERNEL && len(flt.Frames) > 0 {
		var b [1]byte
		if _, err := rt.Proc.ReadMemory(b[:], flt.PC); err == nil && b[0] == 0xf4 && rt.InLibc(flt.Frames[0]) {
			return false, true
		}
	}
	return false, false
}

// Kinds of glibc abort messages (malloc/malloc.c malloc_printerr callers,
// assert/assert.c, debug/fortify_fail.c).
func isHeapMessage(msg string) bool {
	for _, s := range []string{"free(): ", "malloc(): ", "realloc(): ", "calloc(): ", "malloc_consolidate(): ",
		"double free", "corrupted size vs. prev_size", "corrupted double-linked list", "munmap_chunk(): ",
		"mremap_chunk(): ", "_int_malloc(): ", "tcache_thread_shutdown(): ", "memalign(): ", "break adjusted to free malloc space",
		"malloc_check", "invalid pointer", "invalid size", "unaligned chunk", "unaligned fastbin chunk", "unaligned tcache chunk"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func ruleCAbort(f *Facts) []Finding {
	rt := libcView(f)
	if rt == nil {
		return nil
	}
	flt := rt.Fault()
	msg, err := rt.AbortMessage()
	if err != nil {
		f.Note("glibc abort message: %v", err)
	}
	abort, hlt := abortKind(rt, flt)
	if !abort && !hlt {
		return nil
	}
	// An abort or a failed check of the C library states the cause; it
	// ranks above what the fault address alone says.
	fd := Finding{Class: CAbort, Confidence: High, Cause: true, Rank: -10}
	cframes := flt.CFrames()
	var where string
	fd.Location, where = userLocation(rt, flt, cframes, " in %s")
	inMalloc := false
	for _, fr := range cframes {
		inMalloc = inMalloc || rt.InLibc(fr) && libc.IsMallocFunc(fr.Func)
	}
	switch {
	case hlt && hasCFrame(cframes, "__stack_chk_fail"):
		fd.Summary = fmt.Sprintf("C code%s overran a stack buffer: the stack protector (__stack_chk_fail) found the canary overwritten and musl stopped the process with hlt", where)
	case hlt && inMalloc:
		fd.Summary = fmt.Sprintf("musl's malloc found its heap metadata corrupted%s and stopped the process with hlt (musl keeps no message)", where)
		fd.Cause, fd.Rank = false, 5 // c-heap-corruption explains it
	case hlt:
		fd.Summary = fmt.Sprintf("musl stopped the process%s: an internal check failed and executed hlt (a_crash); musl keeps no message", where)
	case msg == nil && hasCFrame(cframes, "__assert_fail"):
		fd.Summary = fmt.Sprintf("a C assertion failed%s (the C library keeps no copy of the text; it went to stderr)", where)
	case msg != nil && strings.Contains(msg.Text, "Assertion"):
		fd.Summary = fmt.Sprintf("a C assertion failed%s: %s", where, assertionText(msg.Text))
	case msg != nil && strings.Contains(msg.Text, "stack smashing detected"):
		fd.Summary = fmt.Sprintf("C code%s overran a stack buffer: glibc's stack protector found the canary overwritten (%q) and aborted", where, msg.Text)
	case msg != nil && isHeapMessage(msg.Text):
		fd.Summary = fmt.Sprintf("glibc's malloc aborted the process%s: %q", where, msg.Text)
		fd.Cause, fd.Rank = false, 5 // c-heap-corruption explains it
	case msg != nil:
		fd.Summary = fmt.Sprintf("C code%s called abort(): %q", where, msg.Text)
	default:
		fd.Summary = fmt.Sprintf("C code%s called abort()", where)
		if rt.Flavor == libc.Musl {
			fd.Summary += " (musl keeps no abort message)"
		}
	}
	if hlt {
		fd.Evidence = append(fd.Evidence, Evidence{
			What:   fmt.Sprintf("%s %s at pc %#x, a hlt instruction (0xf4) in %s", flt.Info.Signo, flt.Info.CodeName(), flt.PC, innermostCFrame(flt.Frames)),
			Addr:   AddrPtr(flt.PC),
			Value:  "0xf4",
			Source: flt.Source,
		})
	}
	if msg != nil {
		fd.Evidence = append(fd.Evidence, Evidence{
			What:   fmt.Sprintf("glibc's abort message: %q", msg.Text),
			Addr:   AddrPtr(msg.Addr),
			Source: fmt.Sprintf("__abort_msg (%#x) of %s", msg.Var, msg.Lib.Image.Name()),
		})
	}
	if abort {
		fd.Evidence = append(fd.Evidence, Evidence{
			What:   fmt.Sprintf("%s %s sent by the process itself (pid %d) on thread %d, pc %#x", flt.Info.Signo, flt.Info.CodeName(), flt.Info.PID, flt.TID, flt.PC),
			Addr:   AddrPtr(flt.PC),
			Source: flt.Source,
		})
	}
	fd.Evidence = append(fd.Evidence, Evidence{
		What:   "C frames: " + framesText(cframes, 12),
		Source: "stack of thread " + fmt.Sprint(flt.TID) + " unwound with .eh_frame CFI through the signal frame",
	})
	return []Finding{fd}
}

// userLocation locates a C crash at the program's own frame that called
// into the C library, and words it for a summary with format (one %s for
// the function; "" when no frame of the program is known).
func userLocation(rt *libc.Runtime, flt *libc.Fault, cframes []libc.Frame, format string) (*Location, string) {
	user, ok := rt.UserFrame(cframes)
	if !ok {
		return &Location{TID: flt.TID}, ""
	}
	return &Location{TID: flt.TID, Function: user.Func, PC: AddrPtr(user.PC)}, fmt.Sprintf(format, user.Func)
}

func hasCFrame(frames []libc.Frame, name string) bool {
	for _, f := range frames {
		if coredump.FuncBase(f.Func) == name {
			return true
		}
	}
	return false
}

// assertionText cuts glibc's assert message ("prog: file:line: func:
// Assertion `expr' failed.") to the part after the program name.
func assertionText(msg string) string {
	if i := strings.Index(msg, ": "); i >= 0 && i < strings.Index(msg, "Assertion") {
		return msg[i+2:]
	}
	return msg
}

func ruleCHeapCorruption(f *Facts) []Finding {
	rt := libcView(f)
	if rt == nil {
		return nil
	}
	flt := rt.Fault()
	if flt == nil {
		return nil
	}
	msg, _ := rt.AbortMessage() // c-abort notes its error
	heapMsg := msg != nil && isHeapMessage(msg.Text)
	cframes := flt.CFrames()
	var mallocFrame *libc.Frame
	for i := range cframes {
		if i > 12 {
			break
		}
		if rt.InLibc(cframes[i]) && libc.IsMallocFunc(cframes[i].Func) {
			mallocFrame = &cframes[i]
			break
		}
	}
	_, hlt := abortKind(rt, flt)
	faultInMalloc := mallocFrame != nil && (flt.Info.Synchronous() || hlt)
	if !heapMsg && !faultInMalloc {
		return nil
	}
	fd := Finding{Class: CHeapCorruption, Confidence: High, Cause: true, Rank: -10}
	var where string
	fd.Location, where = userLocation(rt, flt, cframes, " (called from %s)")
	refs := rt.ChunksInRegisters(cframes)
	switch {
	case heapMsg && strings.Contains(msg.Text, "double free"):
		fd.Summary = fmt.Sprintf("a heap block was freed twice%s: glibc found it already free (%q)", where, msg.Text)
	case heapMsg && strings.Contains(msg.Text, "corrupted top size"):
		fd.Summary = fmt.Sprintf("a heap buffer overflow overwrote the size of the top chunk; the next allocation%s found it (%q)", where, msg.Text)
	case heapMsg && (strings.Contains(msg.Text, "invalid pointer") || strings.Contains(msg.Text, "invalid size") || strings.Contains(msg.Text, "munmap_chunk")):
		fd.Summary = fmt.Sprintf("free()%s got a pointer malloc never returned, or one whose chunk header was overwritten (%q)", where, msg.Text)
	case heapMsg:
		fd.Summary = fmt.Sprintf("glibc's malloc found its chunk metadata corrupted%s (%q): a heap overflow or a write after free", where, msg.Text)
	case hlt:
		fd.Summary = fmt.Sprintf("musl's malloc stopped the process in %s%s: its metadata check failed (a double free, a heap overflow or a write after free)", mallocFrame.Func, where)
	default:
		fd.Summary = fmt.Sprintf("the process faulted inside the C library's %s%s: the heap's metadata is corrupted (a heap overflow, a write after free or a double free) or it was given a bad pointer", mallocFrame.Func, where)
		fd.Confidence, fd.Why = Medium, "a fault inside malloc or free can also come from a wild pointer passed to it"
	}
	if msg != nil && heapMsg {
		fd.Evidence = append(fd.Evidence, Evidence{
			What:   fmt.Sprintf("glibc's abort message: %q", msg.Text),
			Addr:   AddrPtr(msg.Addr),
			Source: fmt.Sprintf("__abort_msg (%#x) of %s", msg.Var, msg.Lib.Image.Name()),
		})
	}
	if flt.Info.Synchronous() {
		ev := Evidence{
			What:   fmt.Sprintf("%s %s at address %#x, pc %#x in %s", flt.Info.Signo, flt.Info.CodeName(), flt.Info.Addr, flt.PC, innermostCFrame(flt.Frames)),
			Addr:   AddrPtr(flt.Info.Addr),
			Source: flt.Source,
		}
		fd.Evidence = append(fd.Evidence, ev)
		if ch, err := rt.Chunk(flt.Info.Addr); err == nil {
			fd.Evidence = append(fd.Evidence, Evidence{What: "the fault address is in " + ch.String(), Addr: AddrPtr(ch.Addr), Source: "glibc malloc heap: " + ch.How})
		}
	}
	for _, ref := range refs {
		what := fmt.Sprintf("%s of %s points to %s", ref.Reg, ref.Frame.String(), ref.Chunk)
		if ref.Chunk.State == libc.ChunkFree && heapMsg && strings.Contains(msg.Text, "double free") {
			what = fmt.Sprintf("the block freed twice is probably user pointer %#x: %s of %s points to it, and it is already free in %s",
				ref.Chunk.Mem, ref.Reg, ref.Frame.String(), ref.Chunk.List)
		}
		fd.Evidence = append(fd.Evidence, Evidence{What: what, Addr: AddrPtr(ref.Chunk.Addr), Value: fmt.Sprintf("%#x", ref.Value),
			Source: "registers of the C frames (CFI), glibc malloc heap: " + ref.Chunk.How})
	}
	fd.Evidence = append(fd.Evidence, Evidence{
		What:   "C frames: " + framesText(cframes, 12),
		Source: "stack of thread " + fmt.Sprint(flt.TID),
	})
	return []Finding{fd}
}
