package coredump

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
)

// coreContents gathers the notes of a stopped live process.
func (p *Process) coreContents(opts CoreOptions) (*coreContents, error) {
	lm, err := p.live()
	if err != nil {
		return nil, errors.New("writing core: only a live process can be written as a core")
	}
	if !lm.stopped.Load() {
		return nil, errors.New("writing core: the process must be stopped first")
	}
	pageSize := uint64(defaultPageSize)
	if ps, ok := p.Auxv.Lookup(AT_PAGESZ); ok && ps >= 4096 && ps&(ps-1) == 0 {
		pageSize = ps
	}
	c := &coreContents{arch: p.Arch, pageSize: pageSize, files: p.Files, auxv: encodeAuxv(p.Auxv), src: lm}
	sig := opts.Signal
	if sig == nil {
		sig = &SigInfo{Signo: SIGSTOP, Code: SI_USER, PID: int32(os.Getpid()), UID: uint32(os.Getuid())}
	}
	c.siginfo = opts.rawSigInfo
	if len(c.siginfo) != 128 {
		c.siginfo = encodeSigInfo(sig)
	}
	ps := readProcStat(lm.pid, 0)

	threads := append([]*Thread(nil), p.Threads...)
	for i, t := range threads {
		if t.TID == opts.FirstTID && i > 0 {
			copy(threads[1:i+1], threads[:i])
			threads[0] = t
		}
	}
	var extra map[int][]note
	err = lm.tr.do(func() error {
		extra = lm.readFPState(threads)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("writing core: %w", err)
	}
	for _, t := range threads {
		ts := readProcStat(lm.pid, t.TID)
		in := prstatusInfo{sig: sig.Signo, sigpend: t.SigPend, sighold: t.SigHold, pid: t.TID, ppid: p.PPID,
			pgrp: ps.pgrp, sid: ps.sid, utimeUs: ts.utimeUs, stimeUs: ts.stimeUs, regs: t.Regs.Values,
			fpValid: len(extra[t.TID]) > 0}
		c.threads = append(c.threads, coreThread{prstatus: encodePRStatus(in), extra: extra[t.TID]})
	}
	c.psinfo = encodePRPSInfo(lm.status.state, ps.nice, ps.flags, lm.status.uid, lm.status.gid,
		lm.pid, p.PPID, ps.pgrp, ps.sid, p.Command, p.Args)
	for _, m := range p.Mappings {
		c.segments = append(c.segments, coreSegment{m: m, filesz: m.Dumped})
	}
	return c, nil
}

// maxXStateBytes bounds the extended register state read per thread (the
// largest x86 XSAVE area, with AMX tiles, is about 11 KiB).
const maxXStateBytes = 64 << 10

// readFPState reads the floating-point and extended register sets of each
// thread, as the notes that carry them. It runs on the tracer thread.
func (lm *liveMemory) readFPState(threads []*Thread) map[int][]note {
	out := map[int][]note{}
	buf := make([]byte, maxXStateBytes)
	for _, t := range threads {
		var ns []note
		if b, err := getRegSet(t.TID, NT_PRFPREG, buf); err == nil && len(b) > 0 {
			ns = append(ns, note{Name: "CORE", Type: NT_PRFPREG, Desc: bytes.Clone(b)})
		}
		switch lm.p.Arch {
		case ArchAMD64:
			if b, err := getRegSet(t.TID, NT_X86_XSTATE, buf); err == nil && len(b) > 0 {
				ns = append(ns, note{Name: "LINUX", Type: NT_X86_XSTATE, Desc: bytes.Clone(b)})
			}
		case ArchARM64:
			var tls [8]byte
			le.PutUint64(tls[:], t.Regs.TP)
			ns = append(ns, note{Name: "LINUX", Type: NT_ARM_TLS, Desc: tls[:]})
		}
		out[t.TID] = ns
	}
	return out
}

// dumpRange reads memory for a core without going through the page cache
// of the snapshot. Pages of anonymous memory that the process never
// touched are not read at all (pagemap says they are neither present nor
// swapped): they are zero, and reading them would make the kernel map
// zero pages into the target.
func (lm *liveMemory) dumpRange(m *Mapping, b []byte, addr uint64) (uint64, error) {
	var present []bool
	if anonymous(m) {
		present = lm.pagesPresent(addr, uint64(len(b)))
	}
	var bad uint64
	for off := 0; off < len(b); {
		end := len(b)
		if present != nil {
			pg := off / defaultPageSize
			if !present[pg] {
				off += defaultPageSize
				continue
			}
			for end = off; end < len(b) && present[end/defaultPageSize]; end += defaultPageSize {
			}
		}
		bad += lm.readOrZero(b[off:end], addr+uint64(off))
		off = end
	}
	return bad, nil
}

// anonymous reports private anonymous memory, whose pages the process
// never touched are zero. Special mappings such as [vdso] are not: their
// pages exist without appearing in the page tables.
func anonymous(m *Mapping) bool {
	return m.Path == "" || m.Path == "[heap]" || strings.HasPrefix(m.Path, "[stack") || strings.HasPrefix(m.Path, "[anon:")
}

// readOrZero reads b at addr, page by page after a failure, leaving what
// cannot be read zero; it returns how many bytes that was.
func (lm *liveMemory) readOrZero(b []byte, addr uint64) uint64 {
	n, _ := lm.mem.ReadAt(b, int64(addr))
	if n == len(b) {
		return 0
	}
	var bad uint64
	for off := n &^ (defaultPageSize - 1); off < len(b); off += defaultPageSize {
		pg := b[off:min(off+defaultPageSize, len(b))]
		if k, _ := lm.mem.ReadAt(pg, int64(addr)+int64(off)); k < len(pg) {
			clear(pg[k:])
			bad += uint64(len(pg) - k)
		}
	}
	return bad
}

// pagesPresent reports for each page of [addr, addr+n) whether it is in
// memory or swap (/proc/PID/pagemap bits 63 and 62); nil when pagemap
// cannot be read, which means read everything.
func (lm *liveMemory) pagesPresent(addr, n uint64) []bool {
	lm.mu.Lock()
	if lm.pagemap == nil && !lm.noPagemap {
		f, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", lm.pid))
		if err != nil {
			lm.noPagemap = true
		} else {
			lm.pagemap = f
		}
	}
	pm := lm.pagemap
	lm.mu.Unlock()
	if pm == nil {
		return nil
	}
	pages := int(n / defaultPageSize)
	raw := make([]byte, 8*pages)
	if k, _ := pm.ReadAt(raw, int64(addr/defaultPageSize*8)); k != len(raw) {
		return nil
	}
	out := make([]bool, pages)
	for i := range out {
		e := le.Uint64(raw[8*i:])
		out[i] = e&(1<<63|1<<62) != 0
	}
	return out
}
