// Package gobin reads the facts a Go binary holds on its own, without a
// process: its pclntab (.gopclntab, the runtime's function table) and
// where runtime.firstmoduledata and runtime.text are. Every layer that
// names Go functions (the image's symbols, the C runtime view, the Go
// runtime view) reads the table through this package, so that a hostile
// or damaged table is checked once, in one place.
//
// The package depends only on the standard library, so that package
// coredump, which turns a stripped binary's pclntab into symbols, can use
// it.
//
// # The format
//
// The facts below are the public ones of Go's own sources, which define
// and read the table: the runtime's src/runtime/symtab.go (pcHeader,
// moduledata, functab, pcvalue), src/runtime/runtime2.go (_func),
// src/runtime/symtabinl.go (inlinedCall), src/internal/abi/symtab.go
// (the FuncID, FuncFlag, PCDATA_* and FUNCDATA_* constants) and the
// standard library's src/debug/gosym/pclntab.go, which reads the same
// table.
//
//   - Go 1.18 introduced the layout read here (magic 0xfffffff0): ftab
//     entries and funcdata became 32-bit offsets. Go 1.20 (magic
//     0xfffffff1) added startLine to the _func record, moving funcID,
//     flag and nfuncdata 4 bytes on, and introduced the 16-byte
//     inlinedCall this package decodes. Older tables (Go 1.2, 1.16) are
//     refused.
//   - The header (runtime.pcHeader) is: magic uint32, two zero pad bytes,
//     minLC (the pc quantum: 1 on amd64, 4 on arm64), ptrSize, then
//     pointer-sized words: nfunc, nfiles, textStart, and the offsets from
//     the header of funcnametab, cutab, filetab, pctab and pclntable.
//     Go 1.26 leaves textStart zero: runtime.text is then read from
//     runtime.firstmoduledata.
//   - pclntable starts with the ftab: nfunc+1 (entryOff uint32, funcOff
//     uint32) pairs, entryOff relative to runtime.text and ascending; the
//     last entry's entryOff is the end of the text. funcOff is the offset
//     of the function's _func record in pclntable.
//   - A _func record is 44 bytes up to nfuncdata (40 before Go 1.20),
//     followed by npcdata uint32 pctab offsets and nfuncdata uint32 offsets from
//     moduledata.gofunc.
//   - A pc-value table is a sequence of (value delta, pc delta) varints:
//     the value delta zigzag-encoded, the pc delta in units of the
//     quantum; a zero value delta after the first pair ends the table.
//   - runtime.moduledata begins with the pointer to the pcHeader and the
//     funcnametab slice; its text field is at offset 176 on 64-bit
//     targets from Go 1.20 to 1.26.
package gobin
