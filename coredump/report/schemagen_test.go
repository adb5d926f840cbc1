package report

import (
	"encoding"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/coreexplain/coreexplain/coredump"
	"github.com/coreexplain/coreexplain/coredump/diagnose"
)

// generateSchema writes the JSON Schema of Report by reflection over the
// model's types, following what encoding/json does with them: a field's
// json tag names it, omitempty makes it optional (every other field is
// always written, so required), encoding.TextMarshaler types are strings.
// Every object forbids other properties, so a field added to the model
// without regenerating the schema fails validation. Descriptions are the
// doc comments of the types and fields, read from their source.
func generateSchema() ([]byte, error) {
	g := &schemaGen{defs: map[string]any{}, owner: map[string]reflect.Type{}, docs: map[string]string{}}
	root, err := g.of(reflect.TypeFor[Report]())
	if err != nil {
		return nil, err
	}
	doc := map[string]any{
		"$schema":     "https://json-schema.org/draft/2020-12/schema",
		"title":       Schema,
		"description": "The coreexplain JSON report, generated from the Go types of package coredump/report; fields are only added within " + Schema + ".",
		"$defs":       g.defs,
	}
	for k, v := range root {
		doc[k] = v
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

type schemaGen struct {
	defs  map[string]any
	owner map[string]reflect.Type // which type a $defs name stands for
	// docs are doc comments by "pkgpath.Type" and "pkgpath.Type.Field".
	docs   map[string]string
	parsed map[string]bool // package paths whose source was read
}

// modulePath is the module the model's packages are in; the test runs in
// coredump/report, two levels below the module's root.
const modulePath = "github.com/coreexplain/coreexplain"

// doc is the doc comment of a type (field == "") or of its field, as one
// line.
func (g *schemaGen) doc(t reflect.Type, field string) (string, error) {
	pkg := t.PkgPath()
	if !g.parsed[pkg] {
		if g.parsed == nil {
			g.parsed = map[string]bool{}
		}
		g.parsed[pkg] = true
		if err := g.readDocs(pkg); err != nil {
			return "", err
		}
	}
	key := pkg + "." + t.Name()
	if field != "" {
		key += "." + field
	}
	return g.docs[key], nil
}

func (g *schemaGen) readDocs(pkg string) error {
	rel, ok := strings.CutPrefix(pkg, modulePath)
	if !ok {
		return nil
	}
	dir := filepath.Join("..", "..", filepath.FromSlash(strings.TrimPrefix(rel, "/")))
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return err
	}
	fset := token.NewFileSet()
	oneLine := func(cgs ...*ast.CommentGroup) string {
		for _, cg := range cgs {
			if t := strings.Join(strings.Fields(cg.Text()), " "); t != "" {
				return t
			}
		}
		return ""
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, sp := range gd.Specs {
				ts := sp.(*ast.TypeSpec)
				g.docs[pkg+"."+ts.Name.Name] = oneLine(ts.Doc, gd.Doc)
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				for _, fl := range st.Fields.List {
					for _, n := range fl.Names {
						g.docs[pkg+"."+ts.Name.Name+"."+n.Name] = oneLine(fl.Doc, fl.Comment)
					}
				}
			}
		}
	}
	return nil
}

var textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()

// of is the schema of values of type t.
func (g *schemaGen) of(t reflect.Type) (map[string]any, error) {
	// The model's own string types first: their values are a closed set.
	switch t {
	case reflect.TypeFor[coredump.Addr]():
		return map[string]any{"type": "string", "pattern": "^0x[0-9a-f]+$"}, nil
	case reflect.TypeFor[diagnose.Confidence]():
		return enum(diagnose.High, diagnose.Medium, diagnose.Low), nil
	case reflect.TypeFor[diagnose.Class]():
		var cs []fmt.Stringer
		for _, c := range diagnose.Classes() {
			cs = append(cs, c)
		}
		return enum(cs...), nil
	}
	if t.Implements(textMarshaler) {
		return map[string]any{"type": "string"}, nil
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}, nil
	case reflect.Bool:
		return map[string]any{"type": "boolean"}, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer", "minimum": 0}, nil
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}, nil
	case reflect.Pointer:
		// Only reached through omitempty fields (checked in field), which
		// encoding/json leaves out when nil: never null.
		return g.of(t.Elem())
	case reflect.Slice:
		items, err := g.of(t.Elem())
		if err != nil {
			return nil, err
		}
		return map[string]any{"type": "array", "items": items}, nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("map key %s: only string keys are in the model", t.Key())
		}
		vals, err := g.of(t.Elem())
		if err != nil {
			return nil, err
		}
		return map[string]any{"type": "object", "additionalProperties": vals}, nil
	case reflect.Struct:
		return g.object(t)
	}
	return nil, fmt.Errorf("type %s: no JSON Schema for kind %s", t, t.Kind())
}

func enum[S fmt.Stringer](vals ...S) map[string]any {
	var names []string
	for _, v := range vals {
		names = append(names, v.String())
	}
	return map[string]any{"type": "string", "enum": names}
}

// object puts the schema of struct type t in $defs, named after the type,
// and refers to it.
func (g *schemaGen) object(t reflect.Type) (map[string]any, error) {
	name := t.Name()
	ref := map[string]any{"$ref": "#/$defs/" + name}
	if prev, ok := g.owner[name]; ok {
		if prev != t {
			return nil, fmt.Errorf("two model types named %s: %s and %s", name, prev, t)
		}
		return ref, nil
	}
	g.owner[name] = t
	props := map[string]any{}
	required := []string{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if f.Anonymous {
			return nil, fmt.Errorf("%s.%s: embedded structs are not in the model", t, f.Name)
		}
		jname, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if jname == "-" && opts == "" {
			continue
		}
		if jname == "" {
			return nil, fmt.Errorf("%s.%s has no json tag", t, f.Name)
		}
		omitempty := false
		for _, o := range strings.Split(opts, ",") {
			switch o {
			case "omitempty":
				omitempty = true
			case "":
			default:
				return nil, fmt.Errorf("%s.%s: json option %q is not handled", t, f.Name, o)
			}
		}
		if !omitempty && f.Type.Kind() == reflect.Pointer {
			return nil, fmt.Errorf("%s.%s: a pointer without omitempty would be written as null", t, f.Name)
		}
		s, err := g.of(f.Type)
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", t, f.Name, err)
		}
		if t == reflect.TypeFor[Report]() && f.Name == "Schema" {
			s = map[string]any{"const": Schema}
		}
		d, err := g.doc(t, f.Name)
		if err != nil {
			return nil, err
		}
		if d != "" {
			// A $ref's own schema is shared; the field's words go beside it.
			s = withDescription(s, d)
		}
		props[jname] = s
		if !omitempty {
			required = append(required, jname)
		}
	}
	def := map[string]any{
		"type":                 "object",
		"properties":           props,
		"required":             required,
		"additionalProperties": false,
	}
	d, err := g.doc(t, "")
	if err != nil {
		return nil, err
	}
	if d != "" {
		def["description"] = d
	}
	g.defs[name] = def
	return ref, nil
}

func withDescription(s map[string]any, d string) map[string]any {
	out := map[string]any{"description": d}
	for k, v := range s {
		out[k] = v
	}
	return out
}
