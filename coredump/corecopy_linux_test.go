package coredump

import (
	"os"
	"testing"
)

// The memory a decompressed core may take is measured from this system:
// more than nothing, no more than it has, and no more than its memory
// cgroup leaves when that is known.
func TestAvailableMemory(t *testing.T) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Skip(err)
	}
	total, ok := meminfoBytes(b, "MemTotal:")
	if !ok {
		t.Fatalf("no MemTotal in /proc/meminfo:\n%s", b)
	}
	avail, ok := availableMemory()
	if !ok || avail <= 0 || avail > total {
		t.Errorf("available memory %d (ok %v), total %d", avail, ok, total)
	}
	if room, ok := cgroupRoom(); ok && avail > room {
		t.Errorf("available memory %d exceeds the cgroup's room %d", avail, room)
	}
	t.Logf("available %d of %d bytes", avail, total)
	if _, ok := meminfoBytes([]byte("MemAvailable:   12 MB\n"), "MemAvailable:"); ok {
		t.Error("a size not in kB was read")
	}
}
