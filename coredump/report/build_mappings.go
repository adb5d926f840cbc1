package report

import "github.com/coreexplain/coreexplain/coredump"

// buildMappings lists the process's mappings, in address order.
func buildMappings(p *coredump.Process) []Mapping {
	out := make([]Mapping, 0, len(p.Mappings))
	for _, m := range p.Mappings {
		out = append(out, Mapping{Start: Addr(m.Start), End: Addr(m.End), Perm: m.Perm.String(), File: m.Path,
			Offset: Addr(m.Offset), Dumped: m.Dumped, Missing: m.Missing})
	}
	return out
}
