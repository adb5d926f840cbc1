package coredump

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
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

// zstdMaxWindow bounds the memory the zstd decoder may commit to one
// frame's window. systemd-coredump compresses with the default level
// (windows of a few MiB); the bound keeps a hostile header from asking for
// gigabytes.
const zstdMaxWindow = 1 << 30

// decompressor returns a stream decoder for c over r.
func decompressor(c Compression, r io.Reader) (io.Reader, func(), error) {
	switch c {
	case Zstd:
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecoderMaxMemory(1<<40))
		if err != nil {
			return nil, nil, err
		}
		return d, d.Close, nil
	case LZ4:
		return lz4.NewReader(r), func() {}, nil
	case XZ:
		cfg := xz.ReaderConfig{DictCap: 1 << 30}
		d, err := cfg.NewReader(r)
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

// decompressCore streams the compressed core in src into a new temporary
// file in dir ("" = the system's) and returns it, positioned anywhere. A
// stream that ends early or is damaged part-way keeps the bytes decoded
// before the damage: they are a truncated core, which the caller analyses
// as such; the returned warning says what happened. The caller removes the
// file.
func decompressCore(src *os.File, c Compression, dir string) (tmp *os.File, warning string, err error) {
	defer func() {
		// Decoders of hostile streams are third-party code: a panic in
		// one is a damaged stream, not a crash of ours.
		if r := recover(); r != nil {
			warning = fmt.Sprintf("%s stream damaged (decoder failed: %v); the bytes before the damage are analysed as a truncated core", c, r)
			err = nil
			if tmp == nil {
				err = fmt.Errorf("%s decoder failed: %v", c, r)
			}
		}
	}()
	dec, closeDec, err := decompressor(c, io.NewSectionReader(src, 0, 1<<62))
	if err != nil {
		return nil, "", fmt.Errorf("%s stream: %w", c, err)
	}
	defer closeDec()
	tmp, err = os.CreateTemp(dir, "coreexplain-core-*")
	if err != nil {
		return nil, "", fmt.Errorf("cannot create a temporary file for the decompressed core: %w", err)
	}
	n, err := io.Copy(tmp, dec)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) && pe.Path == tmp.Name() {
			// Writing failed (a full disk): no partial result is useful
			// enough to hide that.
			tmp.Close()
			os.Remove(tmp.Name())
			return nil, "", fmt.Errorf("decompressing into %s: %w (set TMPDIR to a roomier file system)", tmp.Name(), err)
		}
		if n == 0 {
			tmp.Close()
			os.Remove(tmp.Name())
			return nil, "", fmt.Errorf("%s stream: %w", c, err)
		}
		warning = fmt.Sprintf("the %s stream is damaged or cut short after %d decompressed bytes (%v); what was decoded is analysed as a truncated core", c, n, err)
	}
	return tmp, warning, nil
}
