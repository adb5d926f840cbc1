package coredump_test

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/report"
	"github.com/coreexplain/coreexplain/fixtures"
	"github.com/coreexplain/coreexplain/fixtures/fixturetest"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

// openFuzzFixtures are the fixtures whose cores seed FuzzOpen: pure Go,
// cgo (glibc, libraries read from disk) and C.
var openFuzzFixtures = []string{"go-nil-field", "cgo-null-write", "c-segv", "go-concurrent-map"}

// shrinkCore rewrites a core into a small one of the same shape: the same
// program headers and notes, with each PT_LOAD segment keeping only its
// first page (which holds the ELF header and build ID of every mapped
// image) and the rest marked as not dumped. It is what FuzzOpen mutates: a
// real core's structure at a size that allows thousands of runs a second.
func shrinkCore(tb testing.TB, core string, keep uint64) []byte {
	tb.Helper()
	data, err := os.ReadFile(core)
	if err != nil {
		tb.Fatal(err)
	}
	ef, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		tb.Fatal(err)
	}
	const ehsize, phentsize = 64, 56
	out := make([]byte, ehsize+phentsize*len(ef.Progs))
	copy(out, data[:ehsize])
	le := binary.LittleEndian
	le.PutUint64(out[32:], ehsize) // e_phoff
	le.PutUint64(out[40:], 0)      // e_shoff
	le.PutUint16(out[60:], 0)      // e_shnum
	le.PutUint16(out[62:], 0)      // e_shstrndx
	for i, ph := range ef.Progs {
		n := ph.Filesz
		if ph.Type == elf.PT_LOAD {
			n = min(n, keep)
		}
		off := uint64(len(out))
		out = append(out, data[ph.Off:ph.Off+n]...)
		e := out[ehsize+phentsize*i:]
		le.PutUint32(e[0:], uint32(ph.Type))
		le.PutUint32(e[4:], uint32(ph.Flags))
		le.PutUint64(e[8:], off)
		le.PutUint64(e[16:], ph.Vaddr)
		le.PutUint64(e[24:], ph.Paddr)
		le.PutUint64(e[32:], n)
		le.PutUint64(e[40:], ph.Memsz)
		le.PutUint64(e[48:], ph.Align)
	}
	return out
}

type openSeed struct {
	core, bin string
}

var (
	openSeedsOnce sync.Once
	openSeeds     []openSeed
)

func fuzzFixtures(tb testing.TB) []openSeed {
	openSeedsOnce.Do(func() {
		for _, name := range openFuzzFixtures {
			c := fixturetest.MustCrash(tb, name, fixtures.Default)
			openSeeds = append(openSeeds, openSeed{c.Core, c.Binary})
		}
	})
	return openSeeds
}

// FuzzOpen opens mutated fixture cores and exercises everything the
// coredump package offers on them: threads, memory at their stacks,
// symbols, CFI unwinding, images, truncation effects. No panic may escape
// and every failure must be one of the package's typed input errors.
func FuzzOpen(f *testing.F) {
	seeds := addOpenSeeds(f)
	f.Fuzz(func(t *testing.T, core []byte, which uint8) {
		p := openFuzzed(t, seeds, core, which)
		if p == nil {
			return
		}
		defer p.Close()
		for i, th := range p.Threads {
			if i == 64 {
				break
			}
			pc, sp := th.Regs.PC(), th.Regs.SP()
			p.Symbolize(pc)
			buf := make([]byte, 256)
			if n, err := p.ReadMemory(buf, sp); n < len(buf) {
				if _, ok := coredump.AsMemoryError(err); !ok {
					t.Fatalf("short read at sp %#x without a *MemoryError: %v", sp, err)
				}
			}
			p.ReadCString(sp, 64)
			p.Readable(sp, 4096)
			regs := coredump.NewDwarfRegs(th.Regs)
			for k := 0; k < 16 && regs != nil; k++ {
				step, err := p.UnwindCFI(regs, k == 0)
				if err != nil {
					break
				}
				regs = step.Caller
			}
		}
		for i, im := range p.Images {
			if i == 32 {
				break
			}
			im.Symbols()
			im.Section(".eh_frame")
		}
		effects := p.TruncationEffects()
		if (p.Truncation == nil) != (effects == nil) {
			t.Fatalf("truncation %v with effects %v", p.Truncation, effects)
		}
	})
}

// FuzzReport builds the full report (Go runtime, memory, findings, Delve
// for DWARF-level facts) on mutated cores and renders it. Each run opens
// Delve, so it is slow: run it for a time, not a count.
func FuzzReport(f *testing.F) {
	seeds := addOpenSeeds(f)
	f.Fuzz(func(t *testing.T, core []byte, which uint8) {
		p := openFuzzed(t, seeds, core, which)
		if p == nil {
			return
		}
		defer p.Close()
		r := report.Build(p, report.Options{All: true})
		report.WriteText(new(bytes.Buffer), r, report.TextOptions{All: true})
		report.WriteMarkdown(new(bytes.Buffer), r)
		if _, err := json.Marshal(r); err != nil {
			t.Fatal(err)
		}
		if p.Truncation != nil && r.Input.Truncated == nil {
			t.Fatal("a truncated core's report does not say so")
		}
	})
}

func addOpenSeeds(f *testing.F) []openSeed {
	seeds := fuzzFixtures(f)
	for i, s := range seeds {
		f.Add(shrinkCore(f, s.core, 4096), uint8(i))
		f.Add(shrinkCore(f, s.core, 0), uint8(i|0x80))
	}
	// Compressed cores, as systemd-coredump stores them: the decoders
	// see hostile streams too.
	small := shrinkCore(f, seeds[0].core, 0)
	for _, c := range []coredump.Compression{coredump.Zstd, coredump.LZ4, coredump.XZ} {
		f.Add(compressBytes(f, small, c), uint8(0))
	}
	return seeds
}

// openFuzzed writes core to a file and opens it with the executable which
// selects; it returns nil when Open refused it with a typed error.
func openFuzzed(t *testing.T, seeds []openSeed, core []byte, which uint8) *coredump.Process {
	dir := t.TempDir()
	path := filepath.Join(dir, "core")
	if err := os.WriteFile(path, core, 0o600); err != nil {
		t.Fatal(err)
	}
	exe := seeds[int(which&0x7f)%len(seeds)].bin
	if which&0x80 != 0 {
		exe = "" // the executable the core names
	}
	p, err := coredump.Open(path, exe, coredump.Options{TempDir: dir})
	if err != nil {
		var in *coredump.InputError
		var mis *coredump.BuildIDMismatchError
		if !errors.As(err, &in) && !errors.As(err, &mis) {
			t.Fatalf("untyped error: %T %v", err, err)
		}
		return nil
	}
	return p
}

func compressBytes(tb testing.TB, b []byte, c coredump.Compression) []byte {
	tb.Helper()
	var out bytes.Buffer
	var w io.WriteCloser
	var err error
	switch c {
	case coredump.Zstd:
		w, err = zstd.NewWriter(&out)
	case coredump.LZ4:
		w = lz4.NewWriter(&out)
	case coredump.XZ:
		w, err = xz.NewWriter(&out)
	}
	if err != nil {
		tb.Fatal(err)
	}
	w.Write(b)
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return out.Bytes()
}
