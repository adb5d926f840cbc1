package coredump

import "fmt"

// AuxType is an auxiliary vector entry type (AT_*).
type AuxType uint64

const (
	AT_NULL          AuxType = 0
	AT_PHDR          AuxType = 3
	AT_PHENT         AuxType = 4
	AT_PHNUM         AuxType = 5
	AT_PAGESZ        AuxType = 6
	AT_BASE          AuxType = 7
	AT_FLAGS         AuxType = 8
	AT_ENTRY         AuxType = 9
	AT_UID           AuxType = 11
	AT_EUID          AuxType = 12
	AT_GID           AuxType = 13
	AT_EGID          AuxType = 14
	AT_PLATFORM      AuxType = 15
	AT_HWCAP         AuxType = 16
	AT_CLKTCK        AuxType = 17
	AT_SECURE        AuxType = 23
	AT_BASE_PLATFORM AuxType = 24
	AT_RANDOM        AuxType = 25
	AT_HWCAP2        AuxType = 26
	AT_HWCAP3        AuxType = 29
	AT_HWCAP4        AuxType = 30
	AT_EXECFN        AuxType = 31
	AT_SYSINFO_EHDR  AuxType = 33
	AT_MINSIGSTKSZ   AuxType = 51
)

var auxNames = map[AuxType]string{
	AT_NULL: "AT_NULL", AT_PHDR: "AT_PHDR", AT_PHENT: "AT_PHENT", AT_PHNUM: "AT_PHNUM",
	AT_PAGESZ: "AT_PAGESZ", AT_BASE: "AT_BASE", AT_FLAGS: "AT_FLAGS", AT_ENTRY: "AT_ENTRY",
	AT_UID: "AT_UID", AT_EUID: "AT_EUID", AT_GID: "AT_GID", AT_EGID: "AT_EGID",
	AT_PLATFORM: "AT_PLATFORM", AT_HWCAP: "AT_HWCAP", AT_CLKTCK: "AT_CLKTCK",
	AT_SECURE: "AT_SECURE", AT_BASE_PLATFORM: "AT_BASE_PLATFORM", AT_RANDOM: "AT_RANDOM",
	AT_HWCAP2: "AT_HWCAP2", AT_HWCAP3: "AT_HWCAP3", AT_HWCAP4: "AT_HWCAP4",
	AT_EXECFN: "AT_EXECFN", AT_SYSINFO_EHDR: "AT_SYSINFO_EHDR", AT_MINSIGSTKSZ: "AT_MINSIGSTKSZ",
}

func (t AuxType) String() string {
	if n, ok := auxNames[t]; ok {
		return n
	}
	return fmt.Sprintf("AT_%d", uint64(t))
}

// AuxEntry is one auxiliary vector entry.
type AuxEntry struct {
	Type  AuxType
	Value uint64
}

// Auxv is the auxiliary vector the kernel gave the process at exec.
type Auxv []AuxEntry

// Lookup returns the value of the first entry of type t.
func (a Auxv) Lookup(t AuxType) (uint64, bool) {
	for _, e := range a {
		if e.Type == t {
			return e.Value, true
		}
	}
	return 0, false
}

func decodeAuxv(d []byte) Auxv {
	var a Auxv
	for i := 0; i+16 <= len(d); i += 16 {
		e := AuxEntry{Type: AuxType(le.Uint64(d[i:])), Value: le.Uint64(d[i+8:])}
		if e.Type == AT_NULL {
			break
		}
		a = append(a, e)
	}
	return a
}
