package report

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/libc"
)

// TLSReport is the C runtime's per-thread view: what `coreexplain tls`
// prints. Like Report, it is data first; WriteTLSText renders it.
type TLSReport struct {
	Schema  string      `json:"schema"`
	Libc    TLSLibc     `json:"libc"`
	Errno   []ErrnoImpl `json:"errno_implementations"`
	Modules []TLSModule `json:"modules,omitempty"`
	// ModulesSource says where the loader's list was found.
	ModulesSource string      `json:"modules_source,omitempty"`
	Threads       []TLSThread `json:"threads"`
	Notes         []string    `json:"notes,omitempty"`
}

// TLSSchema names the JSON format of TLSReport.
const TLSSchema = "coreexplain-tls/v1"

// TLSLibc identifies every C runtime in the process.
type TLSLibc struct {
	Libc
	Runtimes []CRuntime `json:"runtimes"`
}

// CRuntime is one C library present in the process.
type CRuntime struct {
	Flavor   string `json:"flavor"`
	Image    string `json:"image"`
	Base     Addr   `json:"base"`
	Embedded bool   `json:"embedded,omitempty"`
	Version  string `json:"version,omitempty"`
	Evidence string `json:"evidence"`
}

// ErrnoImpl is one __errno_location found in an image.
type ErrnoImpl struct {
	Image  string   `json:"image"`
	Names  []string `json:"names"`
	Addr   Addr     `json:"addr"`
	Hidden bool     `json:"hidden,omitempty"`
	Found  string   `json:"found"`
	Kind   string   `json:"kind,omitempty"`
	Shape  string   `json:"shape,omitempty"`
	// Where says where the slot is, e.g. "tp-0x88".
	Where      string   `json:"where"`
	Source     string   `json:"source,omitempty"`
	CrossCheck string   `json:"cross_check,omitempty"`
	Code       []string `json:"code,omitempty"`
	// CalledBy lists the images bound to it and how.
	CalledBy []string `json:"called_by,omitempty"`
	Error    string   `json:"error,omitempty"`
}

// TLSModule is one loaded object with its static TLS.
type TLSModule struct {
	Name      string `json:"name"`
	Base      Addr   `json:"base"`
	LinkMap   Addr   `json:"link_map"`
	TLSModID  uint64 `json:"tls_modid,omitempty"`
	TLSOffset int64  `json:"tls_offset,omitempty"`
}

// TLSThread is one thread's thread pointer, TCB, TLS blocks and errno.
type TLSThread struct {
	TID int  `json:"tid"`
	TP  Addr `json:"tp"`
	// TCB is nil without a C library.
	TCB      *TCB         `json:"tcb,omitempty"`
	TLS      []TLSBlock   `json:"tls_blocks,omitempty"`
	Errno    *ErrnoSlot   `json:"errno,omitempty"`
	Slots    []ErrnoSlot  `json:"other_errno_slots,omitempty"`
	Problems []string     `json:"problems,omitempty"`
	Crash    *CrashMarker `json:"crash_path,omitempty"`
}

// CrashMarker says the thread ran the Go runtime's crash path.
type CrashMarker struct {
	Function string `json:"function"`
	SP       Addr   `json:"sp"`
	Why      string `json:"why"`
}

// TCB is a thread control block.
type TCB struct {
	Flavor string     `json:"flavor"`
	Addr   Addr       `json:"addr"`
	Source string     `json:"source"`
	Fields []TCBField `json:"fields"`
}

// TCBField is one field of a TCB.
type TCBField struct {
	Name   string `json:"name"`
	Offset string `json:"tp_offset"`
	Addr   Addr   `json:"addr"`
	Value  string `json:"value"`
}

// TLSBlock is one module's static TLS block in a thread.
type TLSBlock struct {
	Module string `json:"module"`
	Start  Addr   `json:"start"`
	Size   uint64 `json:"size"`
	Source string `json:"source"`
}

// ErrnoSlot is a thread's errno slot as one implementation computes it.
type ErrnoSlot struct {
	Impl        string `json:"implementation"`
	Addr        Addr   `json:"addr"`
	Value       int    `json:"value"`
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
	Source      string `json:"source"`
	// Overlaps names the TCB field the slot lies in.
	Overlaps string `json:"overlaps,omitempty"`
	Error    string `json:"error,omitempty"`
}

