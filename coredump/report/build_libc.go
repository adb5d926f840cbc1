package report

import (
	"fmt"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/libc"
)

// buildLibc fills the C runtime's part of the report: the C library's
// identity and each thread's errno.
func buildLibc(p *coredump.Process, r *Report) {
	rt, err := libc.Of(p)
	if err != nil {
		return // the rules note why (diagnose.Facts.Libc)
	}
	r.Process.Libc = &Libc{Flavor: rt.Flavor.String(), Linkage: rt.Linkage.String(), Version: rt.Version, Loader: rt.Loader}
	for i := range r.Threads {
		th := rt.Thread(r.Threads[i].TID)
		if th == nil || th.Errno == nil || th.Errno.Err != nil {
			continue
		}
		e := &Errno{Value: int(th.Errno.Value), Name: th.Errno.Value.Name(), Addr: Addr(th.Errno.Addr)}
		if c := th.Clobbered; c != nil {
			e.Note = fmt.Sprintf("not the errno at the fault: the Go runtime's crash path (%s) called sigaction through libc on this thread afterwards",
				c.Frame.Func)
		}
		r.Threads[i].Errno = e
		for _, pr := range th.Problems {
			r.Threads[i].Notes = append(r.Threads[i].Notes, pr.What)
		}
	}
}
