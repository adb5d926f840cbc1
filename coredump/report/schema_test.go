package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/fixtures"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

var update = flag.Bool("update", false, "rewrite coreexplain-v1.schema.json from the model's types")

const schemaFile = "coreexplain-v1.schema.json"

// TestSchemaUpToDate: the committed (and embedded) schema is what the
// generator makes from the model's types now; -update rewrites it.
func TestSchemaUpToDate(t *testing.T) {
	want, err := generateSchema()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(schemaFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	have, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, want) {
		t.Fatalf("%s differs from the model's types: run go generate ./coredump/report", schemaFile)
	}
	if !bytes.Equal(JSONSchema(), want) {
		t.Fatal("the embedded schema differs from the file")
	}
}

// compiledSchema compiles the embedded schema with a validator that is
// not ours, so a schema we cannot read the way the standard says fails.
func compiledSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(JSONSchema()))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(schemaFile, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

func validate(t *testing.T, sch *jsonschema.Schema, r *Report) error {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return sch.Validate(inst)
}

// liveReport snapshots a live fixture the way `coreexplain attach` does.
func liveReport(t *testing.T, fx *fixtures.Fixture) *Report {
	t.Helper()
	s, err := fx.Start(fixtures.Default)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	p, err := coredump.OpenLive(s.PID(), coredump.LiveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return Build(p, Options{})
}

// TestFixtureReportsMatchSchema builds the report of every fixture, crashed
// or live, with and without --all, and validates its JSON against the
// schema.
func TestFixtureReportsMatchSchema(t *testing.T) {
	sch := compiledSchema(t)
	names, err := fixtures.List()
	if err != nil {
		t.Fatal(err)
	}
	validated := 0
	for _, name := range names {
		fx, err := fixtures.Load(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(name, func(t *testing.T) {
			var reports []*Report
			if fx.Spec.Live {
				reports = append(reports, liveReport(t, fx))
			} else {
				r, _, p := buildFixture(t, name, Options{})
				reports = append(reports, r, Build(p, Options{All: true}))
			}
			for _, r := range reports {
				if err := validate(t, sch, r); err != nil {
					t.Errorf("report does not match the schema: %v", err)
				}
				validated++
			}
		})
	}
	if validated < 2*len(names)-4 {
		t.Errorf("%d reports validated for %d fixtures", validated, len(names))
	}
	t.Logf("%d reports of %d fixtures validated", validated, len(names))
}

// TestSchemaCatchesDrift: a property the model does not have, a missing
// required one, an address in decimal and an unknown class are each
// rejected, so the schema would catch the model and the file drifting
// apart.
func TestSchemaCatchesDrift(t *testing.T) {
	sch := compiledSchema(t)
	r, _, _ := buildFixture(t, "go-nil-field", Options{})
	if err := validate(t, sch, r); err != nil {
		t.Fatalf("the unchanged report: %v", err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	edits := []struct {
		name, want string
		edit       func(m map[string]any)
	}{
		{"extra top-level field", "additional properties 'extra'", func(m map[string]any) { m["extra"] = 1 }},
		{"extra finding field", "additional properties 'rank'", func(m map[string]any) {
			m["findings"].([]any)[0].(map[string]any)["rank"] = 0
		}},
		{"missing signature", "missing property 'signature'", func(m map[string]any) { delete(m, "signature") }},
		{"decimal address", "does not match pattern", func(m map[string]any) {
			m["crash"].(map[string]any)["frames"].([]any)[0].(map[string]any)["pc"] = "4801859"
		}},
		{"unknown class", "value must be one of", func(m map[string]any) {
			m["findings"].([]any)[0].(map[string]any)["class"] = "fault-class"
		}},
		{"other schema", "value must be 'coreexplain/v1'", func(m map[string]any) { m["schema"] = "coreexplain/v2" }},
	}
	for _, e := range edits {
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		e.edit(inst.(map[string]any))
		err = sch.Validate(inst)
		if err == nil || !strings.Contains(err.Error(), e.want) {
			t.Errorf("%s: validation error %v, want one saying %q", e.name, err, e.want)
		}
	}
}
