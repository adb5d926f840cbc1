package report

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/coreexplain/coreexplain/coredump"
)

// Coredump is what the program that stored the core (systemd-coredump,
// what coredumpctl lists) recorded about the crash next to it.
type Coredump struct {
	Source    string            `json:"source"` // "xattr" or "file name"
	PID       int               `json:"pid,omitempty"`
	UID       *int              `json:"uid,omitempty"`
	GID       *int              `json:"gid,omitempty"`
	Signal    string            `json:"signal,omitempty"`
	Timestamp *time.Time        `json:"timestamp,omitempty"`
	Rlimit    string            `json:"rlimit,omitempty"`
	Hostname  string            `json:"hostname,omitempty"`
	Comm      string            `json:"comm,omitempty"`
	Exe       string            `json:"exe,omitempty"`
	Cmdline   string            `json:"cmdline,omitempty"`
	BootID    string            `json:"boot_id,omitempty"`
	Extra     map[string]string `json:"extra,omitempty"`
}

// buildCoredump fills Input's compression and coredump metadata.
func buildCoredump(p *coredump.Process, in *Input) {
	in.Compression = p.Compression.String()
	m := p.Coredump
	if m == nil {
		return
	}
	c := &Coredump{Source: m.Source, PID: m.PID, Rlimit: m.Rlimit, Hostname: m.Hostname,
		Comm: m.Comm, Exe: m.Exe, Cmdline: m.Cmdline, BootID: m.BootID, Extra: m.Extra}
	if m.UID >= 0 {
		c.UID = &m.UID
	}
	if m.GID >= 0 {
		c.GID = &m.GID
	}
	if m.Signal > 0 {
		c.Signal = m.Signal.String()
	}
	if !m.Timestamp.IsZero() {
		ts := m.Timestamp
		c.Timestamp = &ts
	}
	in.Coredump = c
}

// coredumpLine renders the stored-core facts in one line, "" when there are
// none.
func coredumpLine(in Input) string {
	var parts []string
	if c := in.Coredump; c != nil {
		s := "systemd-coredump"
		if c.Hostname != "" {
			s += " on " + c.Hostname
		}
		if c.Timestamp != nil {
			s += " at " + c.Timestamp.Format(time.RFC3339)
		}
		parts = append(parts, s)
		var ids []string
		if c.PID != 0 {
			ids = append(ids, fmt.Sprintf("pid %d", c.PID))
		}
		if c.UID != nil {
			ids = append(ids, fmt.Sprintf("uid %d", *c.UID))
		}
		if c.GID != nil {
			ids = append(ids, fmt.Sprintf("gid %d", *c.GID))
		}
		if c.Signal != "" {
			ids = append(ids, c.Signal)
		}
		if len(ids) > 0 {
			parts = append(parts, strings.Join(ids, ", "))
		}
		switch {
		case c.Cmdline != "":
			parts = append(parts, "cmdline "+c.Cmdline)
		case c.Exe != "":
			parts = append(parts, "exe "+c.Exe)
		case c.Comm != "":
			parts = append(parts, "comm "+c.Comm)
		}
		keys := make([]string, 0, len(c.Extra))
		for k := range c.Extra {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			parts = append(parts, k+" "+c.Extra[k])
		}
	}
	if in.Compression != "" {
		parts = append(parts, in.Compression+"-compressed")
	}
	return strings.Join(parts, "; ")
}
