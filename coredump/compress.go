package coredump

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"
)

// Compression is the compression of a core file as given. systemd-coredump
// stores cores compressed (zstd by default; lz4 or xz on older or
// differently built systems); gzip is what people pipe cores through.
type Compression uint8

const (
	Uncompressed Compression = iota
	Zstd
	LZ4
	XZ
	Gzip
)

var compressionNames = [...]string{Uncompressed: "", Zstd: "zstd", LZ4: "lz4", XZ: "xz", Gzip: "gzip"}

func (c Compression) String() string {
	if int(c) < len(compressionNames) {
		return compressionNames[c]
	}
	return fmt.Sprintf("Compression(%d)", uint8(c))
}

// compressionMagic are the frame magics of the formats, at offset 0.
var compressionMagic = []struct {
	c     Compression
	magic []byte
}{
	{Zstd, []byte{0x28, 0xb5, 0x2f, 0xfd}},
	{LZ4, []byte{0x04, 0x22, 0x4d, 0x18}},
	{XZ, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}},
	{Gzip, []byte{0x1f, 0x8b}},
}

func compressionOf(head []byte) Compression {
	for _, m := range compressionMagic {
		if bytes.HasPrefix(head, m.magic) {
			return m.c
		}
	}
	return Uncompressed
}

// maxWindow bounds the memory a decoder may commit to the window (zstd) or
// dictionary (xz) a stream's header asks for. systemd-coredump compresses
// with the default levels (windows and dictionaries of a few MiB); even
// zstd --long=27 and xz -9 fit. The bound keeps a hostile header from
// asking for gigabytes.
const maxWindow = 128 << 20

// decompressor returns a stream decoder for c over r.
func decompressor(c Compression, r io.Reader) (io.Reader, func(), error) {
	switch c {
	case Zstd:
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(maxWindow), zstd.WithDecoderMaxMemory(1<<40))
		if err != nil {
			return nil, nil, err
		}
		return d, d.Close, nil
	case LZ4:
		return lz4.NewReader(r), func() {}, nil
	case XZ:
		// The decoder allocates whatever dictionary a block header asks
		// for: check the first block's before starting it.
		br := bufio.NewReaderSize(r, 64)
		head, _ := br.Peek(xzStreamHeaderLen + xzMaxBlockHeaderLen)
		if dict, ok := xzFirstDictSize(head); ok && dict > maxWindow {
			return nil, nil, fmt.Errorf("the xz stream asks for a %d-byte dictionary, more than the %d bytes allowed", dict, maxWindow)
		}
		cfg := xz.ReaderConfig{}
		d, err := cfg.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		return d, func() {}, nil
	case Gzip:
		d, err := gzip.NewReader(r)
		if err != nil {
			return nil, nil, err
		}
		return d, func() { d.Close() }, nil
	}
	return nil, nil, fmt.Errorf("unknown compression %v", c)
}

const (
	xzStreamHeaderLen   = 12
	xzMaxBlockHeaderLen = 1024
	xzFilterLZMA2       = 0x21
)

// xzFirstDictSize reads the LZMA2 dictionary size of the first block of an
// xz stream from its block header (xz file format 1.0.4, section 3.1).
func xzFirstDictSize(b []byte) (uint64, bool) {
	if len(b) < xzStreamHeaderLen+2 {
		return 0, false
	}
	h := b[xzStreamHeaderLen:]
	size := (int(h[0]) + 1) * 4
	if h[0] == 0 || size > len(h) {
		return 0, false // an index (no block) or a header we do not have
	}
	h = h[:size]
	flags := h[1]
	pos := 2
	varint := func() (uint64, bool) {
		var v uint64
		for i := 0; i < 9 && pos < len(h); i++ {
			c := h[pos]
			pos++
			v |= uint64(c&0x7f) << (7 * i)
			if c&0x80 == 0 {
				return v, true
			}
		}
		return 0, false
	}
	if flags&0x40 != 0 { // compressed size present
		if _, ok := varint(); !ok {
			return 0, false
		}
	}
	if flags&0x80 != 0 { // uncompressed size present
		if _, ok := varint(); !ok {
			return 0, false
		}
	}
	var dict uint64
	for range int(flags&3) + 1 {
		id, ok1 := varint()
		n, ok2 := varint()
		if !ok1 || !ok2 || n > uint64(len(h)-pos) {
			return 0, false
		}
		if id == xzFilterLZMA2 && n == 1 {
			c := h[pos]
			if c > 40 {
				return 1 << 63, true // invalid: treated as too big
			}
			if c == 40 {
				dict = 1<<32 - 1
			} else {
				dict = uint64(2|(c&1)) << (c/2 + 11)
			}
		}
		pos += int(n)
	}
	return dict, dict != 0
}

