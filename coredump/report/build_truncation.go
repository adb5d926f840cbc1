package report

import "github.com/coreexplain/coreexplain/coredump"

// addTruncationEffects says, for a truncated core, which answers the
// missing bytes affect: in the input section, in the notes right after the
// truncation line, and on the threads whose stacks are lost.
func addTruncationEffects(p *coredump.Process, r *Report) {
	effects := p.TruncationEffects()
	if len(effects) == 0 || r.Input.Truncated == nil {
		return
	}
	var lines []string
	for _, e := range effects {
		lines = append(lines, e.What)
		if e.TID == 0 {
			continue
		}
		for i := range r.Threads {
			if r.Threads[i].TID == e.TID {
				r.Threads[i].Notes = append(r.Threads[i].Notes, "stack lost to the core's truncation")
			}
		}
	}
	r.Input.Truncated.Affected = lines
	notes := make([]string, 0, len(r.Notes)+len(lines))
	if len(r.Notes) > 0 {
		notes = append(notes, r.Notes[0])
	}
	notes = append(notes, lines...)
	if len(r.Notes) > 0 {
		notes = append(notes, r.Notes[1:]...)
	}
	r.Notes = notes
}
