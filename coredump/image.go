package coredump

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// ImageStatus says whether an image's file on this machine can be trusted to
// be the one the process had mapped.
type ImageStatus uint8

const (
	// ImageVerified: the file's build ID (or first page) equals the copy
	// of its header in the core.
	ImageVerified ImageStatus = iota + 1
	// ImageUnverified: the file was found, but the core holds no copy of
	// its header to compare with.
	ImageUnverified
	// ImageMismatch: the file on this machine is a different build.
	ImageMismatch
	// ImageMissing: no such file on this machine (or under the sysroot).
	ImageMissing
	// ImageInMemory: the image is read from the process's memory itself
	// (the vDSO).
	ImageInMemory
)

var imageStatusText = [...]string{
	ImageVerified: "verified", ImageUnverified: "unverified", ImageMismatch: "mismatch",
	ImageMissing: "missing", ImageInMemory: "in-memory",
}

func (s ImageStatus) String() string {
	if int(s) < len(imageStatusText) && imageStatusText[s] != "" {
		return imageStatusText[s]
	}
	return fmt.Sprintf("ImageStatus(%d)", uint8(s))
}

// Usable reports whether the file's bytes may be used in place of the
// process's.
func (s ImageStatus) Usable() bool {
	return s == ImageVerified || s == ImageUnverified || s == ImageInMemory
}

// An Image is an ELF object mapped into the process: the executable, a
// shared library, the dynamic loader or the vDSO.
type Image struct {
	Path     string // as the target named it
	HostPath string // the file read on this machine, "" when none
	Base     uint64 // lowest address mapped
	End      uint64 // end of the highest mapping
	Bias     uint64 // load bias: run-time address = link-time address + Bias
	IsExe    bool

	// CoreIDs are the build IDs found in the core's copy of the image's
	// header page; FileIDs those of the file on this machine.
	CoreIDs BuildIDs
	FileIDs BuildIDs
	Status  ImageStatus
	Note    string // why the status is not verified, for the report

	Mappings []*Mapping

	proc     *Process
	once     sync.Once
	file     *elf.File
	fileErr  error
	symOnce  sync.Once
	syms     []Symbol // sorted by Addr, run-time addresses
	byName   map[string]int
	cfiOnce  sync.Once
	cfi      *cfiTable
	cfiErr   error
	hostFile *os.File

	debugOnce sync.Once
	debugFile *elf.File // separate debug file (debugfile.go), nil when none
	debugPath string
	debugHost *os.File
}

// Name is the image's file name without directories.
func (im *Image) Name() string { return filepath.Base(im.Path) }

// Contains reports whether addr lies in one of the image's mappings.
func (im *Image) Contains(addr uint64) bool {
	for _, m := range im.Mappings {
		if m.Contains(addr) {
			return true
		}
	}
	return false
}

// ID is the best identity known for the image: its build ID from the core,
// else from the file.
func (im *Image) ID() BuildIDs {
	if !im.CoreIDs.Empty() {
		return im.CoreIDs
	}
	return im.FileIDs
}

// maxInMemoryImage bounds the size of an image read from the process's
// memory; the vDSO is a few pages.
const maxInMemoryImage = 16 << 20

// ELF opens the image's ELF file: the file on this machine, or for the vDSO
// the bytes in the process's memory. It fails when the file is missing or a
// different build.
func (im *Image) ELF() (*elf.File, error) {
	im.once.Do(func() {
		if !im.Status.Usable() {
			im.fileErr = fmt.Errorf("%s: %s", im.Path, im.statusText())
			return
		}
		if im.Status == ImageInMemory {
			if im.End-im.Base > maxInMemoryImage {
				im.fileErr = fmt.Errorf("%s: %d bytes mapped, more than an in-memory image (the vDSO) can be", im.Path, im.End-im.Base)
				return
			}
			buf := make([]byte, im.End-im.Base)
			if _, err := im.proc.ReadMemory(buf, im.Base); err != nil {
				im.fileErr = fmt.Errorf("%s: %w", im.Path, err)
				return
			}
			im.file, im.fileErr = safeNewELF(bytes.NewReader(buf))
			return
		}
		f, err := openRegular(im.HostPath)
		if err != nil {
			im.fileErr = err
			return
		}
		im.hostFile = f
		im.file, im.fileErr = safeNewELF(f)
	})
	return im.file, im.fileErr
}