// decompressCore streams the compressed core in src into a new copy, in
// memory or in an unnamed file in dir ("" = the system's temporary
// directory), and returns it. A stream that ends early or is damaged
// part-way keeps the bytes decoded before the damage: they are a truncated
// core, which the caller analyses as such; the returned warning says what
// happened. The caller closes the copy, which frees it.
func decompressCore(src *os.File, c Compression, dir string) (cp *coreCopy, warning string, err error) {
	defer func() {
		// Decoders of hostile streams are third-party code: a panic in
		// one is a damaged stream, not a crash of ours.
		if r := recover(); r != nil {
			warning = fmt.Sprintf("%s stream damaged (decoder failed: %v); the bytes before the damage are analysed as a truncated core", c, r)
			err = nil
			if cp == nil {
				err = fmt.Errorf("%s decoder failed: %v", c, r)
			}
		}
	}()
	dec, closeDec, err := decompressor(c, io.NewSectionReader(src, 0, 1<<62))
	if err != nil {
		return nil, "", fmt.Errorf("%s stream: %w", c, err)
	}
	defer closeDec()
	dst, err := newCoreCopy(dir)
	if err != nil {
		return nil, "", err
	}
	n, extra, err := copyCore(dst, dec)
	if extra {
		warning = fmt.Sprintf("the %s stream goes on past the end of the core its headers describe (%d bytes); the rest is ignored", c, n)
	}
	if err != nil {
		var we *writeError
		if errors.As(err, &we) || errors.Is(err, errNoRoom) {
			// Storing failed (a full disk): no partial result is
			// useful enough to hide that.
			dst.close()
			return nil, "", fmt.Errorf("decompressing: %w (set TMPDIR to a roomier file system)", err)
		}
		if n == 0 {
			dst.close()
			return nil, "", fmt.Errorf("%s stream: %w", c, err)
		}
		warning = fmt.Sprintf("the %s stream is damaged or cut short after %d decompressed bytes (%v); what was decoded is analysed as a truncated core", c, n, err)
	}
	return dst, warning, nil
}

// headChunk is how much of a decompressed stream is read before its ELF
// headers are looked at; the program headers of a core follow the ELF
// header directly.
const headChunk = 1 << 20

// copyCore copies the decompressed core from dec to dst, no further than
// the end of the last segment (or section header) its ELF headers describe:
// a stream that decompresses to more (a "zip bomb", or garbage after the
// core) cannot fill memory or the disk. extra reports that such bytes were
// left unread.
func copyCore(dst *coreCopy, dec io.Reader) (n int64, extra bool, err error) {
	copyTo := func(limit int64) error {
		if limit <= n {
			return nil
		}
		m, err := io.CopyN(dst, dec, limit-n)
		n += m
		return err
	}
	done := func(err error) (int64, bool, error) {
		if err == io.EOF {
			err = nil
		}
		return n, false, err
	}
	if err := copyTo(headChunk); err != nil {
		return done(err)
	}
	limit := int64(headChunk) // not a core: openCore will say so
	if h, ok := coreTableEnds(dst.f); ok {
		if err := copyTo(h.progEnd); err != nil {
			return done(err)
		}
		if progs, err := readCoreProgs(dst.f, n); err == nil {
			for _, ph := range progs {
				if end, ok := segmentEnd(ph); ok && end > limit {
					limit = end
				}
			}
		}
		if h.xnum {
			// The kernel writes the section header holding the real
			// segment count after the last segment.
			limit = max(limit, min(h.sectEnd, limit+headChunk))
		}
	}
	// A header may claim any size: never fill memory or the file system
	// with it.
	room, known, err := dst.fit(limit - n)
	if err != nil {
		return n, false, err
	}
	if known && limit-n > room {
		if err := copyTo(n + max(room, 0)); err != nil {
			return done(err)
		}
		return n, false, fmt.Errorf("the decompressed core would take %d bytes; %s has room for %d more beside the %d kept free: %w", limit, dst.where(), max(room, 0), minFreeBytes, errNoRoom)
	}
	if err := copyTo(limit); err != nil {
		return done(err)
	}
	var one [1]byte
	k, _ := io.ReadFull(dec, one[:]) // only whether one more byte exists matters
	return n, k > 0, nil
}

// minFreeBytes is left free on the file system a core is decompressed to.
const minFreeBytes = 256 << 20

var errNoRoom = errors.New("not enough room for the decompressed core")

func freeBytes(dir string) (int64, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, false
	}
	// f_bsize is int64 on Linux and uint32 on darwin (statfs(2)).
	return int64(st.Bavail) * int64(st.Bsize), true
}

type tableEnds struct {
	progEnd, sectEnd int64
	xnum             bool // e_phnum is PN_XNUM
}

// coreTableEnds returns where an ELF file's program and section header
// tables end, when its header describes tables a core could have.
func coreTableEnds(f io.ReaderAt) (tableEnds, bool) {
	var eh [64]byte
	if _, err := f.ReadAt(eh[:], 0); err != nil || string(eh[:4]) != elf.ELFMAG {
		return tableEnds{}, false
	}
	phoff, shoff := le.Uint64(eh[32:]), le.Uint64(eh[40:])
	phentsize, phnum := uint64(le.Uint16(eh[54:])), uint64(le.Uint16(eh[56:]))
	shentsize, shnum := uint64(le.Uint16(eh[58:])), uint64(le.Uint16(eh[60:]))
	xnum := phnum == 0xffff
	if xnum { // PN_XNUM: the real count is in section header 0
		phnum = maxCoreSegments
	}
	if phoff > maxCoreOffset || shoff > maxCoreOffset || phentsize > 256 || shentsize > 256 {
		return tableEnds{}, false
	}
	t := tableEnds{progEnd: int64(phoff + phentsize*phnum), xnum: xnum}
	if shoff != 0 {
		t.sectEnd = int64(shoff + shentsize*max(shnum, 1))
	}
	return t, true
}
