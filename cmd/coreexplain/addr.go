package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/memory"
	"github.com/spf13/pflag"
)

type addrFlags struct {
	core coreFlags
	json bool
}

func init() {
	register(&command{
		name:  "addr",
		short: "what is at an address: mapping, symbol, heap object, stack",
		usage: "addr [flags] CORE [BINARY] ADDR...",
		summary: "Say what is at each address: mapping, section and symbol, Go heap object (allocated or\n" +
			"free, its type), stack (live or dead part), guard page, C heap, TLS.",
		examples: []string{
			"coreexplain addr core.1234 ./server 0xc000123456",
			"coreexplain addr --json core.1234 0x7f12a4001000 0x80",
		},
		setup: func(fs *pflag.FlagSet) runFunc {
			f := new(addrFlags)
			fs.BoolVar(&f.json, "json", false, "print the classifications as JSON")
			f.core.add(fs)
			return f.run
		},
	})
}

func isAddr(s string) bool {
	_, err := coredump.ParseAddr(s)
	return err == nil
}

func (f *addrFlags) run(e *env, args []string) int {
	core, binary, rest, err := splitCoreArgs(args, isAddr)
	if err != nil {
		return fail(e, err)
	}
	if len(rest) == 0 {
		return fail(e, usageError{"missing ADDR"})
	}
	var addrs []uint64
	for _, a := range rest {
		v, err := coredump.ParseAddr(a)
		if err != nil {
			return fail(e, usageError{fmt.Sprintf("%s (addresses are 0x-hex or decimal)", err)})
		}
		addrs = append(addrs, uint64(v))
	}
	p, err := f.core.open(e, core, binary)
	if err != nil {
		return fail(e, err)
	}
	defer p.Close()
	sp := memory.For(p)
	regions := make([]*memory.Region, 0, len(addrs))
	for _, a := range addrs {
		regions = append(regions, sp.Classify(a))
	}
	if f.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(regions); err != nil {
			return fail(e, err)
		}
		return exitOK
	}
	for i, r := range regions {
		if i > 0 {
			fmt.Fprintln(e.stdout)
		}
		writeRegion(e.stdout, r, "")
	}
	for _, n := range sp.Problems() {
		fmt.Fprintf(e.stderr, "note: %s\n", n)
	}
	return exitOK
}

// writeRegion renders a classification as text.
func writeRegion(w io.Writer, r *memory.Region, indent string) {
	fmt.Fprintf(w, "%s%s  %s\n", indent, r.Addr, r.Kind)
	fmt.Fprintf(w, "%s  %s\n", indent, r.Summary)
	if r.Mapping != nil {
		fmt.Fprintf(w, "%s  mapping: %s\n", indent, r.Mapping)
	}
	if r.Below != nil {
		fmt.Fprintf(w, "%s  below:   %s (%#x bytes before the address)\n", indent, r.Below, r.Below.Distance)
	}
	if r.Above != nil {
		fmt.Fprintf(w, "%s  above:   %s (%#x bytes after the address)\n", indent, r.Above, r.Above.Distance)
	}
	if h := r.Heap; h != nil && h.Span != nil {
		fmt.Fprintf(w, "%s  span:    %s-%s %s, %d pages, size class %d, elem %d, %d/%d allocated (freeindex %d)\n", indent,
			h.Span.Start, coredump.Addr(h.Span.End()), h.Span.State, h.Span.NPages, h.Span.SizeClass, h.Span.ElemSize,
			h.Span.AllocCount, h.Span.NElems, h.Span.FreeIndex)
		if h.Object != 0 {
			fmt.Fprintf(w, "%s  object:  %s+%#x, slot %d, %s", indent, h.Object, h.Offset, h.Index, h.State)
			if h.Type != "" {
				fmt.Fprintf(w, ", type %s", h.Type)
			}
			fmt.Fprintln(w)
		}
	}
	if st := r.Stack; st != nil && st.SP != 0 {
		fmt.Fprintf(w, "%s  stack:   %s-%s, sp %s (%s)\n", indent, st.Lo, st.Hi, st.SP, st.SPSource)
	}
	if r.TLS != nil {
		fmt.Fprintf(w, "%s  tls:     thread %d, fs_base %s%+#x: %s\n", indent, r.TLS.TID, r.TLS.TP, r.TLS.Offset, r.TLS.What)
	}
	if r.CHeap != nil {
		fmt.Fprintf(w, "%s  c heap:  %s\n", indent, r.CHeap.Evidence)
	}
	if r.Dangling {
		fmt.Fprintf(w, "%s  DANGLING: %s\n", indent, r.Why)
	}
	if !r.Readable && r.Mapping != nil {
		fmt.Fprintf(w, "%s  (the core holds no bytes for this address)\n", indent)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "%s  note: %s\n", indent, strings.TrimSpace(n))
	}
}
