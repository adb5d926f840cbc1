package coredump

import (
	"bytes"
	"io"
	"os"
	"testing"
)

// Every way of making a copy without memory (O_TMPFILE, and the named
// file unlinked at once that darwin uses) leaves dir empty while the copy
// is written and read back.
func TestUnnamedFiles(t *testing.T) {
	for _, tc := range []struct {
		name   string
		create func(string) (*os.File, error)
	}{
		{"unnamedFile", unnamedFile},
		{"createUnlinked", createUnlinked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f, err := tc.create(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			want := bytes.Repeat([]byte("core"), 1<<16)
			if _, err := f.Write(want); err != nil {
				t.Fatal(err)
			}
			if names, _ := os.ReadDir(dir); len(names) != 0 {
				t.Errorf("%s left %v in the directory", tc.name, names)
			}
			got, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<62))
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("read back %d bytes (%v), wrote %d", len(got), err, len(want))
			}
			// Another reader gets the same bytes through the path
			// Delve is given. It reads at offsets: on darwin the path
			// opens a dup(2) of f, which shares f's offset (fd(4)).
			other, err := os.Open(fdPath(f))
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			g, err := io.ReadAll(io.NewSectionReader(other, 0, 1<<62))
			if err != nil || !bytes.Equal(g, want) {
				t.Errorf("%s: read %d bytes (%v)", fdPath(f), len(g), err)
			}
		})
	}
	if _, err := createUnlinked(t.TempDir() + "/missing"); err == nil {
		t.Error("a file was created in a missing directory")
	}
}
