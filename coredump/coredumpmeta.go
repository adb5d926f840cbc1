package coredump

import (
	"bytes"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// CoredumpMeta is what the program that stored the core recorded about the
// crash outside the core itself. systemd-coredump (what coredumpctl lists)
// writes it into user.coredump.* extended attributes of the core file and
// into the file's name, core.COMM.UID.BOOTID.PID.USEC[.zst]; a core copied
// without its attributes keeps only the name.
type CoredumpMeta struct {
	// Source says where the facts come from: "xattr" or "file name".
	Source    string
	PID       int
	UID, GID  int // -1 when not recorded
	Signal    Signal
	Timestamp time.Time // zero when not recorded
	Rlimit    string    // RLIMIT_CORE at the crash, as recorded ("18446744073709551615" = unlimited)
	Hostname  string
	Comm      string
	Exe       string
	Cmdline   string
	BootID    string
	// Extra holds any other user.coredump.* attributes, by name without
	// the prefix (newer systemd versions add more).
	Extra map[string]string
}

const xattrPrefix = "user.coredump."

// maxXattrBytes bounds one attribute's value; systemd's are short strings
// (the longest, exe and cmdline, are paths and command lines).
const maxXattrBytes = 64 << 10

// readCoredumpMeta reads the metadata stored with the core at path, or
// returns nil when there is none.
func readCoredumpMeta(path string) *CoredumpMeta {
	if m := metaFromXattrs(path); m != nil {
		if n := metaFromFileName(path); n != nil && m.BootID == "" {
			m.BootID = n.BootID
		}
		return m
	}
	return metaFromFileName(path)
}

func metaFromXattrs(path string) *CoredumpMeta {
	names, ok := listXattrs(path)
	if !ok {
		return nil
	}
	m := &CoredumpMeta{Source: "xattr", UID: -1, GID: -1}
	found := false
	for _, name := range names {
		if !strings.HasPrefix(name, xattrPrefix) {
			continue
		}
		val, ok := getXattr(path, name)
		if !ok {
			continue
		}
		found = true
		key := strings.TrimPrefix(name, xattrPrefix)
		if !m.set(key, val) {
			if m.Extra == nil {
				m.Extra = map[string]string{}
			}
			m.Extra[key] = val
		}
	}
	if !found {
		return nil
	}
	return m
}

// set stores one attribute; it reports false for a key it does not know.
func (m *CoredumpMeta) set(key, val string) bool {
	num := func() int {
		n, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil {
			return -1
		}
		return n
	}
	switch key {
	case "pid":
		m.PID = max(num(), 0)
	case "uid":
		m.UID = num()
	case "gid":
		m.GID = num()
	case "signal":
		m.Signal = Signal(max(num(), 0))
	case "timestamp":
		m.Timestamp = parseCoredumpTime(val)
	case "rlimit":
		m.Rlimit = val
	case "hostname":
		m.Hostname = val
	case "comm":
		m.Comm = val
	case "exe":
		m.Exe = val
	case "cmdline":
		m.Cmdline = val
	default:
		return false
	}
	return true
}

// parseCoredumpTime reads systemd's timestamp: microseconds since the
// epoch (older versions and core_pattern's %t give seconds).
func parseCoredumpTime(s string) time.Time {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	if n < 1e11 { // seconds: 1e11 s is the year 5138
		return time.Unix(n, 0).UTC()
	}
	return time.UnixMicro(n).UTC()
}

// systemdName matches systemd-coredump's file name:
// core.COMM.UID.BOOTID.PID.USEC, COMM escaped, then a compression suffix.
var systemdName = regexp.MustCompile(`^core\.(.+)\.([0-9]+)\.([0-9a-f]{32})\.([0-9]+)\.([0-9]+)(\.(zst|lz4|xz))?$`)

func metaFromFileName(path string) *CoredumpMeta {
	sm := systemdName.FindStringSubmatch(filepath.Base(path))
	if sm == nil {
		return nil
	}
	m := &CoredumpMeta{Source: "file name", GID: -1, Comm: unescapeC(sm[1]), BootID: sm[3]}
	m.UID, _ = strconv.Atoi(sm[2])
	m.PID, _ = strconv.Atoi(sm[4])
	m.Timestamp = parseCoredumpTime(sm[5])
	return m
}

// unescapeC undoes systemd's \xNN escaping of file name characters.
func unescapeC(s string) string {
	if !strings.Contains(s, `\x`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			if v, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func listXattrs(path string) ([]string, bool) {
	n, err := unix.Listxattr(path, nil)
	if err != nil || n <= 0 {
		return nil, false
	}
	buf := make([]byte, min(n, maxXattrBytes))
	n, err = unix.Listxattr(path, buf)
	if err != nil || n <= 0 {
		return nil, false
	}
	var names []string
	for _, b := range bytes.Split(buf[:n], []byte{0}) {
		if len(b) > 0 {
			names = append(names, string(b))
		}
	}
	sort.Strings(names)
	return names, true
}

func getXattr(path, name string) (string, bool) {
	n, err := unix.Getxattr(path, name, nil)
	if err != nil || n < 0 {
		return "", false
	}
	buf := make([]byte, min(n, maxXattrBytes))
	n, err = unix.Getxattr(path, name, buf)
	if err != nil {
		return "", false
	}
	return string(bytes.TrimRight(buf[:n], "\x00")), true
}
