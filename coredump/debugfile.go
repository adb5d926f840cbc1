package coredump

import (
	"bytes"
	"debug/elf"
	"encoding/hex"
	"path/filepath"
	"strings"
)

// debugRoot is where distributions install separate debug files (Debian's
// -dbg and -dbgsym packages, Fedora's -debuginfo), relative to the root.
const debugRoot = "/usr/lib/debug"

// DebugFile returns the path of the image's separate debug file, as the
// target names it (under the sysroot on this machine), "" when it has none: the file strip left the symbol table and
// DWARF in. It is found as gdb finds it (gdb manual, "Separate Debug
// Files"): by build ID under /usr/lib/debug/.build-id, else by the
// .gnu_debuglink name next to the file, in its .debug folder or under
// /usr/lib/debug, all under the sysroot. A file whose build ID differs from
// the image's is not taken.
func (im *Image) DebugFile() string {
	im.debugELF()
	return im.debugPath
}

// debugELF opens the separate debug file once; nil when there is none.
func (im *Image) debugELF() *elf.File {
	im.debugOnce.Do(func() {
		f, err := im.ELF()
		if err != nil || im.Status == ImageInMemory {
			return
		}
		id := im.FileIDs.GNU
		var candidates []string
		if len(id) > 2 {
			candidates = append(candidates, filepath.Join(debugRoot, ".build-id", id[:2], id[2:]+".debug"))
		}
		if name := debugLink(f); name != "" {
			dir := filepath.Dir(strings.TrimSuffix(im.Path, " (deleted)"))
			candidates = append(candidates, filepath.Join(dir, name), filepath.Join(dir, ".debug", name), filepath.Join(debugRoot, dir, name))
		}
		for _, c := range candidates {
			hf, err := openRegular(im.proc.hostPath(c))
			if err != nil {
				continue
			}
			df, err := safeNewELF(hf)
			if err != nil || df.Machine != f.Machine || (id != "" && sectionBuildID(df) != id) {
				hf.Close()
				continue
			}
			im.debugFile, im.debugPath, im.debugHost = df, c, hf
			return
		}
	})
	return im.debugFile
}

// debugLink is the file name .gnu_debuglink records ("" when none).
func debugLink(f *elf.File) string {
	s := f.Section(".gnu_debuglink")
	if s == nil || s.Size > 4096 {
		return ""
	}
	b, err := s.Data()
	if err != nil {
		return ""
	}
	name, _, ok := bytes.Cut(b, []byte{0})
	if !ok || len(name) == 0 || bytes.ContainsRune(name, '/') {
		return ""
	}
	return string(name)
}

// sectionBuildID reads the GNU build ID from .note.gnu.build-id; a debug
// file keeps that section, while its program headers may describe memory
// the file does not hold.
func sectionBuildID(f *elf.File) string {
	s := f.Section(".note.gnu.build-id")
	if s == nil || s.Size > 1024 {
		return ""
	}
	b, err := s.Data()
	if err != nil || len(b) < 16 {
		return ""
	}
	bo := f.ByteOrder
	namesz, descsz := bo.Uint32(b), bo.Uint32(b[4:])
	if bo.Uint32(b[8:]) != ntGNUBuildID || namesz != 4 || uint64(descsz) > uint64(len(b)) {
		return ""
	}
	off := 12 + 4 // name "GNU\0", 4-byte aligned
	if off+int(descsz) > len(b) {
		return ""
	}
	return hex.EncodeToString(b[off : off+int(descsz)])
}