// BuildTLS builds the C runtime's per-thread view of p.
func BuildTLS(p *coredump.Process) (*TLSReport, error) {
	rt, err := libc.Of(p)
	if err != nil {
		return nil, err
	}
	out := &TLSReport{Schema: TLSSchema, Threads: []TLSThread{}, Errno: []ErrnoImpl{}, ModulesSource: rt.ModulesSource,
		Notes: append([]string(nil), rt.Notes...)}
	out.Libc.Libc = Libc{Flavor: rt.Flavor.String(), Linkage: rt.Linkage.String(), Version: rt.Version, Loader: rt.Loader}
	out.Libc.Runtimes = []CRuntime{}
	for _, l := range rt.Libs {
		out.Libc.Runtimes = append(out.Libc.Runtimes, CRuntime{Flavor: l.Flavor.String(), Image: l.Image.Path, Base: Addr(l.Image.Base),
			Embedded: l.Embedded, Version: l.Version, Evidence: l.Evidence})
	}
	for _, e := range rt.Errno {
		ei := ErrnoImpl{Image: e.Image.Path, Names: e.Names, Addr: Addr(e.Addr), Hidden: e.Hidden, Found: e.Found,
			Source: e.Source, CrossCheck: e.CrossCheck}
		if e.Kind != 0 {
			ei.Kind = e.Kind.String()
		}
		if e.Shape != libc.None {
			ei.Shape = e.Shape.String()
		}
		ei.Where = e.Where("tp")
		if e.Err != nil {
			ei.Error = e.Err.Error()
		}
		for _, s := range e.Code {
			line := fmt.Sprintf("%#x  %s", s.PC, s.Inst)
			if s.Note != "" {
				line += "    ; " + s.Note
			}
			ei.Code = append(ei.Code, line)
		}
		for _, b := range rt.Bindings {
			if b.Impl == e {
				ei.CalledBy = append(ei.CalledBy, b.Image.Name()+": "+b.How)
			}
		}
		out.Errno = append(out.Errno, ei)
	}
	for _, m := range rt.Modules {
		tm := TLSModule{Name: m.Name, Base: Addr(m.Addr), LinkMap: Addr(m.LinkMap)}
		if m.Name == "" && m.Image != nil {
			tm.Name = m.Image.Path
		}
		if m.HasTLS {
			tm.TLSModID, tm.TLSOffset = m.TLSModID, m.TLSOffset
		}
		out.Modules = append(out.Modules, tm)
	}
	for _, th := range rt.Threads {
		tt := TLSThread{TID: th.TID, TP: Addr(th.TP)}
		if tcb := th.TCB; tcb != nil {
			t := &TCB{Flavor: tcb.Flavor.String(), Addr: Addr(tcb.Addr), Source: tcb.Source}
			for _, f := range tcb.Fields {
				v := fmt.Sprintf("%#x", f.Value)
				if f.Name == "tid" || f.Name == "errno_val" {
					v = fmt.Sprint(int32(f.Value))
				}
				if f.Err != nil {
					v = "unreadable: " + f.Err.Error()
				}
				t.Fields = append(t.Fields, TCBField{Name: f.Name, Offset: signedOffset(f.Offset), Addr: Addr(f.Addr), Value: v})
			}
			tt.TCB = t
		}
		for _, b := range th.TLS {
			tt.TLS = append(tt.TLS, TLSBlock{Module: b.Module, Start: Addr(b.Start), Size: b.Size, Source: b.Source})
		}
		for _, s := range th.Slots {
			slot := errnoSlot(s)
			if s == th.Errno {
				tt.Errno = &slot
			} else {
				tt.Slots = append(tt.Slots, slot)
			}
		}
		for _, pr := range th.Problems {
			tt.Problems = append(tt.Problems, pr.What)
		}
		if c := th.Clobbered; c != nil {
			tt.Crash = &CrashMarker{Function: c.Frame.Func, SP: Addr(c.Frame.SP), Why: c.Why}
		}
		out.Threads = append(out.Threads, tt)
	}
	return out, nil
}

func errnoSlot(s *libc.ErrnoValue) ErrnoSlot {
	slot := ErrnoSlot{Impl: s.Impl.String(), Addr: Addr(s.Addr), Value: int(s.Value), Name: s.Value.Name(),
		Description: s.Value.Description(), Source: s.Source, Overlaps: s.Overlaps}
	if s.Err != nil {
		slot.Error = s.Err.Error()
	}
	return slot
}

