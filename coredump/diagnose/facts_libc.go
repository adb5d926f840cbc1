package diagnose

import "github.com/coreexplain/coreexplain/coredump/libc"

// Libc returns the C runtime's view of the process (C library identity,
// TLS blocks, errno per thread, the crash's C frames, malloc chunks),
// computed once per process.
func (f *Facts) Libc() (*libc.Runtime, error) { return libc.Of(f.Proc) }
