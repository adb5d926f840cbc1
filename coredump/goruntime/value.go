package goruntime

import (
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"syscall"
)

// Value is a Go value read from the process, with its dynamic type: a
// panic argument, an error in a chain.
type Value struct {
	// Type is the dynamic type as the runtime names it ("*fmt.wrapError").
	Type string
	Kind reflect.Kind
	// Data is the interface's data word: the value itself for
	// pointer-shaped types, else the address of the value.
	Data uint64
	// TypeAddr is the address of the type descriptor.
	TypeAddr uint64
	// Text is what the program would print for it: Error() for errors,
	// String() for Stringers the reader knows, the value itself for
	// basic types; "" when it cannot be computed from memory.
	Text string
	// Repr renders the value in Go syntax (main.T{A:1, B:"x"}), bounded.
	Repr string
	// IsError reports a type with an Error method.
	IsError bool
	// Wrapped is the error chain below an error value (what Unwrap
	// returns, outermost first; a join lists all its errors).
	Wrapped []*Value
	// Err says what could not be read.
	Err error
}

// Limits for values decoded from hostile memory.
const (
	maxValueDepth  = 4
	maxReprLen     = 512
	maxReprElems   = 8
	maxErrorChain  = 16
	maxStringQuote = 200
)

// IfaceValue decodes an empty interface (eface: type, data).
func (r *Runtime) IfaceValue(typ, data uint64) *Value {
	return r.valueOf(typ, data, 0)
}

// ErrorValue decodes a non-empty interface (iface: itab, data), such as
// an error.
func (r *Runtime) ErrorValue(itab, data uint64) *Value {
	if itab == 0 {
		return nil
	}
	typ, err := r.Proc.ReadUint64(itab + 8) // itab.Type (internal/abi.ITab)
	if err != nil {
		return &Value{Type: "?", Data: data, Err: err}
	}
	return r.valueOf(typ, data, 0)
}

func (r *Runtime) valueOf(typ, data uint64, depth int) *Value {
	if typ == 0 {
		return &Value{Type: "nil", Text: "nil", Repr: "nil"}
	}
	rt := r.types.typeAt(typ)
	v := &Value{Type: rt.name, Kind: rt.kind, Data: data, TypeAddr: typ, Err: rt.err}
	if rt.err != nil {
		return v
	}
	// The address of the value: pointer-shaped values are the data word.
	addr := data
	if rt.direct {
		// data is the value; rendering reads it from a scratch copy.
		v.Repr = r.reprDirect(rt, data, depth)
	} else {
		v.Repr = r.repr(rt, addr, depth)
	}
	v.IsError = r.types.hasMethod(rt, "Error")
	text, wrapped, ok := r.errorText(rt, data, depth)
	for _, w := range wrapped {
		if w.Err != nil && v.Err == nil {
			v.Err = fmt.Errorf("wrapped %s: %w", w.Type, w.Err)
		}
	}
	if ok {
		v.Text, v.Wrapped, v.IsError = text, wrapped, true
		return v
	}
	if !v.IsError {
		v.Text = r.panicvalText(rt, data)
	}
	return v
}

// panicvalText is what runtime.printpanicval prints for a non-error
// value: basic values as print would, named basic types as T(v), other
// types as "(T) 0xADDR".
func (r *Runtime) panicvalText(rt *rtype, data uint64) string {
	if rt.kind == reflect.String || rt.kind <= reflect.Complex128 && rt.kind != reflect.Invalid {
		s, ok := r.basicText(rt, data)
		if !ok {
			return ""
		}
		if !isBuiltinName(rt.name) {
			if rt.kind == reflect.String {
				return rt.name + `("` + s + `")`
			}
			if rt.kind == reflect.Complex64 || rt.kind == reflect.Complex128 {
				return rt.name + s
			}
			return rt.name + "(" + s + ")"
		}
		return s
	}
	return fmt.Sprintf("(%s) %#x", rt.name, data)
}

func isBuiltinName(n string) bool {
	switch n {
	case "bool", "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64",
		"uintptr", "float32", "float64", "complex64", "complex128", "string":
		return true
	}
	return false
}

