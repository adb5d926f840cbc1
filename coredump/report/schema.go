package report

import (
	_ "embed"
	"slices"
)

// The schema is generated from the model's Go types by reflection, so the
// types stay the one home of the format; TestSchemaUpToDate fails when the
// committed file and the types differ.
//
//go:generate go test -run ^TestSchemaUpToDate$ -update
//go:embed coreexplain-v1.schema.json
var jsonSchema []byte

// JSONSchema returns the JSON Schema (draft 2020-12) of the JSON report,
// coreexplain/v1.
func JSONSchema() []byte { return slices.Clone(jsonSchema) }
