package libc

import (
	"fmt"
	"strings"
)

// AbortMessage is the text glibc stored before it aborted: the message of
// __libc_message (malloc_printerr's "free(): double free detected in
// tcache 2", "*** stack smashing detected ***: terminated") or of a failed
// assert().
type AbortMessage struct {
	Text string
	// Var is the address of __abort_msg, Addr the struct abort_msg_s it
	// points to ({unsigned int size; char msg[];}, glibc 2.14 and later).
	Var  uint64
	Addr uint64
	Lib  *Lib
}

// maxAbortMsg bounds the message read.
const maxAbortMsg = 16 << 10

// AbortMessage reads glibc's __abort_msg. It returns nil (and no error)
// when the variable is NULL, which is the case until glibc aborts with a
// message, and for C libraries that keep none (musl).
func (r *Runtime) AbortMessage() (*AbortMessage, error) {
	for _, lib := range r.Libs {
		if lib.Flavor != Glibc || lib.Compat {
			continue
		}
		s, ok := r.elf(lib.Image).lookup("__abort_msg")
		if !ok {
			continue
		}
		v := s.Value + lib.Image.Bias
		ptr, err := r.Proc.ReadUint64(v)
		if err != nil {
			return nil, fmt.Errorf("__abort_msg at %#x: %w", v, err)
		}
		if ptr == 0 {
			return nil, nil
		}
		size, err := r.Proc.ReadUint32(ptr)
		if err != nil {
			return nil, fmt.Errorf("abort message at %#x (from __abort_msg): %w", ptr, err)
		}
		n := maxAbortMsg
		if size > 4 && int(size)-4 < n {
			n = int(size) - 4
		}
		text, _, err := r.Proc.ReadCString(ptr+4, n)
		if err != nil && text == "" {
			return nil, fmt.Errorf("abort message at %#x: %w", ptr+4, err)
		}
		return &AbortMessage{Text: strings.TrimRight(text, "\n"), Var: v, Addr: ptr, Lib: lib}, nil
	}
	return nil, nil
}
