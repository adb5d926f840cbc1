package coredump

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// memoryFile creates an anonymous file in memory (memfd_create(2)).
// MFD_NOEXEC_SEAL (Linux 6.3) forbids ever executing its bytes, which come
// from the input, and quiets the kernel's log line about memfds that do
// not say; older kernels refuse the flag with EINVAL.
func memoryFile(name string) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_NOEXEC_SEAL)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	}
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), "memfd:"+name), nil
}

// unnamedFile creates a file in dir that never has a name: O_TMPFILE
// (open(2), Linux 3.11). File systems without it refuse with EOPNOTSUPP
// (older kernels with EISDIR); then the file is named and unlinked at
// once.
func unnamedFile(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_RDWR|unix.O_TMPFILE|unix.O_CLOEXEC, 0o600)
	if err == nil {
		return os.NewFile(uintptr(fd), filepath.Join(dir, "(unnamed)")), nil
	}
	return createUnlinked(dir)
}

// fdPath opens the file of f anew, named or not (proc(5), /proc/pid/fd).
func fdPath(f *os.File) string { return fmt.Sprintf("/proc/self/fd/%d", f.Fd()) }

// availableMemory is what the kernel estimates can be allocated without
// swapping (MemAvailable, proc(5)), less when the memory cgroup of the
// process allows less: a memfd's pages are charged to it.
func availableMemory() (int64, bool) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	avail, ok := meminfoBytes(b, "MemAvailable:")
	if !ok {
		return 0, false
	}
	if room, ok := cgroupRoom(); ok {
		avail = min(avail, room)
	}
	return avail, true
}

func meminfoBytes(b []byte, key string) (int64, bool) {
	for line := range bytes.Lines(b) {
		if rest, ok := bytes.CutPrefix(line, []byte(key)); ok {
			f := strings.Fields(string(rest))
			if len(f) == 2 && f[1] == "kB" {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return kb << 10, true
				}
			}
		}
	}
	return 0, false
}

// cgroupRoom is how much more the memory cgroup of the process and its
// ancestors let it charge: memory.max less memory.current on cgroup v2,
// memory.limit_in_bytes less memory.usage_in_bytes on v1 (the kernel's
// cgroup-v2.rst and cgroup-v1/memory.rst). A hierarchy not mounted where
// /proc/self/cgroup says is no limit known.
func cgroupRoom() (int64, bool) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var (
		room  int64
		found bool
	)
	s := bufio.NewScanner(f)
	for s.Scan() {
		// hierarchy-ID:controllers:path (cgroups(7))
		parts := strings.SplitN(s.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		var base, maxFile, curFile string
		switch {
		case parts[0] == "0" && parts[1] == "":
			base, maxFile, curFile = "/sys/fs/cgroup", "memory.max", "memory.current"
		case strings.Contains(","+parts[1]+",", ",memory,"):
			base, maxFile, curFile = "/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes"
		default:
			continue
		}
		for dir := filepath.Join(base, parts[2]); strings.HasPrefix(dir, base); dir = filepath.Dir(dir) {
			limit, ok1 := readCgroupInt(filepath.Join(dir, maxFile))
			used, ok2 := readCgroupInt(filepath.Join(dir, curFile))
			if ok1 && ok2 {
				if r := max(limit-used, 0); !found || r < room {
					room, found = r, true
				}
			}
			if dir == base {
				break
			}
		}
	}
	return room, found
}

// readCgroupInt reads a cgroup file holding one number; "max" (no limit)
// is no number.
func readCgroupInt(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return v, err == nil
}