func (im *Image) statusText() string {
	if im.Note != "" {
		return im.Status.String() + ": " + im.Note
	}
	return im.Status.String()
}

// safeNewELF is elf.NewFile that turns a panic on a malformed file into an
// error; the files are whatever the sysroot holds.
func safeNewELF(r interface {
	ReadAt([]byte, int64) (int, error)
}) (f *elf.File, err error) {
	defer func() {
		if r := recover(); r != nil {
			f, err = nil, fmt.Errorf("malformed ELF file: %v", r)
		}
	}()
	return elf.NewFile(r)
}

// Symbol is an ELF symbol at its run-time address.
type Symbol struct {
	Name string
	Addr uint64
	Size uint64
	Kind elf.SymType

	// bindRank orders names at one address: 0 global, 1 weak, 2 local. A
	// global name is the one callers know ("__stack_chk_fail" over musl's
	// weak hidden "__stack_chk_fail_local"); local ones are static or alias
	// names.
	bindRank uint8
}

// Symbols returns the image's function and object symbols (.symtab and
// .dynsym), sorted by run-time address.
func (im *Image) Symbols() []Symbol {
	im.symOnce.Do(func() {
		f, err := im.ELF()
		if err != nil {
			return
		}
		type symKey struct {
			name string
			addr uint64
		}
		seen := map[symKey]bool{}
		add := func(list []elf.Symbol) {
			for _, s := range list {
				typ := elf.ST_TYPE(s.Info)
				if s.Value == 0 || s.Section == elf.SHN_UNDEF || s.Name == "" {
					continue
				}
				if typ != elf.STT_FUNC && typ != elf.STT_OBJECT && typ != elf.STT_GNU_IFUNC && typ != elf.STT_NOTYPE {
					continue
				}
				// .symtab spells versioned names "pthread_kill@@GLIBC_2.34";
				// .dynsym, as debug/elf reads it, does not.
				if at := strings.IndexByte(s.Name, '@'); at > 0 {
					s.Name = s.Name[:at]
				}
				key := symKey{s.Name, s.Value}
				if seen[key] {
					continue
				}
				seen[key] = true
				im.syms = append(im.syms, Symbol{Name: s.Name, Addr: s.Value + im.Bias, Size: s.Size, Kind: typ, bindRank: bindRank(elf.ST_BIND(s.Info))})
			}
		}
		if l, err := f.Symbols(); err == nil {
			add(l)
		} else if df := im.debugELF(); df != nil {
			// Stripped: the symbol table went into the debug file, at the
			// same link-time addresses.
			if l, err := df.Symbols(); err == nil {
				add(l)
			}
		}
		if l, err := f.DynamicSymbols(); err == nil {
			add(l)
		}
		add(im.goFuncSymbols(f))
		sort.SliceStable(im.syms, func(i, j int) bool {
			a, b := im.syms[i], im.syms[j]
			if a.Addr != b.Addr {
				return a.Addr < b.Addr
			}
			// Prefer functions with global, public names at the same
			// address: "raise" over "__GI_raise", "descend" over
			// "descend.localalias" (local), "__stack_chk_fail" over
			// "__stack_chk_fail_local" (weak).
			if (a.Kind == elf.STT_FUNC) != (b.Kind == elf.STT_FUNC) {
				return a.Kind == elf.STT_FUNC
			}
			if a.bindRank != b.bindRank {
				return a.bindRank < b.bindRank
			}
			return !strings.HasPrefix(a.Name, "_") && strings.HasPrefix(b.Name, "_")
		})
		im.byName = make(map[string]int, len(im.syms))
		for i, s := range im.syms {
			if _, ok := im.byName[s.Name]; !ok {
				im.byName[s.Name] = i
			}
		}
	})
	return im.syms
}