// basicText formats a basic value at addr as the runtime's print does
// (floats as +1.500000e+000).
func (r *Runtime) basicText(rt *rtype, addr uint64) (string, bool) {
	if rt.kind == reflect.String {
		s, err := r.readGoString(addr)
		return s, err == nil
	}
	if rt.size == 0 || rt.size > 16 {
		return "", false
	}
	var b [16]byte
	if _, err := r.Proc.ReadMemory(b[:rt.size], addr); err != nil {
		return "", false
	}
	u := le64(append(b[:rt.size:rt.size], make([]byte, 8)...))
	switch rt.kind {
	case reflect.Bool:
		return strconv.FormatBool(b[0] != 0), true
	case reflect.Int, reflect.Int64:
		return strconv.FormatInt(int64(u), 10), true
	case reflect.Int8:
		return strconv.FormatInt(int64(int8(u)), 10), true
	case reflect.Int16:
		return strconv.FormatInt(int64(int16(u)), 10), true
	case reflect.Int32:
		return strconv.FormatInt(int64(int32(u)), 10), true
	case reflect.Uint, reflect.Uint64, reflect.Uintptr:
		return strconv.FormatUint(u, 10), true
	case reflect.Uint8:
		return strconv.FormatUint(u&0xff, 10), true
	case reflect.Uint16:
		return strconv.FormatUint(u&0xffff, 10), true
	case reflect.Uint32:
		return strconv.FormatUint(u&0xffffffff, 10), true
	case reflect.Float32:
		return runtimeFloat(float64(math.Float32frombits(uint32(u)))), true
	case reflect.Float64:
		return runtimeFloat(math.Float64frombits(u)), true
	case reflect.Complex64:
		re, im := math.Float32frombits(uint32(u)), math.Float32frombits(uint32(u>>32))
		return "(" + runtimeFloat(float64(re)) + runtimeFloat(float64(im)) + "i)", true
	case reflect.Complex128:
		re, im := math.Float64frombits(u), math.Float64frombits(le64(b[8:]))
		return "(" + runtimeFloat(re) + runtimeFloat(im) + "i)", true
	}
	return "", false
}

// runtimeFloat formats v as runtime.printfloat does: sign, one digit,
// six decimals, "e", sign, three exponent digits.
func runtimeFloat(v float64) string {
	switch {
	case v != v:
		return "NaN"
	case v+v == v && v > 0:
		return "+Inf"
	case v+v == v && v < 0:
		return "-Inf"
	}
	const n = 7
	var buf [n + 7]byte
	buf[0] = '+'
	e := 0
	if v == 0 {
		if 1/v < 0 {
			buf[0] = '-'
		}
	} else {
		if v < 0 {
			v = -v
			buf[0] = '-'
		}
		for v >= 10 {
			e++
			v /= 10
		}
		for v < 1 {
			e--
			v *= 10
		}
		h := 5.0
		for i := 0; i < n; i++ {
			h /= 10
		}
		v += h
		if v >= 10 {
			e++
			v /= 10
		}
	}
	for i := 0; i < n; i++ {
		s := int(v)
		buf[i+2] = byte(s + '0')
		v -= float64(s)
		v *= 10
	}
	buf[1] = buf[2]
	buf[2] = '.'
	buf[n+2] = 'e'
	buf[n+3] = '+'
	if e < 0 {
		e = -e
		buf[n+3] = '-'
	}
	buf[n+4] = byte(e/100 + '0')
	buf[n+5] = byte(e/10%10 + '0')
	buf[n+6] = byte(e%10 + '0')
	return string(buf[:])
}

// fieldOf returns the field called name of the struct type rt (its
// offset and type, from the type descriptor); false when rt is nil or has
// no such field. It reads no memory: callers add the offset to the
// struct's address.
func fieldOf(rt *rtype, name string) (rfield, bool) {
	if rt == nil {
		return rfield{}, false
	}
	for _, f := range rt.fields {
		if f.name == name {
			return f, true
		}
	}
	return rfield{}, false
}

// stringField reads the string field name of the struct of type st at
// base; false when st has no such field or its bytes cannot be read.
func (r *Runtime) stringField(st *rtype, base uint64, name string) (string, bool) {
	f, ok := fieldOf(st, name)
	if !ok {
		return "", false
	}
	s, err := r.readGoString(base + f.offset)
	return s, err == nil
}

