package dlvext

import (
	"embed"
	"io/fs"
)

// Names of the helper files in Files.
const (
	DelveHelpers = "coreexplain.star"
	GdbHelpers   = "gdb/coreexplain.py"
)

//go:embed coreexplain.star gdb/coreexplain.py
var files embed.FS

// Files holds the helper files, at DelveHelpers and GdbHelpers.
var Files fs.FS = files
