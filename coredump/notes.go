package coredump

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

var le = binary.LittleEndian

// Note types in Linux core files (include/uapi/linux/elf.h).
type NoteType uint32

const (
	NT_PRSTATUS   NoteType = 1
	NT_PRFPREG    NoteType = 2
	NT_PRPSINFO   NoteType = 3
	NT_AUXV       NoteType = 6
	NT_SIGINFO    NoteType = 0x53494749
	NT_FILE       NoteType = 0x46494c45
	NT_X86_XSTATE NoteType = 0x202
	NT_ARM_TLS    NoteType = 0x401
	NT_ARM_PAC    NoteType = 0x406
)

var noteNames = map[NoteType]string{
	NT_PRSTATUS: "NT_PRSTATUS", NT_PRFPREG: "NT_PRFPREG", NT_PRPSINFO: "NT_PRPSINFO",
	NT_AUXV: "NT_AUXV", NT_SIGINFO: "NT_SIGINFO", NT_FILE: "NT_FILE",
	NT_X86_XSTATE: "NT_X86_XSTATE", NT_ARM_TLS: "NT_ARM_TLS",
}

func (t NoteType) String() string {
	if n, ok := noteNames[t]; ok {
		return n
	}
	return fmt.Sprintf("NoteType(%#x)", uint32(t))
}

// note is one ELF note as stored in a PT_NOTE segment.
type note struct {
	Name string
	Type NoteType
	Desc []byte
	Off  int64 // file offset of the note header, for error messages
}

// maxNotes bounds how many notes one core may carry; the kernel writes about
// four per thread, so this admits a quarter million threads.
const maxNotes = 1 << 20

// parseNotes splits a PT_NOTE segment into notes. base is the segment's file
// offset. A malformed tail is reported as an error together with the notes
// before it, so a core damaged late in its notes keeps its first threads.
func parseNotes(b []byte, base int64) ([]note, error) {
	var notes []note
	off := 0
	for off+12 <= len(b) {
		if len(notes) >= maxNotes {
			return notes, fmt.Errorf("more than %d notes at offset %#x", maxNotes, base+int64(off))
		}
		namesz := int(le.Uint32(b[off:]))
		descsz := int(le.Uint32(b[off+4:]))
		typ := NoteType(le.Uint32(b[off+8:]))
		nameOff := off + 12
		descOff := nameOff + align4(namesz)
		end := descOff + align4(descsz)
		if namesz < 0 || descsz < 0 || namesz > len(b) || descsz > len(b) || descOff > len(b) || descOff+descsz > len(b) {
			return notes, fmt.Errorf("note at offset %#x: name size %d, desc size %d run past the end of the notes (%d bytes)",
				base+int64(off), namesz, descsz, len(b))
		}
		name := string(bytes.TrimRight(b[nameOff:nameOff+namesz], "\x00"))
		notes = append(notes, note{Name: name, Type: typ, Desc: b[descOff : descOff+descsz], Off: base + int64(off)})
		if end > len(b) {
			break
		}
		off = end
	}
	return notes, nil
}

func align4(n int) int { return (n + 3) &^ 3 }

// prstatus layout (struct elf_prstatus): the fields before pr_reg are the
// same on amd64 and arm64.
const (
	prstatusCursig  = 12
	prstatusSigpend = 16
	prstatusSighold = 24
	prstatusPID     = 32
	prstatusPPID    = 36
	prstatusReg     = 112
)

func regCount(a Arch) int {
	switch a {
	case ArchAMD64:
		return len(amd64RegNames)
	case ArchARM64:
		return len(arm64RegNames)
	}
	return 0
}

func decodePRStatus(a Arch, d []byte) (*Thread, error) {
	n := regCount(a)
	if len(d) < prstatusReg+8*n {
		return nil, fmt.Errorf("NT_PRSTATUS is %d bytes, want %d for %s", len(d), prstatusReg+8*n, a)
	}
	t := &Thread{
		TID:     int(int32(le.Uint32(d[prstatusPID:]))),
		CurSig:  Signal(int16(le.Uint16(d[prstatusCursig:]))),
		SigPend: le.Uint64(d[prstatusSigpend:]),
		SigHold: le.Uint64(d[prstatusSighold:]),
		Regs:    &Registers{Arch: a, Values: make([]uint64, n)},
	}
	for i := range n {
		t.Regs.Values[i] = le.Uint64(d[prstatusReg+8*i:])
	}
	if a == ArchAMD64 {
		t.Regs.TP = t.Regs.Values[amd64FSBase]
	}
	return t, nil
}

// psinfo layout (struct elf_prpsinfo, 64-bit).
const (
	psinfoPID    = 24
	psinfoPPID   = 28
	psinfoUID    = 16
	psinfoFname  = 40
	psinfoPsargs = 56
	psinfoSize   = 136
)

func decodePRPSInfo(p *Process, d []byte) error {
	if len(d) < psinfoSize {
		return fmt.Errorf("NT_PRPSINFO is %d bytes, want %d", len(d), psinfoSize)
	}
	p.PID = int(int32(le.Uint32(d[psinfoPID:])))
	p.PPID = int(int32(le.Uint32(d[psinfoPPID:])))
	p.UID = le.Uint32(d[psinfoUID:])
	p.Command = cString(d[psinfoFname : psinfoFname+16])
	// pr_psargs holds the command line with NULs turned into spaces, cut
	// at 80 bytes; the Go layer replaces it with runtime.argv when it can.
	p.Args = splitArgs(cString(d[psinfoPsargs : psinfoPsargs+80]))
	p.ArgsTruncated = len(p.Args) > 0 && len(cString(d[psinfoPsargs:psinfoPsargs+80])) >= 79
	return nil
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func splitArgs(s string) []string {
	var out []string
	for _, f := range bytes.Fields([]byte(s)) {
		out = append(out, string(f))
	}
	return out
}

// FileMapping is one NT_FILE entry: a range of the address space that a file
// backs, as the kernel recorded it at dump time.
type FileMapping struct {
	Start, End uint64
	Offset     uint64 // byte offset in the file of Start
	Path       string
}

func decodeNTFile(d []byte) ([]FileMapping, error) {
	if len(d) < 16 {
		return nil, fmt.Errorf("NT_FILE is %d bytes, too short for its header", len(d))
	}
	count := le.Uint64(d[0:])
	pageSize := le.Uint64(d[8:])
	if count > uint64(len(d)-16)/24 {
		return nil, fmt.Errorf("NT_FILE claims %d entries but holds at most %d", count, (len(d)-16)/24)
	}
	if pageSize == 0 || pageSize&(pageSize-1) != 0 || pageSize > 1<<30 {
		return nil, fmt.Errorf("NT_FILE page size %d is not a power of two", pageSize)
	}
	out := make([]FileMapping, count)
	names := d[16+24*count:]
	for i := range out {
		e := d[16+24*i:]
		out[i] = FileMapping{Start: le.Uint64(e[0:]), End: le.Uint64(e[8:]), Offset: le.Uint64(e[16:]) * pageSize}
		j := bytes.IndexByte(names, 0)
		if j < 0 {
			return out[:i], fmt.Errorf("NT_FILE names end after %d of %d entries", i, count)
		}
		out[i].Path = string(names[:j])
		names = names[j+1:]
	}
	return out, nil
}
