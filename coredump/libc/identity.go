package libc

import (
	"bytes"
	"debug/elf"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/coreexplain/coreexplain/coredump"
)

// Symbols that only one C library defines. glibc's libc.so exports
// gnu_get_libc_version; musl's libc.so (which is also its dynamic loader)
// exports its loader stages and a few stdio extensions; static binaries
// keep their start-up internals in .symtab.
var (
	glibcShared = []string{"gnu_get_libc_version"}
	// (Not _dl_relocate_static_pie: crt1.o brings an empty one into
	// dynamic executables too.)
	glibcStatic = []string{"__libc_setup_tls", "__libc_start_call_main"}
	muslShared  = []string{"__dls3", "__freadahead"}
	muslStatic  = []string{"__init_libc", "__init_tp", "__copy_tls"}
)

// identify finds the C runtimes among the images and decides the flavor,
// linkage and loader of the executable.
func (r *Runtime) identify() {
	p := r.Proc
	if p.Exe != nil {
		ei := r.elf(p.Exe)
		r.Loader = ei.interp
		r.Linkage = Static
		if ei.interp != "" {
			r.Linkage = Dynamic
		} else if !ei.ok() {
			// Without the file, a mapped loader says the binary is dynamic.
			for _, im := range p.Images {
				if strings.HasPrefix(im.Name(), "ld-") {
					r.Linkage = Dynamic
				}
			}
		}
	}
	for _, im := range p.Images {
		if im.Status == coredump.ImageInMemory {
			continue // the vDSO
		}
		ei := r.elf(im)
		if !ei.ok() {
			if lib := libByName(im); lib != nil {
				r.Libs = append(r.Libs, lib)
				r.note("%s: %v; identified by its file name only", im.Name(), ei.err)
			}
			continue
		}
		var lib *Lib
		switch {
		case ei.dynDefines(glibcShared...) && !im.IsExe:
			lib = &Lib{Flavor: Glibc, Image: im, Evidence: "defines gnu_get_libc_version"}
		case ei.dynDefines(muslShared...) && !im.IsExe:
			lib = &Lib{Flavor: Musl, Image: im, Evidence: "defines musl's __dls3/__freadahead"}
		case strings.HasPrefix(im.Name(), "libgcompat"):
			lib = &Lib{Flavor: Glibc, Image: im, Compat: true, Evidence: "gcompat serves glibc's ABI on top of musl"}
		case ei.symtabDefines(muslStatic...):
			lib = &Lib{Flavor: Musl, Image: im, Embedded: true, Evidence: "its .symtab holds musl's __init_libc/__init_tp/__copy_tls"}
		case ei.symtabDefines(glibcStatic...):
			lib = &Lib{Flavor: Glibc, Image: im, Embedded: true, Evidence: "its .symtab holds glibc's __libc_setup_tls/__libc_start_call_main"}
		}
		if lib == nil {
			continue
		}
		r.readVersion(lib, ei)
		r.Libs = append(r.Libs, lib)
	}
	// The executable's own C library first: a static executable's
	// embedded one, else one the executable names in DT_NEEDED (a library
	// dlopen()ed later may be mapped at a lower address).
	needed := map[string]bool{}
	if p.Exe != nil {
		if ei := r.elf(p.Exe); ei.ok() {
			libs, _ := ei.f.ImportedLibraries()
			for _, n := range libs {
				needed[n] = true
			}
		}
	}
	primary := func(l *Lib) int {
		switch {
		case l.Image.IsExe:
			return 0
		case needed[l.Image.Name()]:
			return 1
		}
		return 2
	}
	sort.SliceStable(r.Libs, func(i, j int) bool { return primary(r.Libs[i]) < primary(r.Libs[j]) })
	if len(r.Libs) > 0 {
		l := r.Libs[0]
		r.Flavor, r.Version = l.Flavor, l.Version
		if l.Compat && len(r.Libs) > 1 {
			r.Flavor, r.Version = r.Libs[1].Flavor, r.Libs[1].Version
		}
	}
	if r.Flavor == None && r.Linkage == Dynamic && r.Loader != "" {
		// A dynamic executable whose libraries are all missing: the
		// loader's name still says which C library it expects.
		switch {
		case strings.Contains(r.Loader, "ld-musl"):
			r.Flavor = Musl
		case strings.Contains(r.Loader, "ld-linux"):
			r.Flavor = Glibc
		}
	}
}