func signedOffset(off int64) string {
	if off < 0 {
		return fmt.Sprintf("-%#x", -off)
	}
	return fmt.Sprintf("+%#x", off)
}

// WriteTLSText renders the TLS view for a terminal.
func WriteTLSText(w io.Writer, r *TLSReport, o TextOptions) {
	s := style{o.Color}
	tw := &textWriter{w: w}
	l := r.Libc
	line := fmt.Sprintf("%s %s", l.Flavor, l.Linkage)
	if l.Version != "" {
		line += " " + l.Version
	}
	if l.Loader != "" {
		line += ", loader " + l.Loader
	}
	tw.printf("%s %s\n", s.bold("C library"), line)
	if len(l.Runtimes) > 1 {
		tw.printf("%s\n", s.red(fmt.Sprintf("%d C runtimes in this process:", len(l.Runtimes))))
	}
	for _, c := range l.Runtimes {
		how := "in"
		if c.Embedded {
			how = "embedded in"
		}
		tw.printf("  %s %s at %s %s\n", strings.TrimSpace(c.Flavor+" "+c.Version), how+" "+c.Image, c.Base, s.dim("("+c.Evidence+")"))
	}
	if len(r.Errno) > 0 {
		tw.section(s, "errno implementations")
		for _, e := range r.Errno {
			vis := ""
			if e.Hidden {
				vis = " hidden"
			}
			tw.printf("%s`%s at %s (%s%s): %s\n", filepath.Base(e.Image), strings.Join(e.Names, "/"), e.Addr, e.Found, vis, s.bold(e.Where))
			if e.Error != "" {
				tw.printf("   %s\n", s.red(e.Error))
			}
			for _, c := range e.Code {
				tw.printf("   %s\n", s.dim(c))
			}
			if e.CrossCheck != "" {
				tw.printf("   cross-check: %s\n", e.CrossCheck)
			}
			for _, c := range e.CalledBy {
				tw.printf("   called by %s\n", c)
			}
		}
	}
	tw.section(s, fmt.Sprintf("threads (%d)", len(r.Threads)))
	for _, t := range r.Threads {
		tw.printf("%s tp %s\n", s.bold(fmt.Sprintf("thread %d", t.TID)), t.TP)
		if e := t.Errno; e != nil {
			val := fmt.Sprint(e.Value)
			if e.Name != "" {
				val += " " + e.Name + " (" + e.Description + ")"
			}
			if e.Error != "" {
				val = s.red(e.Error)
			}
			tw.printf("  errno %s at %s\n", s.bold(val), e.Addr)
			tw.printf("        %s\n", s.dim(wrapText(e.Source, textWidth-8, "        ")))
		}
		if c := t.Crash; c != nil {
			tw.printf("  %s\n", s.yellow(wrapText("errno overwritten after the fault: "+c.Why, textWidth-2, "  ")))
		}
		for _, e := range t.Slots {
			val := fmt.Sprint(e.Value)
			if e.Name != "" {
				val += " " + e.Name
			}
			msg := fmt.Sprintf("also errno of %s: %s at %s", e.Impl, val, e.Addr)
			if e.Overlaps != "" {
				msg += " (the bytes of the TCB's " + e.Overlaps + ")"
			}
			tw.printf("  %s\n", s.yellow(msg))
		}
		for _, p := range t.Problems {
			tw.printf("  %s\n", s.red(wrapText(p, textWidth-2, "  ")))
		}
		if tcb := t.TCB; tcb != nil {
			var parts []string
			for _, f := range tcb.Fields {
				parts = append(parts, fmt.Sprintf("%s=%s", f.Name, f.Value))
			}
			tw.printf("  %s TCB at %s: %s\n", tcb.Flavor, tcb.Addr, wrapText(strings.Join(parts, " "), textWidth-20, "    "))
		}
		for _, b := range t.TLS {
			tw.printf("  TLS %s [%s, +%#x) %s\n", shortPath(b.Module), b.Start, b.Size, s.dim(b.Source))
		}
	}
	if len(r.Notes) > 0 {
		tw.section(s, "notes")
		for _, n := range r.Notes {
			tw.printf("- %s\n", wrapText(n, textWidth-2, "  "))
		}
	}
}
