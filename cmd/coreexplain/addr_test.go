package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

func TestAddrCommand(t *testing.T) {
	c := crash(t, "go-nil-field")
	code, out, stderr := runCLI("addr", c.Core, c.Binary, "0x80", fmt.Sprintf("%#x", c.Oracle.PC))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "null-page") || !strings.Contains(out, "main.(*Server).maxIdle") {
		t.Errorf("output:\n%s", out)
	}
	code, out, _ = runCLI("addr", "--json", c.Core, "0x80")
	var regions []struct {
		Kind     string `json:"kind"`
		Dangling bool   `json:"dangling"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &regions) != nil || len(regions) != 1 || regions[0].Kind != "null-page" || !regions[0].Dangling {
		t.Errorf("--json: exit %d:\n%s", code, out)
	}
	for _, args := range [][]string{{"addr", c.Core}, {"addr", c.Core, c.Binary, "0xzz"}} {
		if code, _, stderr := runCLI(args...); code != exitUsage {
			t.Errorf("%q: exit %d (%s)", args, code, stderr)
		}
	}
}

func TestSliceCommand(t *testing.T) {
	c := crash(t, "cgo-dangling-slice")
	// main.main holds the slice on its stack.
	frame := ""
	for i := 0; i < 20 && frame == ""; i++ {
		_, o, _ := runCLI("slice", "--json", "--frame", strconv.Itoa(i), c.Core, c.Binary, "data")
		if strings.Contains(o, `"function": "main.main"`) {
			frame = o
		}
	}
	var sl struct {
		Function string `json:"function"`
		Data     string `json:"data"`
		Dangling bool   `json:"dangling"`
	}
	if frame == "" || json.Unmarshal([]byte(frame), &sl) != nil {
		t.Fatalf("no frame of main.main decodes data")
	}
	if !sl.Dangling || sl.Data != c.Oracle.Facts["data"][0] {
		t.Errorf("slice %+v, program says data=%s", sl, c.Oracle.Facts["data"])
	}
	if code, _, _ := runCLI("slice", c.Core, c.Binary); code != exitUsage {
		t.Errorf("missing EXPR: exit %d", code)
	}
}
