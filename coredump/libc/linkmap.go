package libc

import (
	"debug/elf"
	"fmt"

	"github.com/coreexplain/coreexplain/coredump"
)

// Module is one object on the dynamic loader's list (glibc's struct
// link_map, musl's struct dso: both start with the public link_map fields).
type Module struct {
	Name    string // l_name; "" for the executable
	Addr    uint64 // l_addr: the load bias
	Dynamic uint64 // l_ld: its dynamic section
	LinkMap uint64 // address of the structure itself
	Image   *coredump.Image
	// TLSModID and TLSOffset are glibc's l_tls_modid and l_tls_offset:
	// the module's TLS block of a thread lies at tp - TLSOffset on x86-64
	// (tp + TLSOffset on arm64). HasTLS is set when the module has static
	// TLS.
	TLSModID  uint64
	TLSOffset int64
	HasTLS    bool
}

// Limits on walking the loader's structures in target memory.
const (
	maxModules     = 4096
	maxDynEntries  = 1024
	maxModuleName  = 4096
	dtNull         = 0
	dtDebug        = 21
	glibcNoTLSOff  = -1 // NO_TLS_OFFSET on x86-64 and arm64
	glibcForcedDyn = -2 // FORCED_DYNAMIC_TLS_OFFSET
)

// readModules walks the loader's list of objects from r_debug, which the
// loader publishes in the executable's DT_DEBUG entry (or as glibc's
// _r_debug).
func (r *Runtime) readModules() {
	p := r.Proc
	if r.Linkage != Dynamic || p.Exe == nil {
		return
	}
	rdebug, src, err := r.findRDebug()
	if err != nil {
		r.note("loaded objects: %v", err)
		return
	}
	head, err := p.ReadUint64(rdebug + 8) // r_map
	if err != nil {
		r.note("loaded objects: reading r_debug.r_map at %#x: %v", rdebug+8, err)
		return
	}
	seen := map[uint64]bool{}
	for lm := head; lm != 0; {
		if seen[lm] {
			r.note("loaded objects: the link_map chain loops back to %#x", lm)
			break
		}
		if len(r.Modules) >= maxModules {
			r.note("loaded objects: stopped after %d link_map entries", maxModules)
			break
		}
		seen[lm] = true
		var hdr [40]byte
		if _, err := p.ReadMemory(hdr[:], lm); err != nil {
			r.note("loaded objects: link_map at %#x: %v", lm, err)
			break
		}
		m := &Module{LinkMap: lm, Addr: le.Uint64(hdr[0:]), Dynamic: le.Uint64(hdr[16:])}
		if name := le.Uint64(hdr[8:]); name != 0 {
			var err error
			if m.Name, _, err = p.ReadCString(name, maxModuleName); err != nil { // a name longer than the limit keeps its first bytes
				r.note("loaded objects: link_map at %#x: l_name: %v", lm, err)
			}
		}
		m.Image = p.FindImage(m.Dynamic)
		r.readModuleTLS(m)
		r.Modules = append(r.Modules, m)
		lm = le.Uint64(hdr[24:])
	}
	r.ModulesSource = src
	// Every mapped ELF image should be on the list; one that is not was
	// mapped by other means (by hand, by a second loader).
	for _, im := range p.Images {
		if im.Status != coredump.ImageInMemory && r.Module(im) == nil && len(r.Modules) > 0 {
			r.note("%s is mapped (NT_FILE) but not on the dynamic loader's list of objects: it was mapped by other means than the loader", im.Path)
		}
	}
}

// findRDebug returns the address of the loader's struct r_debug.
func (r *Runtime) findRDebug() (addr uint64, source string, err error) {
	p := r.Proc
	ei := r.elf(p.Exe)
	if ei.dyn != nil {
		dyn := ei.dyn.Vaddr + p.Exe.Bias
		for i := uint64(0); i < maxDynEntries; i++ {
			tag, err := p.ReadUint64(dyn + i*16)
			if err != nil {
				break
			}
			if tag == dtNull {
				break
			}
			if tag != dtDebug {
				continue
			}
			v, err := p.ReadUint64(dyn + i*16 + 8)
			if err == nil && v != 0 {
				return v, fmt.Sprintf("r_debug %#x from DT_DEBUG of %s", v, p.Exe.Name()), nil
			}
			break
		}
	}
	// glibc's loader also exports it.
	for _, im := range p.Images {
		if s, ok := r.elf(im).lookup("_r_debug"); ok && elf.ST_TYPE(s.Info) == elf.STT_OBJECT {
			return s.Value + im.Bias, fmt.Sprintf("r_debug at %s`_r_debug", im.Name()), nil
		}
	}
	return 0, "", fmt.Errorf("no r_debug: the executable's DT_DEBUG is empty and no loader exports _r_debug")
}

// readModuleTLS reads glibc's l_tls_modid and l_tls_offset.
func (r *Runtime) readModuleTLS(m *Module) {
	l := r.glibc
	if l == nil || l.linkMapTLSOff < 0 || l.linkMapTLSMod < 0 || r.Flavor != Glibc {
		return
	}
	off, err1 := r.Proc.ReadUint64(m.LinkMap + uint64(l.linkMapTLSOff))
	mod, err2 := r.Proc.ReadUint64(m.LinkMap + uint64(l.linkMapTLSMod))
	if err1 != nil || err2 != nil || mod == 0 {
		return
	}
	m.TLSModID, m.TLSOffset = mod, int64(off)
	m.HasTLS = m.TLSOffset != glibcNoTLSOff && m.TLSOffset != glibcForcedDyn && m.TLSOffset != 0
}

// tlsOffset is the thread-pointer offset of offset off in module m's
// static TLS block: the block lies below the thread pointer on x86-64
// (TLS variant II) and above it on arm64 (variant I).
func (r *Runtime) tlsOffset(m *Module, off int64) int64 {
	if r.Arch == coredump.ArchARM64 {
		return m.TLSOffset + off
	}
	return off - m.TLSOffset
}

// Module returns the loaded object of an image, or nil.
func (r *Runtime) Module(im *coredump.Image) *Module {
	for _, m := range r.Modules {
		if m.Image == im {
			return m
		}
	}
	return nil
}
