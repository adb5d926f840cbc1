package libc

import (
	"debug/elf"
	"fmt"
	"github.com/coreexplain/coreexplain/coredump"
	"strings"
)

// describeSlot names the relocation that filled the GOT slot at run-time
// address a, e.g. "R_X86_64_TPOFF64 errno" or "R_X86_64_TPOFF64 +0x10,
// libc.so.6's errno".
func (r *Runtime) describeSlot(a uint64) string {
	im := r.Proc.FindImage(a)
	if im == nil {
		return ""
	}
	ei := r.elf(im)
	rel, ok := ei.relocAt(a - im.Bias)
	if !ok {
		return ""
	}
	typ := relocName(rel.Type, r.Arch == coredump.ArchARM64)
	switch {
	case rel.Sym != nil:
		return fmt.Sprintf("%s %s", typ, rel.Sym.Name)
	case isTPOff(rel.Type, r.Arch):
		s := fmt.Sprintf("%s %+#x", typ, rel.Addend)
		if name := ei.tlsSymbolAt(uint64(rel.Addend)); name != "" {
			s += fmt.Sprintf(", %s's TLS symbol %s", im.Name(), name)
		}
		return s
	}
	return fmt.Sprintf("%s %+#x", typ, rel.Addend)
}

func relocName(t uint32, arm64 bool) string {
	if arm64 {
		return elf.R_AARCH64(t).String()
	}
	return elf.R_X86_64(t).String()
}

// tlsSymbolAt names the TLS symbol (STT_TLS) at offset off of the image's
// TLS segment.
func (ei *elfInfo) tlsSymbolAt(off uint64) string {
	for _, tab := range [][]elf.Symbol{ei.dynsym, ei.symtab} {
		for _, s := range tab {
			if elf.ST_TYPE(s.Info) == elf.STT_TLS && s.Section != elf.SHN_UNDEF && s.Value == off {
				return s.Name
			}
		}
	}
	return ""
}

// callTLSGetAddr emulates a call of __tls_get_addr(tls_index *ti): the
// address of offset ti->offset in module ti->module's TLS block of this
// thread, read through the thread's dtv.
func (r *Runtime) callTLSGetAddr(target, tp uint64, arg func() (uint64, error)) (addr, module, offset uint64, note string, err error) {
	im, sym, ok := r.Proc.Symbolize(target)
	if !ok || strings.TrimLeft(sym.Name, "_") != "tls_get_addr" {
		name := fmt.Sprintf("%#x", target)
		if ok {
			name = sym.Name
		}
		return 0, 0, 0, "", fmt.Errorf("call of %s: %w", name, errUnsupported)
	}
	ti, err := arg()
	if err != nil {
		return 0, 0, 0, "", err
	}
	var b [16]byte
	if _, err := r.Proc.ReadMemory(b[:], ti); err != nil {
		return 0, 0, 0, "", fmt.Errorf("tls_index at %#x: %w", ti, err)
	}
	mod, off := le.Uint64(b[:]), le.Uint64(b[8:])
	// The dtv pointer is the second word of the TCB in both C libraries
	// on x86-64 (tcbhead_t.dtv, struct pthread.dtv).
	dtv, err := r.Proc.ReadUint64(tp + 8)
	if err != nil {
		return 0, 0, 0, "", fmt.Errorf("dtv pointer at %%fs:8: %w", err)
	}
	if mod == 0 || mod > 1<<16 {
		return 0, 0, 0, "", fmt.Errorf("tls_index at %#x holds module id %d", ti, mod)
	}
	// glibc's dtv_t is 16 bytes {pointer, to_free}; musl's dtv holds bare
	// pointers.
	stride := uint64(16)
	if lib := r.Lib(im); lib != nil && lib.Flavor == Musl {
		stride = 8
	}
	base, err := r.Proc.ReadUint64(dtv + mod*stride)
	if err != nil {
		return 0, 0, 0, "", fmt.Errorf("dtv[%d] at %#x: %w", mod, dtv+mod*stride, err)
	}
	if base == ^uint64(0) || base == 0 {
		return 0, 0, 0, "", fmt.Errorf("module %d's TLS block is not allocated in this thread (dtv[%d] = %#x)", mod, mod, base)
	}
	return base + off, mod, off, fmt.Sprintf("%s`%s(module %d, offset %#x): dtv %#x[%d] = %#x", im.Name(), sym.Name, mod, off, dtv, mod, base), nil
}
