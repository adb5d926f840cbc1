package coredump_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/report"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"
)

// compressFile writes src compressed as systemd-coredump would store it.
func compressFile(t *testing.T, src, dst string, c coredump.Compression) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var w io.WriteCloser
	switch c {
	case coredump.Zstd:
		w, err = zstd.NewWriter(out)
	case coredump.LZ4:
		w = lz4.NewWriter(out)
	case coredump.XZ:
		w, err = xz.NewWriter(out)
	case coredump.Gzip:
		w, err = gzip.NewWriterLevel(out, gzip.BestSpeed)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, in); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// reportJSON builds the report of core and renders it as JSON, without the
// fields that name the input file.
func reportJSON(t *testing.T, p *coredump.Process) string {
	t.Helper()
	r := report.Build(p, report.Options{})
	r.Input = report.Input{}
	b, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func tempFilesLike(t *testing.T, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "coreexplain-core-*"))
	return m
}

// entries are the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// openCopies are the files this process holds open that are decompressed
// cores: memfds, and files without a name in dir (proc(5): a deleted
// file's link ends in " (deleted)").
func openCopies(t *testing.T, dir string) (memfds, unnamed int) {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	for _, fd := range fds {
		l, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		switch {
		case err != nil:
		case strings.HasPrefix(l, "/memfd:coreexplain-core"):
			memfds++
		case strings.HasPrefix(l, dir+"/") && strings.HasSuffix(l, " (deleted)"):
			unnamed++
		}
	}
	return memfds, unnamed
}

// closedCopies counts the copies still open after Close, once the garbage
// collector has run: Delve, which the report uses, opens the copy by path
// and never closes it, and only the collector does once the Process
// dropped it.
func closedCopies(t *testing.T, dir string) int {
	t.Helper()
	var memfds, unnamed int
	for range 20 {
		if memfds, unnamed = openCopies(t, dir); memfds+unnamed == 0 {
			break
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	return memfds + unnamed
}

// A compressed core, as systemd-coredump stores it, opens directly and
// gives the same report as the plain core. It is decompressed into memory
// that Close frees; nothing ever appears in TempDir.
func TestCompressedCores(t *testing.T) {
	c := crash(t, "cgo-null-write")
	plain := open(t, c.Core, c.Binary)
	want := reportJSON(t, plain)
	for _, comp := range []coredump.Compression{coredump.Zstd, coredump.LZ4, coredump.XZ, coredump.Gzip} {
		t.Run(comp.String(), func(t *testing.T) {
			if comp == coredump.XZ && testing.Short() {
				t.Skip("xz compression of an 80 MB core is slow")
			}
			dir, tmp := t.TempDir(), t.TempDir()
			z := filepath.Join(dir, "core."+comp.String())
			compressFile(t, c.Core, z, comp)
			if n := closedCopies(t, tmp); n != 0 {
				t.Fatalf("%d copies of closed cores are still open", n)
			}
			p, err := coredump.Open(z, c.Binary, coredump.Options{TempDir: tmp})
			if err != nil {
				t.Fatal(err)
			}
			if p.Compression != comp || p.Core != z || p.CoreSize != plain.CoreSize || p.Truncation != nil {
				t.Errorf("compression %v, core %q, size %d (plain %d), truncation %v", p.Compression, p.Core, p.CoreSize, plain.CoreSize, p.Truncation)
			}
			if left := entries(t, tmp); len(left) != 0 {
				t.Errorf("the decompressed copy has a name in TempDir: %v", left)
			}
			if memfds, unnamed := openCopies(t, tmp); memfds != 1 || unnamed != 0 {
				t.Errorf("the decompressed copy is in %d memfds and %d unnamed files in TempDir, want 1 memfd", memfds, unnamed)
			}
			if got := reportJSON(t, p); got != want {
				t.Errorf("report of the %s core differs from the plain core's:\n%s", comp, firstDiff(got, want))
			}
			if err := p.Close(); err != nil {
				t.Error(err)
			}
			if memfds := closedCopies(t, tmp); memfds != 0 {
				t.Errorf("Close left %d memfds open", memfds)
			}
			// Delve reads the decompressed copy too, through its own
			// descriptor (which Delve never closes).
			p, err = coredump.Open(z, c.Binary, coredump.Options{TempDir: tmp})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if _, err := p.Delve(); err != nil {
				t.Errorf("Delve on the decompressed core: %v", err)
			}
		})
	}
}

// A decompressed core that memory cannot hold goes to a file in TempDir
// that has no name from the start: the head decoded into memory moves
// there, the report is the plain core's, and TempDir stays empty.
func TestCompressedCoreSpills(t *testing.T) {
	c := crash(t, "cgo-null-write")
	plain := open(t, c.Core, c.Binary)
	want := reportJSON(t, plain)
	dir, tmp := t.TempDir(), t.TempDir()
	z := filepath.Join(dir, "core.zst")
	compressFile(t, c.Core, z, coredump.Zstd)
	defer coredump.SetMemoryLimit("0")()
	if n := closedCopies(t, tmp); n != 0 {
		t.Fatalf("%d copies of closed cores are still open", n)
	}
	p, err := coredump.Open(z, c.Binary, coredump.Options{TempDir: tmp})
	if err != nil {
		t.Fatal(err)
	}
	if p.CoreSize != plain.CoreSize || p.Truncation != nil {
		t.Errorf("size %d (plain %d), truncation %v", p.CoreSize, plain.CoreSize, p.Truncation)
	}
	if left := entries(t, tmp); len(left) != 0 {
		t.Errorf("the decompressed copy has a name in TempDir: %v", left)
	}
	if memfds, unnamed := openCopies(t, tmp); memfds != 0 || unnamed != 1 {
		t.Errorf("the decompressed copy is in %d memfds and %d unnamed files in TempDir, want 1 file", memfds, unnamed)
	}
	if got := reportJSON(t, p); got != want {
		t.Errorf("report of the spilled core differs from the plain core's:\n%s", firstDiff(got, want))
	}
	p.Close()
	if left := closedCopies(t, tmp); left != 0 {
		t.Errorf("Close left %d unnamed files open", left)
	}
	// A TempDir that does not exist is an input error that names it.
	gone := filepath.Join(tmp, "gone")
	_, err = coredump.Open(z, c.Binary, coredump.Options{TempDir: gone})
	var in *coredump.InputError
	if !errors.As(err, &in) || !strings.Contains(err.Error(), gone) {
		t.Errorf("decompressing into a missing directory: %v", err)
	}
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return "line " + al[i] + "\nwant " + bl[i]
		}
	}
	return "lengths differ"
}

