package report

import "strings"

// Signature builds the crash signature: the cause's class, then its
// normalised location. Frames are normalised by the code that builds them;
// this only joins.
func Signature(r *Report) string {
	class := "unknown"
	for _, f := range r.Findings {
		if f.Cause {
			class = f.Class
			break
		}
	}
	var parts []string
	if r.Crash != nil {
		for _, f := range r.Crash.Frames {
			if f.Plumbing || f.Function == "" {
				continue
			}
			parts = append(parts, f.Function)
			if len(parts) == 3 {
				break
			}
		}
	}
	if len(parts) == 0 {
		return class
	}
	return class + " | " + strings.Join(parts, " | ")
}