// structOf returns the struct a pointer-typed error points to.
func structOf(rt *rtype) *rtype {
	if rt.kind == reflect.Pointer && rt.elem != nil && rt.elem.kind == reflect.Struct {
		return rt.elem
	}
	if rt.kind == reflect.Struct {
		return rt
	}
	return nil
}

// errorText computes Error() for the error types of the standard library
// and the runtime whose methods only combine their fields, and returns
// the wrapped errors. data is the interface's data word.
func (r *Runtime) errorText(rt *rtype, data uint64, depth int) (string, []*Value, bool) {
	if depth > maxErrorChain {
		return "", nil, false
	}
	st := structOf(rt)
	base := data // address of the struct for pointer types
	str := func(name string) (string, bool) { return r.stringField(st, base, name) }
	// errField reads an error-typed field: nil, false when the type has
	// no such field; an unreadable marker (Err set), false when memory
	// fails, so that the chain shows the gap instead of ending there.
	errField := func(name string) (*Value, bool) {
		f, ok := fieldOf(st, name)
		if !ok {
			return nil, false
		}
		v, err := r.ifaceAt(base+f.offset, depth)
		return v, err == nil
	}
	errSlice := func(name string) ([]*Value, bool) {
		f, ok := fieldOf(st, name)
		if !ok {
			return nil, false
		}
		var hdr [16]byte // []error: data pointer, length
		if _, err := r.Proc.ReadMemory(hdr[:], base+f.offset); err != nil {
			return []*Value{unreadableValue(base+f.offset, err)}, false
		}
		ptr, n := le64(hdr[:]), le64(hdr[8:])
		if n > maxErrorChain {
			return nil, false
		}
		var out []*Value
		ok = true
		for i := uint64(0); i < n; i++ {
			v, err := r.ifaceAt(ptr+16*i, depth)
			if err != nil {
				ok = false
			} else if v.Type == "nil" { // errors.Join and fmt drop nil errors
				continue
			}
			out = append(out, v)
		}
		return out, ok
	}
	nilPtr := rt.kind == reflect.Pointer && data == 0
	if nilPtr && st != nil {
		return "<nil>", nil, false
	}
	switch rt.name {
	case "*errors.errorString":
		s, ok := str("s")
		return s, nil, ok
	case "*fmt.wrapError":
		// Error() is msg alone (fmt/errors.go), so an unreadable err
		// costs only the chain, where its unreadable marker stays.
		msg, ok := str("msg")
		w, _ := errField("err")
		return msg, nonNil(w), ok
	case "*fmt.wrapErrors":
		msg, ok := str("msg")
		ws, _ := errSlice("errs") // as for wrapError: msg is the text
		return msg, ws, ok
	case "*errors.joinError":
		ws, ok := errSlice("errs")
		if !ok {
			return "", ws, false
		}
		var parts []string
		for _, w := range ws {
			if w.Text == "" {
				return "", ws, false
			}
			parts = append(parts, w.Text)
		}
		return strings.Join(parts, "\n"), ws, true
	case "*fs.PathError":
		op, ok1 := str("Op")
		path, ok2 := str("Path")
		w, ok3 := errField("Err")
		if !(ok1 && ok2 && ok3) || w.Text == "" {
			return "", nonNil(w), false
		}
		return op + " " + path + ": " + w.Text, nonNil(w), true
	case "*os.SyscallError":
		sc, ok1 := str("Syscall")
		w, ok2 := errField("Err")
		if !(ok1 && ok2) || w.Text == "" {
			return "", nonNil(w), false
		}
		return sc + ": " + w.Text, nonNil(w), true
	case "*os.LinkError":
		op, ok1 := str("Op")
		old, ok2 := str("Old")
		nw, ok3 := str("New")
		w, ok := errField("Err")
		if !(ok1 && ok2 && ok3 && ok) || w.Text == "" {
			return "", nonNil(w), false
		}
		return op + " " + old + " " + nw + ": " + w.Text, nonNil(w), true
	case "*url.Error":
		op, ok1 := str("Op")
		u, ok2 := str("URL")
		w, ok := errField("Err")
		if !(ok1 && ok2 && ok) || w.Text == "" {
			return "", nonNil(w), false
		}
		return op + " " + strconv.Quote(u) + ": " + w.Text, nonNil(w), true
	case "*strconv.NumError":
		fn, ok1 := str("Func")
		num, ok2 := str("Num")
		w, ok := errField("Err")
		if !(ok1 && ok2 && ok) || w.Text == "" {
			return "", nonNil(w), false
		}
		return "strconv." + fn + ": parsing " + strconv.Quote(num) + ": " + w.Text, nonNil(w), true
	case "*net.DNSError":
		e, ok1 := str("Err")
		name, ok2 := str("Name")
		server, ok3 := str("Server")
		// UnwrapErr exists from Go 1.23 on (net/net.go) and is not part
		// of Error(): when it is missing the chain is empty, when
		// unreadable it holds the marker.
		w, _ := errField("UnwrapErr")
		if !(ok1 && ok2 && ok3) {
			return "", nonNil(w), false
		}
		s := "lookup " + name
		if server != "" {
			s += " on " + server
		}
		return s + ": " + e, nonNil(w), true
	case "*net.OpError":
		return r.opErrorText(st, base, depth)
	case "syscall.Errno":
		n, err := r.Proc.ReadUint64(data)
		if err != nil {
			return "", nil, false
		}
		return r.errnoText(n), nil, true
	case "runtime.boundsError":
		return r.boundsErrorText(st, data)
	case "runtime.plainError":
		s, err := r.readGoString(data)
		return s, nil, err == nil
	case "runtime.errorString":
		s, err := r.readGoString(data)
		return "runtime error: " + s, nil, err == nil
	case "runtime.errorAddressString":
		s, ok := str("msg")
		return "runtime error: " + s, nil, ok
	case "*runtime.TypeAssertionError":
		return r.typeAssertionText(st, base)
	case "*runtime.PanicNilError":
		return "panic called with nil argument", nil, true
	case "context.deadlineExceededError":
		return "context deadline exceeded", nil, true
	}
	return "", nil, false
}

