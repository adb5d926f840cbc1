package coredump

import (
	"debug/elf"
	"io"
	"os"
)

// FileKind is what a file given on the command line is, told from its
// first bytes: the command line takes CORE and BINARY in either order
// (dlv, gdb and coredumpctl put the executable first) and sorts them out
// by kind.
type FileKind uint8

const (
	KindOther      FileKind = iota // not ELF, not a compressed stream
	KindCore                       // an ELF core file (ET_CORE)
	KindCompressed                 // a zstd, lz4, xz or gzip stream, as cores are stored
	KindELF                        // any other ELF file: an executable or a shared library
)

// KindOf reads the first bytes of the file at path and says what it is.
// It fails only when the file cannot be opened or read.
func KindOf(path string) (FileKind, error) {
	f, err := os.Open(path)
	if err != nil {
		return KindOther, err
	}
	defer f.Close()
	var head [18]byte // e_ident (16 bytes) and e_type
	n, err := io.ReadFull(f, head[:])
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return KindOther, err
	}
	b := head[:n]
	if compressionOf(b) != Uncompressed {
		return KindCompressed, nil
	}
	if n < len(head) || string(b[:4]) != elf.ELFMAG {
		return KindOther, nil
	}
	var t elf.Type
	switch elf.Data(b[elf.EI_DATA]) {
	case elf.ELFDATA2LSB:
		t = elf.Type(le.Uint16(b[16:]))
	case elf.ELFDATA2MSB:
		t = elf.Type(uint16(b[16])<<8 | uint16(b[17]))
	}
	if t == elf.ET_CORE {
		return KindCore, nil
	}
	return KindELF, nil
}