func bindRank(b elf.SymBind) uint8 {
	switch b {
	case elf.STB_GLOBAL:
		return 0
	case elf.STB_WEAK:
		return 1
	}
	return 2
}

// LookupSymbol returns the symbol called name.
func (im *Image) LookupSymbol(name string) (Symbol, bool) {
	im.Symbols()
	if i, ok := im.byName[name]; ok {
		return im.syms[i], true
	}
	return Symbol{}, false
}

// SymbolAt returns the symbol that covers addr: the nearest symbol at or
// below it whose size reaches addr, or, for symbols without a size, the
// nearest one in the same executable mapping.
func (im *Image) SymbolAt(addr uint64) (Symbol, bool) {
	syms := im.Symbols()
	i := sort.Search(len(syms), func(i int) bool { return syms[i].Addr > addr }) - 1
	// Of the names at one address, Symbols sorts the preferred first.
	first := func(i int) Symbol {
		for i > 0 && syms[i-1].Addr == syms[i].Addr && syms[i-1].Size >= syms[i].Size {
			i--
		}
		return syms[i]
	}
	for ; i >= 0; i-- {
		s := syms[i]
		if s.Size > 0 && addr < s.Addr+s.Size {
			return first(i), true
		}
		if s.Size == 0 && s.Kind != elf.STT_OBJECT {
			m := im.proc.FindMapping(addr)
			if m != nil && m.Contains(s.Addr) {
				return first(i), true
			}
		}
		if s.Size > 0 && addr >= s.Addr+s.Size && s.Kind == elf.STT_FUNC {
			return Symbol{}, false // inside a gap after a sized function
		}
	}
	return Symbol{}, false
}

// Section returns the bytes of the named section from the image's file.
func (im *Image) Section(name string) (*elf.Section, []byte, error) {
	f, err := im.ELF()
	if err != nil {
		return nil, nil, err
	}
	s := f.Section(name)
	if s == nil {
		return nil, nil, fmt.Errorf("%s has no %s section", im.Name(), name)
	}
	if s.Type == elf.SHT_NOBITS {
		return s, nil, nil
	}
	if s.Size > 1<<31 {
		return nil, nil, fmt.Errorf("%s: section %s is %d bytes", im.Name(), name, s.Size)
	}
	b, err := s.Data()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: section %s: %w", im.Name(), name, err)
	}
	return s, b, nil
}

// Close releases the image's open file.
func (im *Image) close() {
	if im.hostFile != nil {
		im.hostFile.Close()
	}
	if im.debugHost != nil {
		im.debugHost.Close()
	}
}

// FindImage returns the image with a mapping containing addr, or nil.
func (p *Process) FindImage(addr uint64) *Image {
	if m := p.FindMapping(addr); m != nil && m.Image != nil {
		return m.Image
	}
	return nil
}

// ImageByName returns the first image whose file name (without
// directories) starts with prefix, e.g. "libc.so".
func (p *Process) ImageByName(prefix string) *Image {
	for _, im := range p.Images {
		if strings.HasPrefix(im.Name(), prefix) {
			return im
		}
	}
	return nil
}

// Symbolize names the code or data at addr: the image and the symbol with
// the offset into it.
func (p *Process) Symbolize(addr uint64) (im *Image, sym Symbol, ok bool) {
	im = p.FindImage(addr)
	if im == nil {
		return nil, Symbol{}, false
	}
	sym, ok = im.SymbolAt(addr)
	return im, sym, ok
}

// gccFragmentSuffixes are the suffixes GCC gives the pieces it splits a C
// function into: cold paths, partial inlines, clones with changed
// signatures or constants, and alias entries.
var gccFragmentSuffixes = []string{".cold", ".part.", ".isra.", ".constprop.", ".localalias", ".lto_priv."}

// FuncBase returns the source function a symbol belongs to:
// "__assert_fail_base" for "__assert_fail_base.cold",
// "_int_free" for "_int_free.part.0". Other names come back unchanged.
func FuncBase(name string) string {
	for _, s := range gccFragmentSuffixes {
		if i := strings.Index(name, s); i > 0 {
			name = name[:i]
		}
	}
	return name
}