// A compressed stream cut short yields the decoded prefix analysed as a
// truncated core, with a warning that names the damage.
func TestCompressedCoreCutShort(t *testing.T) {
	c := crash(t, "go-nil-map")
	dir := t.TempDir()
	z := filepath.Join(dir, "core.zst")
	compressFile(t, c.Core, z, coredump.Zstd)
	data, err := os.ReadFile(z)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.zst")
	os.WriteFile(cut, data[:len(data)*6/10], 0o644)
	p, err := coredump.Open(cut, c.Binary, coredump.Options{TempDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Truncation == nil || p.Truncation.FileSize >= p.Truncation.ExpectedSize || len(p.Threads) == 0 {
		t.Fatalf("truncation %+v, %d threads", p.Truncation, len(p.Threads))
	}
	if !containsWith(p.Warnings, "zstd stream is damaged or cut short") {
		t.Errorf("warnings %q", p.Warnings)
	}
	// Garbage after a valid magic: an input error, not a panic.
	badDir := t.TempDir()
	bad := filepath.Join(badDir, "bad.zst")
	os.WriteFile(bad, append([]byte{0x28, 0xb5, 0x2f, 0xfd}, bytes.Repeat([]byte{0xff}, 64)...), 0o644)
	_, err = coredump.Open(bad, c.Binary, coredump.Options{TempDir: badDir})
	var in *coredump.InputError
	if !errors.As(err, &in) || !strings.Contains(err.Error(), "zstd") {
		t.Errorf("open of a broken zstd stream: %v", err)
	}
	if left := tempFilesLike(t, badDir); len(left) != 0 {
		t.Errorf("failed opens left temporary files: %v", left)
	}
}

func containsWith(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// systemd-coredump's metadata (extended attributes and the file name) is
// exposed on Process and shown in the report.
func TestCoredumpMetadata(t *testing.T) {
	c := crash(t, "go-nil-map")
	dir := t.TempDir()
	name := filepath.Join(dir, `core.go-nil\x2emap.1000.0123456789abcdef0123456789abcdef.4242.1789180209000000.zst`)
	compressFile(t, c.Core, name, coredump.Zstd)

	// Without attributes, the file name still says who and when.
	p, err := coredump.Open(name, c.Binary, coredump.Options{TempDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	m := p.Coredump
	if m == nil || m.Source != "file name" || m.Comm != "go-nil.map" || m.UID != 1000 || m.PID != 4242 ||
		m.BootID != "0123456789abcdef0123456789abcdef" || !m.Timestamp.Equal(time.UnixMicro(1789180209000000)) {
		t.Errorf("metadata from the file name: %+v", m)
	}
	p.Close()

	attrs := map[string]string{
		"pid": "4242", "uid": "1000", "gid": "1001", "signal": "6", "timestamp": "1789180209123456",
		"rlimit": "18446744073709551615", "hostname": "web-7", "comm": "go-nil-map",
		"exe": "/srv/bin/go-nil-map", "unit": "go-nil-map.service",
	}
	for k, v := range attrs {
		if err := unix.Setxattr(name, "user.coredump."+k, []byte(v), 0); err != nil {
			if errors.Is(err, unix.ENOTSUP) {
				t.Skipf("the file system of %s has no user extended attributes", dir)
			}
			t.Fatal(err)
		}
	}
	p, err = coredump.Open(name, c.Binary, coredump.Options{TempDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	m = p.Coredump
	if m == nil || m.Source != "xattr" || m.PID != 4242 || m.UID != 1000 || m.GID != 1001 || m.Signal != coredump.SIGABRT ||
		m.Hostname != "web-7" || m.Exe != "/srv/bin/go-nil-map" || m.Rlimit != "18446744073709551615" ||
		!m.Timestamp.Equal(time.UnixMicro(1789180209123456)) || m.Extra["unit"] != "go-nil-map.service" ||
		m.BootID != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("metadata from xattrs: %+v", m)
	}
	r := report.Build(p, report.Options{})
	if r.Input.Compression != "zstd" || r.Input.Coredump == nil || r.Input.Coredump.Hostname != "web-7" || *r.Input.Coredump.GID != 1001 {
		t.Errorf("report input: %+v", r.Input)
	}
	var text bytes.Buffer
	report.WriteText(&text, r, report.TextOptions{})
	for _, want := range []string{"systemd-coredump on web-7 at 2026-09-12T", "pid 4242, uid 1000, gid 1001, SIGABRT", "exe /srv/bin/go-nil-map", "zstd-compressed"} {
		if !strings.Contains(strings.Join(strings.Fields(text.String()), " "), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
}

// A compressed stream whose header asks for a huge window or dictionary is
// refused before anything is allocated for it.
func TestCompressedHugeWindow(t *testing.T) {
	dir := t.TempDir()
	// xz: stream header, then a block header whose LZMA2 filter asks for
	// a 4 GiB dictionary (property byte 40).
	xzHead := []byte{0xfd, '7', 'z', 'X', 'Z', 0, 0, 1, 0x69, 0x22, 0xde, 0x36,
		0x02, 0x00, 0x21, 0x01, 40, 0, 0, 0, 0, 0, 0, 0}
	path := filepath.Join(dir, "huge.xz")
	os.WriteFile(path, xzHead, 0o644)
	_, err := coredump.Open(path, "", coredump.Options{TempDir: dir})
	if err == nil || !strings.Contains(err.Error(), "dictionary") {
		t.Errorf("xz with a 4 GiB dictionary: %v", err)
	}
	// zstd: a frame header with a 2 GiB window (window descriptor 0xa8).
	zHead := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xa8, 0, 0, 0, 0, 0, 0}
	path = filepath.Join(dir, "huge.zst")
	os.WriteFile(path, zHead, 0o644)
	_, err = coredump.Open(path, "", coredump.Options{TempDir: dir})
	if err == nil || !strings.Contains(err.Error(), "zstd") {
		t.Errorf("zstd with a 2 GiB window: %v", err)
	}
	if left := tempFilesLike(t, dir); len(left) != 0 {
		t.Errorf("left %v", left)
	}
}

// Bytes a stream decompresses to past the end of the core its headers
// describe are not written out: a "zip bomb" behind a core cannot fill the
// disk.
func TestCompressedTrailingGarbage(t *testing.T) {
	c := crash(t, "go-nil-map")
	data, err := os.ReadFile(c.Core)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	padded := filepath.Join(dir, "padded")
	os.WriteFile(padded, append(data, make([]byte, 64<<20)...), 0o644)
	z := filepath.Join(dir, "core.zst")
	compressFile(t, padded, z, coredump.Zstd)
	os.Remove(padded)
	p, err := coredump.Open(z, c.Binary, coredump.Options{TempDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.CoreSize != int64(len(data)) || p.Truncation != nil {
		t.Errorf("decompressed %d bytes of a %d-byte core (truncation %v)", p.CoreSize, len(data), p.Truncation)
	}
	if !containsWith(p.Warnings, "goes on past the end of the core") {
		t.Errorf("warnings %q", p.Warnings)
	}
}