// symtabDefines reports whether .symtab defines one of names.
func (ei *elfInfo) symtabDefines(names ...string) bool { return tableDefines(ei.symtab, names) }

// dynDefines reports whether .dynsym exports one of names.
func (ei *elfInfo) dynDefines(names ...string) bool { return tableDefines(ei.dynsym, names) }

func tableDefines(tab []elf.Symbol, names []string) bool {
	for _, s := range tab {
		if s.Section == elf.SHN_UNDEF {
			continue
		}
		for _, n := range names {
			if s.Name == n {
				return true
			}
		}
	}
	return false
}

// libByName identifies a C library whose file is not available by its
// name alone.
func libByName(im *coredump.Image) *Lib {
	n := im.Name()
	switch {
	case strings.HasPrefix(n, "libc.so.6"):
		return &Lib{Flavor: Glibc, Image: im, Evidence: "file name libc.so.6"}
	case strings.HasPrefix(n, "ld-musl-") || strings.HasPrefix(n, "libc.musl-"):
		return &Lib{Flavor: Musl, Image: im, Evidence: "file name " + n}
	}
	return nil
}

var (
	reGlibcBanner = regexp.MustCompile(`GNU C Library [^\n]*?version (\d+\.\d+(?:\.\d+)?)`)
	reGlibcVerdef = regexp.MustCompile(`^GLIBC_(\d+)\.(\d+)(?:\.(\d+))?$`)
	reMuslVersion = regexp.MustCompile(`^1\.\d+\.\d+$`)
)

// readVersion reads the library's version string: glibc's banner (what
// running libc.so.6 prints) or its newest symbol version, musl's version
// string next to its loader's banner.
func (r *Runtime) readVersion(lib *Lib, ei *elfInfo) {
	_, ro, err := lib.Image.Section(".rodata")
	if err != nil {
		ro = nil
	}
	switch lib.Flavor {
	case Glibc:
		if m := reGlibcBanner.FindSubmatch(ro); m != nil {
			lib.Version, lib.VersionSource = string(m[1]), "the \"GNU C Library\" banner in .rodata"
			return
		}
		if vs, err := ei.f.DynamicVersions(); err == nil {
			best := [3]int{-1}
			for _, v := range vs {
				m := reGlibcVerdef.FindStringSubmatch(v.Name)
				if m == nil {
					continue
				}
				var cur [3]int
				for i := range 3 {
					cur[i], _ = strconv.Atoi(m[i+1])
				}
				if cur[0] > best[0] || (cur[0] == best[0] && (cur[1] > best[1] || (cur[1] == best[1] && cur[2] > best[2]))) {
					best = cur
				}
			}
			if best[0] >= 0 {
				lib.Version = strconv.Itoa(best[0]) + "." + strconv.Itoa(best[1])
				if best[2] > 0 {
					lib.Version += "." + strconv.Itoa(best[2])
				}
				lib.VersionSource = "its newest symbol version definition (GLIBC_" + lib.Version + ")"
			}
		}
	case Musl:
		// musl keeps its version as a bare string that only the loader
		// prints; accept it when exactly one such string exists.
		if !bytes.Contains(ro, []byte("musl libc")) {
			return
		}
		var found []string
		for _, s := range bytes.Split(ro, []byte{0}) {
			if reMuslVersion.Match(s) {
				found = append(found, string(s))
			}
		}
		if len(found) == 1 {
			lib.Version, lib.VersionSource = found[0], "the version string next to musl's loader banner in .rodata"
		}
	}
}
