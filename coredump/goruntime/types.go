package goruntime

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
)

// The runtime's type descriptors (internal/abi.Type and the kind-specific
// types that extend it) describe every type a Go value in memory can have:
// its name, kind, size, element and field types. They are in the binary
// whether or not it has DWARF, so values (panic arguments, error chains)
// are decoded from them alone.

// rtype is a decoded type descriptor.
type rtype struct {
	addr   uint64
	size   uint64
	kind   reflect.Kind
	tflag  uint8
	direct bool // stored directly in an interface's data word
	name   string
	elem   *rtype // pointer, slice, array, chan, map value
	key    *rtype // map key
	alen   uint64 // array length
	fields []rfield
	uncom  uint64 // address of the UncommonType, 0 when none
	err    error
}

type rfield struct {
	name     string
	typ      *rtype
	offset   uint64
	embedded bool
}

// abi.Type field offsets, from DWARF when present; the layout has been
// the same 48 bytes since Go 1.20.
type typeOffsets struct {
	size, tflag, kind, str, ptrToThis, common int64
}

type typeReader struct {
	r     *Runtime
	off   typeOffsets
	mu    sync.Mutex
	cache map[uint64]*rtype
	// types and etypes bound the type descriptors (moduledata.types);
	// name and type offsets are relative to types.
	types, etypes uint64
}

func newTypeReader(r *Runtime) *typeReader {
	t := &typeReader{r: r, cache: map[uint64]*rtype{}}
	t.off = typeOffsets{size: 0, tflag: 20, kind: 23, str: 40, ptrToThis: 44, common: 48}
	l := r.Binary.Layout
	if s, err := l.Struct("internal/abi.Type"); err == nil {
		set := func(dst *int64, f string) {
			if fl, err := s.Field(f); err == nil {
				*dst = fl.Offset
			}
		}
		set(&t.off.size, "Size_")
		set(&t.off.tflag, "TFlag")
		set(&t.off.kind, "Kind_")
		set(&t.off.str, "Str")
		set(&t.off.ptrToThis, "PtrToThis")
		t.off.common = s.Size
	}
	if r.md != nil {
		t.types, t.etypes = r.md.types, r.md.etypes
	} else if a, _, ok := r.global("runtime.types"); ok {
		t.types = a
		if e, _, ok := r.global("runtime.etypes"); ok {
			t.etypes = e
		}
	}
	return t
}

// valid reports whether addr can be a type descriptor.
func (t *typeReader) valid(addr uint64) bool {
	if addr == 0 || addr%8 != 0 {
		return false
	}
	if t.types != 0 && t.etypes > t.types {
		return addr >= t.types && addr < t.etypes
	}
	return t.r.Proc.Readable(addr, uint64(t.off.common))
}

// typeAt decodes the type descriptor at addr.
func (t *typeReader) typeAt(addr uint64) *rtype {
	return t.typeAtDepth(addr, 0)
}

const maxTypeDepth = 6