// unreadableValue marks a value whose interface words could not be read
// (the same shape ErrorValue gives an unreadable itab).
func unreadableValue(addr uint64, err error) *Value {
	return &Value{Type: "?", Data: addr, Repr: "<unreadable>", Err: err}
}

// ifaceAt decodes the non-empty interface (itab, data) stored at addr: a
// "nil" value for a nil interface; an unreadable marker and the error
// when its words or its itab cannot be read.
func (r *Runtime) ifaceAt(addr uint64, depth int) (*Value, error) {
	var w [16]byte
	if _, err := r.Proc.ReadMemory(w[:], addr); err != nil {
		return unreadableValue(addr, err), err
	}
	itab, d := le64(w[:]), le64(w[8:])
	if itab == 0 {
		return &Value{Type: "nil", Text: "<nil>"}, nil
	}
	typ, err := r.Proc.ReadUint64(itab + 8) // itab.Type (internal/abi.ITab)
	if err != nil {
		err = fmt.Errorf("itab %#x: %w", itab, err)
		return unreadableValue(d, err), err
	}
	return r.valueOf(typ, d, depth+1), nil
}

func nonNil(v *Value) []*Value {
	if v == nil || v.Type == "nil" {
		return nil
	}
	return []*Value{v}
}

// errnoText is syscall.Errno.Error(): the process's own syscall.errors
// table when its symbols are there, else this machine's (both Linux).
func (r *Runtime) errnoText(n uint64) string {
	if r.errnoTable == nil {
		r.errnoTable = r.readStringArray("syscall.errors", 1024)
		if r.errnoTable == nil {
			r.errnoTable = []string{}
		}
	}
	if n < uint64(len(r.errnoTable)) && r.errnoTable[n] != "" {
		return r.errnoTable[n]
	}
	if n < 4096 {
		return syscall.Errno(n).Error()
	}
	return "errno " + strconv.FormatUint(n, 10)
}

