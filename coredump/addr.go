package coredump

import (
	"fmt"
	"strconv"
	"strings"
)

// Addr is a target address. It prints and marshals as "0x..." so reports
// never show addresses in decimal.
type Addr uint64

func (a Addr) String() string { return fmt.Sprintf("%#x", uint64(a)) }

// MarshalText writes the address as "0x...".
func (a Addr) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText reads "0x..." (or decimal).
func (a *Addr) UnmarshalText(b []byte) error {
	v, err := ParseAddr(string(b))
	*a = v
	return err
}

// ParseAddr parses an address written as 0x-hex or decimal.
func ParseAddr(s string) (Addr, error) {
	s = strings.TrimSpace(s)
	var v uint64
	var err error
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		v, err = strconv.ParseUint(s[2:], 16, 64)
	} else {
		v, err = strconv.ParseUint(s, 10, 64)
	}
	if err != nil {
		return 0, fmt.Errorf("bad address %q", s)
	}
	return Addr(v), nil
}