func (t *typeReader) typeAtDepth(addr uint64, depth int) *rtype {
	t.mu.Lock()
	if rt, ok := t.cache[addr]; ok {
		t.mu.Unlock()
		return rt
	}
	t.mu.Unlock()
	rt := &rtype{addr: addr}
	if !t.valid(addr) {
		rt.err = fmt.Errorf("no type descriptor at %#x", addr)
		rt.name = fmt.Sprintf("<type %#x>", addr)
		return rt
	}
	t.mu.Lock()
	t.cache[addr] = rt
	t.mu.Unlock()
	p := t.r.Proc
	buf := make([]byte, t.off.common+40)
	if _, err := p.ReadMemory(buf, addr); err != nil {
		rt.err = err
		rt.name = fmt.Sprintf("<type %#x>", addr)
		return rt
	}
	rt.size = le64(buf[t.off.size:])
	rt.tflag = buf[t.off.tflag]
	kindByte := buf[t.off.kind]
	rt.kind = reflect.Kind(kindByte & kindMask)
	rt.direct = directIface(t.r.Version, kindByte, rt.tflag)
	str := int32(le32(buf[t.off.str:]))
	rt.name = t.nameAt(t.types + uint64(int64(str)))
	if rt.tflag&tflagExtraStar != 0 {
		rt.name = strings.TrimPrefix(rt.name, "*")
	}
	c := t.off.common
	ptr := func(off int64) uint64 { return le64(buf[c+off:]) }
	sub := func(a uint64) *rtype {
		if a == 0 || depth >= maxTypeDepth {
			return nil
		}
		return t.typeAtDepth(a, depth+1)
	}
	var kindSize int64
	switch rt.kind {
	case reflect.Pointer, reflect.Slice:
		rt.elem = sub(ptr(0))
		kindSize = 8
	case reflect.Array:
		rt.elem = sub(ptr(0))
		rt.alen = ptr(16)
		kindSize = 24
	case reflect.Chan:
		rt.elem = sub(ptr(0))
		kindSize = 16
	case reflect.Map:
		rt.key, rt.elem = sub(ptr(0)), sub(ptr(8))
		kindSize = t.mapTypeSize()
	case reflect.Struct:
		kindSize = 32
		fa, n := ptr(8), ptr(16)
		if n > 1024 {
			n = 1024
		}
		if depth < maxTypeDepth && n > 0 {
			fb := make([]byte, 24*n)
			if _, err := p.ReadMemory(fb, fa); err == nil {
				for i := uint64(0); i < n; i++ {
					nameAddr := le64(fb[24*i:])
					fl := rfield{name: t.nameAt(nameAddr), typ: sub(le64(fb[24*i+8:])), offset: le64(fb[24*i+16:])}
					var flag [1]byte
					if _, err := p.ReadMemory(flag[:], nameAddr); err == nil {
						fl.embedded = flag[0]&nameEmbedded != 0
					}
					rt.fields = append(rt.fields, fl)
				}
			}
		}
	case reflect.Interface:
		kindSize = 32
	case reflect.Func:
		kindSize = 8
	}
	if rt.tflag&tflagUncommon != 0 {
		rt.uncom = addr + uint64(c+kindSize)
	}
	return rt
}

// mapTypeSize is the size of the map type's own fields after abi.Type.
func (t *typeReader) mapTypeSize() int64 { return mapTypeSize(t.r.Version) }

// nameAt decodes an abi.Name: a flag byte, a varint length, the bytes.
func (t *typeReader) nameAt(addr uint64) string {
	if addr == 0 {
		return ""
	}
	var b [12]byte
	n, _ := t.r.Proc.ReadMemory(b[:], addr) // a name near the end of a mapping: n bounds what is decoded
	if n < 2 {
		return ""
	}
	l, k := 0, 0
	for i := 1; i < n && i < 6; i++ {
		l |= int(b[i]&0x7f) << (7 * (i - 1))
		if b[i]&0x80 == 0 {
			k = i + 1
			break
		}
	}
	if k == 0 || l == 0 || l > 4096 {
		return ""
	}
	buf := make([]byte, l)
	if _, err := t.r.Proc.ReadMemory(buf, addr+uint64(k)); err != nil {
		return ""
	}
	return string(buf)
}

// methods returns the names of the type's methods (from its
// UncommonType).
func (t *typeReader) methods(rt *rtype) []string {
	if rt == nil || rt.uncom == 0 {
		return nil
	}
	var b [16]byte
	if _, err := t.r.Proc.ReadMemory(b[:], rt.uncom); err != nil {
		return nil
	}
	mcount := uint64(b[4]) | uint64(b[5])<<8
	moff := uint64(le32(b[8:]))
	if mcount == 0 || mcount > 4096 {
		return nil
	}
	mb := make([]byte, 16*mcount)
	if _, err := t.r.Proc.ReadMemory(mb, rt.uncom+moff); err != nil {
		return nil
	}
	out := make([]string, 0, mcount)
	for i := uint64(0); i < mcount; i++ {
		off := int32(le32(mb[16*i:]))
		out = append(out, t.nameAt(t.types+uint64(int64(off))))
	}
	return out
}

// hasMethod reports whether the type has a method called name.
func (t *typeReader) hasMethod(rt *rtype, name string) bool {
	for _, m := range t.methods(rt) {
		if m == name {
			return true
		}
	}
	return false
}