// boundsErrorText is runtime.boundsError.Error (runtime/error.go).
func (r *Runtime) boundsErrorText(st *rtype, addr uint64) (string, []*Value, bool) {
	off := func(name string, def uint64) uint64 {
		if f, ok := fieldOf(st, name); ok {
			return f.offset
		}
		return def
	}
	var b [24]byte
	if _, err := r.Proc.ReadMemory(b[:], addr); err != nil {
		return "", nil, false
	}
	x := int64(le64(b[off("x", 0):]))
	y := int64(le64(b[off("y", 8):]))
	signed := b[off("signed", 16)] != 0
	code := int(b[off("code", 17)])
	if r.boundsFmt == nil {
		r.boundsFmt = r.readStringArray("runtime.boundsErrorFmts", 64)
		r.boundsNegFmt = r.readStringArray("runtime.boundsNegErrorFmts", 64)
		if r.boundsFmt == nil || r.boundsNegFmt == nil {
			r.boundsFmt, r.boundsNegFmt = boundsErrorFmtFallback, boundsNegErrorFmtFallback
		}
	}
	formats := r.boundsFmt
	if signed && x < 0 && code < len(r.boundsNegFmt) {
		formats = r.boundsNegFmt
	}
	if code >= len(formats) {
		return "", nil, false
	}
	f := formats[code]
	var s strings.Builder
	s.WriteString("runtime error: ")
	appendInt := func(v int64, signed bool) {
		if signed && v < 0 {
			s.WriteByte('-')
			s.WriteString(strconv.FormatUint(uint64(-v), 10))
			return
		}
		s.WriteString(strconv.FormatUint(uint64(v), 10))
	}
	for i := 0; i < len(f); i++ {
		if f[i] != '%' || i+1 == len(f) {
			s.WriteByte(f[i])
			continue
		}
		i++
		switch f[i] {
		case 'x':
			appendInt(x, signed)
		case 'y':
			appendInt(y, true)
		}
	}
	return s.String(), nil, true
}

// typeAssertionText is (*runtime.TypeAssertionError).Error.
func (r *Runtime) typeAssertionText(st *rtype, addr uint64) (string, []*Value, bool) {
	var b [40]byte
	if _, err := r.Proc.ReadMemory(b[:], addr); err != nil {
		return "", nil, false
	}
	off := func(name string, def uint64) uint64 {
		if f, ok := fieldOf(st, name); ok {
			return f.offset
		}
		return def
	}
	name := func(a uint64) string { return r.types.typeAt(a).name }
	inter := "interface"
	if a := le64(b[off("_interface", 0):]); a != 0 {
		inter = name(a)
	}
	concrete, asserted := le64(b[off("concrete", 8):]), le64(b[off("asserted", 16):])
	as := name(asserted)
	mm, err := r.readGoString(addr + off("missingMethod", 24))
	if err != nil {
		// Without missingMethod the message would claim another kind
		// of failure.
		return "", nil, false
	}
	if concrete == 0 {
		return "interface conversion: " + inter + " is nil, not " + as, nil, true
	}
	cs := name(concrete)
	if mm == "" {
		msg := "interface conversion: " + inter + " is " + cs + ", not " + as
		if cs == as {
			if r.types.pkgPath(r.types.typeAt(concrete)) != r.types.pkgPath(r.types.typeAt(asserted)) {
				msg += " (types from different packages)"
			} else {
				msg += " (types from different scopes)"
			}
		}
		return msg, nil, true
	}
	return "interface conversion: " + cs + " is not " + as + ": missing method " + mm, nil, true
}

// pkgPath is the import path recorded in a named type's UncommonType.
func (t *typeReader) pkgPath(rt *rtype) string {
	if rt == nil || rt.uncom == 0 {
		return ""
	}
	off, err := t.r.Proc.ReadUint32(rt.uncom)
	if err != nil || off == 0 {
		return ""
	}
	return t.nameAt(t.types + uint64(int64(int32(off))))
}

