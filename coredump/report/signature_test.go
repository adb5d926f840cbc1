package report

import "testing"

func TestNormaliseFunc(t *testing.T) {
	for in, want := range map[string]string{
		"main.main.func1":                        "main.main",
		"main.(*Server).run.func2.1":             "main.(*Server).run",
		"main.Map[go.shape.int,go.shape.string]": "main.Map",
		"main.(*List[go.shape.int]).Push":        "main.(*List).Push",
		"main.worker.gowrap1":                    "main.worker",
		"process_item.constprop.0":               "process_item",
		"runtime.raise.abi0":                     "runtime.raise",
		"main.handler":                           "main.handler",
		"github.com/x/y.(*T).Do.deferwrap1":      "github.com/x/y.(*T).Do",
	} {
		if got := normaliseFunc(in); got != want {
			t.Errorf("normaliseFunc(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSignatureParts(t *testing.T) {
	frames := []Frame{
		{Function: "runtime.sigpanic", Plumbing: true},
		{Function: "__GI_raise"},
		{Function: "abort"},
		{Function: "malloc_printerr"},
		{Function: "_int_free"},
		{Function: "free"},
		{Function: "blob_free_data"},
		{Function: "_cgo_123_Cfunc_blob_free"},
		{Function: "runtime.asmcgocall"},
		{Function: "main._Cfunc_blob_free"},
		{Function: "main.release.func1"},
		{Function: "main.main"},
		{Function: "runtime.main"},
	}
	got := signatureParts(frames, nil)
	want := []string{"_int_free", "free", "blob_free_data", "main.release", "main.main"}
	if len(got) != len(want) {
		t.Fatalf("parts %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("parts %q, want %q", got, want)
		}
	}
	// Without symbols, the module's build ID and offset name the frame.
	got = signatureParts([]Frame{{PC: 0x7f0000001234, Module: "libfoo.so"}},
		[]Image{{Path: "/usr/lib/libfoo.so", Base: 0x7f0000000000, BuildID: "0123456789abcdef0123"}})
	if len(got) != 1 || got[0] != "0123456789ab+0x1234" {
		t.Errorf("unsymbolised: %q", got)
	}
}
