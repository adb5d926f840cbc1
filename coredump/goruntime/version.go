package goruntime

import (
	"fmt"
	"strconv"
	"strings"
)

// GoVersion is a Go release, e.g. go1.22.12.
type GoVersion struct {
	Major, Minor, Patch int
	Raw                 string // as the binary records it, e.g. "go1.26.8"
}

// ParseGoVersion parses a runtime.Version() string. Development versions
// ("devel go1.27-abcdef") parse as their base release.
func ParseGoVersion(s string) (GoVersion, error) {
	v := GoVersion{Raw: s}
	t := s
	if i := strings.Index(t, "go1"); i >= 0 {
		t = t[i+2:]
	} else {
		return v, fmt.Errorf("unrecognised Go version %q", s)
	}
	if i := strings.IndexAny(t, " -+"); i >= 0 {
		t = t[:i]
	}
	// Pre-releases: go1.27rc1, go1.27beta2.
	for _, pre := range []string{"rc", "beta"} {
		if i := strings.Index(t, pre); i >= 0 {
			t = t[:i]
		}
	}
	parts := strings.Split(t, ".")
	nums := []*int{&v.Major, &v.Minor, &v.Patch}
	for i, p := range parts {
		if i >= len(nums) {
			break
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			return v, fmt.Errorf("unrecognised Go version %q", s)
		}
		*nums[i] = n
	}
	if v.Major != 1 {
		return v, fmt.Errorf("unrecognised Go version %q", s)
	}
	return v, nil
}

// Less orders versions.
func (v GoVersion) Less(o GoVersion) bool {
	if v.Major != o.Major {
		return v.Major < o.Major
	}
	if v.Minor != o.Minor {
		return v.Minor < o.Minor
	}
	return v.Patch < o.Patch
}

// AtLeast reports whether v is go1.minor or later.
func (v GoVersion) AtLeast(minor int) bool { return v.Major > 1 || v.Minor >= minor }

func (v GoVersion) String() string {
	if v.Raw != "" {
		return v.Raw
	}
	return fmt.Sprintf("go%d.%d.%d", v.Major, v.Minor, v.Patch)
}