// opErrorText is (*net.OpError).Error (net/net.go) with the address types
// net uses. Every field it prints must be read: a missing Op or address
// would give a message the program never printed.
func (r *Runtime) opErrorText(st *rtype, base uint64, depth int) (string, []*Value, bool) {
	str := func(name string) (string, bool) { return r.stringField(st, base, name) }
	// addr reads a net.Addr field and computes its String(): nil, true
	// for a nil interface; false when it cannot be read or its type's
	// String() is not one netAddrText knows.
	addr := func(name string) (*Value, bool) {
		f, ok := fieldOf(st, name)
		if !ok {
			return nil, false
		}
		v, err := r.ifaceAt(base+f.offset, depth)
		if err != nil {
			return v, false
		}
		if v.Type == "nil" {
			return nil, true
		}
		text, ok := r.netAddrText(r.types.typeAt(v.TypeAddr), v.Data)
		if !ok {
			return v, false
		}
		v.Text = text
		return v, true
	}
	op, ok1 := str("Op")
	nt, ok2 := str("Net")
	src, ok3 := addr("Source")
	dst, ok4 := addr("Addr")
	var w *Value
	ok5 := false
	if f, ok := fieldOf(st, "Err"); ok {
		var err error
		w, err = r.ifaceAt(base+f.offset, depth)
		ok5 = err == nil
	}
	if !(ok1 && ok2 && ok3 && ok4 && ok5) || w == nil || w.Text == "" {
		return "", nonNil(w), false
	}
	s := op
	if nt != "" {
		s += " " + nt
	}
	if src != nil {
		s += " " + src.Text
	}
	if dst != nil {
		if src != nil {
			s += "->"
		} else {
			s += " "
		}
		s += dst.Text
	}
	return s + ": " + w.Text, nonNil(w), true
}

// netAddrText is String() of the address types net's errors carry:
// *net.TCPAddr, *net.UDPAddr and *net.IPAddr (ip, %zone, :port, as
// net/tcpsock.go, udpsock.go and iprawsock.go print them) and
// *net.UnixAddr (its Name, net/unixsock.go). false for another type or
// when a field cannot be read.
func (r *Runtime) netAddrText(rt *rtype, data uint64) (string, bool) {
	switch rt.name {
	case "*net.TCPAddr", "*net.UDPAddr", "*net.IPAddr", "*net.UnixAddr":
	default:
		return "", false
	}
	st := structOf(rt)
	if st == nil {
		return "", false
	}
	if data == 0 {
		return "<nil>", true
	}
	if rt.name == "*net.UnixAddr" {
		nf, ok := fieldOf(st, "Name")
		if !ok {
			return "", false
		}
		name, err := r.readGoString(data + nf.offset)
		return name, err == nil
	}
	ipf, ok := fieldOf(st, "IP")
	if !ok {
		return "", false
	}
	var hdr [16]byte // IP ([]byte): data pointer, length
	if _, err := r.Proc.ReadMemory(hdr[:], data+ipf.offset); err != nil {
		return "", false
	}
	ip := "" // a nil IP prints as "" (net/ip.go ipEmptyString)
	switch ptr, n := le64(hdr[:]), le64(hdr[8:]); n {
	case 0:
	case 4, 16:
		b := make([]byte, n)
		if _, err := r.Proc.ReadMemory(b, ptr); err != nil {
			return "", false
		}
		a, _ := netip.AddrFromSlice(b) // ok for every 4- or 16-byte slice
		ip = a.Unmap().String()
	default:
		return "", false // net.IP.String prints "?" and hex: not decoded
	}
	if zf, ok := fieldOf(st, "Zone"); ok {
		z, err := r.readGoString(data + zf.offset)
		if err != nil {
			return "", false
		}
		if z != "" {
			ip += "%" + z
		}
	}
	pf, ok := fieldOf(st, "Port")
	if !ok {
		return ip, true // *net.IPAddr has no port
	}
	port, err := r.Proc.ReadUint64(data + pf.offset)
	if err != nil {
		return "", false
	}
	host := ip
	if strings.Contains(host, ":") {
		host = "[" + host + "]" // net.JoinHostPort
	}
	return host + ":" + strconv.FormatInt(int64(port), 10), true
}

// reprDirect renders a pointer-shaped value held in an interface's data
// word.
func (r *Runtime) reprDirect(rt *rtype, word uint64, depth int) string {
	switch rt.kind {
	case reflect.Pointer:
		if word == 0 {
			return "(" + rt.name + ")(nil)"
		}
		if rt.elem != nil && depth < maxValueDepth && (rt.elem.kind == reflect.Struct || rt.elem.kind == reflect.Array) {
			return "&" + r.repr(rt.elem, word, depth+1)
		}
		return fmt.Sprintf("(%s)(%#x)", rt.name, word)
	case reflect.Struct, reflect.Array:
		// A struct or array holding one pointer: render it from a copy.
		return fmt.Sprintf("%s{%#x}", rt.name, word)
	}
	return fmt.Sprintf("(%s)(%#x)", rt.name, word)
}

// repr renders the value of type rt at addr in Go syntax, bounded.
func (r *Runtime) repr(rt *rtype, addr uint64, depth int) string {
	var b strings.Builder
	r.reprTo(&b, rt, addr, depth)
	s := b.String()
	if len(s) > maxReprLen {
		s = s[:maxReprLen] + "..."
	}
	return s
}

func (r *Runtime) reprTo(b *strings.Builder, rt *rtype, addr uint64, depth int) {
	if b.Len() > maxReprLen {
		return
	}
	if rt == nil {
		b.WriteString("?")
		return
	}
	switch {
	case rt.kind == reflect.String:
		s, err := r.readGoString(addr)
		if err != nil {
			b.WriteString("<unreadable>")
			return
		}
		if len(s) > maxStringQuote {
			s = s[:maxStringQuote]
		}
		b.WriteString(strconv.Quote(s))
		return
	case rt.kind >= reflect.Bool && rt.kind <= reflect.Complex128:
		s, ok := r.basicText(rt, addr)
		if !ok {
			b.WriteString("<unreadable>")
			return
		}
		if rt.kind == reflect.Float32 || rt.kind == reflect.Float64 {
			s = strings.TrimPrefix(s, "+")
		}
		b.WriteString(s)
		return
	}
	word, err := r.Proc.ReadUint64(addr)
	if err != nil {
		b.WriteString("<unreadable>")
		return
	}
	switch rt.kind {
	case reflect.Pointer, reflect.UnsafePointer, reflect.Chan, reflect.Func:
		if word == 0 {
			b.WriteString("nil")
			return
		}
		fmt.Fprintf(b, "%#x", word)
	case reflect.Map:
		if word == 0 {
			b.WriteString("map[](nil)")
			return
		}
		n, err := r.Proc.ReadUint64(word) // count/used: the first word in every release
		if err != nil {
			fmt.Fprintf(b, "%s(len <unreadable>)", rt.name)
			return
		}
		fmt.Fprintf(b, "%s(len %d)", rt.name, n)
	case reflect.Interface:
		if word == 0 {
			b.WriteString("nil")
			return
		}
		d, err := r.Proc.ReadUint64(addr + 8)
		if err != nil {
			b.WriteString("<unreadable>")
			return
		}
		typ := word
		if !r.types.valid(word) { // a non-empty interface: word is an itab
			if typ, err = r.Proc.ReadUint64(word + 8); err != nil {
				b.WriteString("<unreadable>")
				return
			}
		}
		if depth >= maxValueDepth {
			fmt.Fprintf(b, "(%s)(%#x)", r.types.typeAt(typ).name, d)
			return
		}
		v := r.valueOf(typ, d, depth+1)
		if v.Text != "" && v.IsError {
			b.WriteString(strconv.Quote(v.Text))
			return
		}
		b.WriteString(v.Repr)
	case reflect.Slice:
		n, err := r.Proc.ReadUint64(addr + 8)
		if err != nil {
			b.WriteString("<unreadable>")
			return
		}
		b.WriteString(rt.name)
		b.WriteByte('{')
		r.elems(b, rt.elem, word, n, depth)
		b.WriteByte('}')
	case reflect.Array:
		b.WriteString(rt.name)
		b.WriteByte('{')
		r.elems(b, rt.elem, addr, rt.alen, depth)
		b.WriteByte('}')
	case reflect.Struct:
		b.WriteString(rt.name)
		b.WriteByte('{')
		if depth >= maxValueDepth {
			b.WriteString("...}")
			return
		}
		for i, f := range rt.fields {
			if i > 0 {
				b.WriteString(", ")
			}
			if i == maxReprElems*2 {
				b.WriteString("...")
				break
			}
			b.WriteString(f.name)
			b.WriteByte(':')
			r.reprTo(b, f.typ, addr+f.offset, depth+1)
		}
		b.WriteByte('}')
	default:
		fmt.Fprintf(b, "%#x", word)
	}
}

func (r *Runtime) elems(b *strings.Builder, et *rtype, base, n uint64, depth int) {
	if et == nil || depth >= maxValueDepth {
		fmt.Fprintf(b, "...(len %d)", n)
		return
	}
	for i := uint64(0); i < n; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		if i == maxReprElems {
			fmt.Fprintf(b, "...(len %d)", n)
			return
		}
		r.reprTo(b, et, base+i*et.size, depth+1)
	}
}
