package diagnose

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/coreexplain/coreexplain/fixtures"
)

// parseRules parses the package's non-test files.
func parseRules(t *testing.T) (*token.FileSet, map[string]*ast.File) {
	t.Helper()
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*ast.File{}
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, n, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files[n] = f
	}
	return fset, files
}

// TestClassesListsEveryConstant: every constant of type Class declared in
// classes.go is in Classes(), once, and nothing else is.
func TestClassesListsEveryConstant(t *testing.T) {
	_, files := parseRules(t)
	declared := map[Class]string{}
	for _, f := range files {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, sp := range gd.Specs {
				vs := sp.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Class" {
					continue
				}
				for i, name := range vs.Names {
					v, err := strconv.Unquote(vs.Values[i].(*ast.BasicLit).Value)
					if err != nil {
						t.Fatal(err)
					}
					declared[Class(v)] = name.Name
				}
			}
		}
	}
	seen := map[Class]bool{}
	for _, c := range Classes() {
		if seen[c] {
			t.Errorf("%s listed twice in Classes()", c)
		}
		seen[c] = true
		if declared[c] == "" {
			t.Errorf("%s in Classes() is not a declared constant", c)
		}
	}
	for c, name := range declared {
		if !seen[c] {
			t.Errorf("constant %s (%q) is missing from Classes()", name, c)
		}
	}
	if len(declared) != 23 {
		t.Errorf("%d classes declared, want 23", len(declared))
	}
}

// TestRulesUseClassConstants: no rule names a class with a string of its
// own, so a new class cannot be emitted without a constant (and a line in
// README). A class name may appear as a literal only as a rule's Name.
func TestRulesUseClassConstants(t *testing.T) {
	fset, files := parseRules(t)
	known := map[string]bool{}
	for _, c := range Classes() {
		known[string(c)] = true
	}
	for name, f := range files {
		if name == "classes.go" {
			continue
		}
		ruleNames := map[*ast.BasicLit]bool{}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.KeyValueExpr:
				key, _ := n.Key.(*ast.Ident)
				lit, isLit := n.Value.(*ast.BasicLit)
				switch {
				case key == nil:
				case key.Name == "Name" && isLit:
					ruleNames[lit] = true
				case key.Name == "Class" && isLit:
					t.Errorf("%s: Class: %s is a string, not a Class constant", fset.Position(n.Pos()), lit.Value)
				}
			case *ast.AssignStmt:
				for i, lhs := range n.Lhs {
					sel, ok := lhs.(*ast.SelectorExpr)
					if !ok || sel.Sel.Name != "Class" || i >= len(n.Rhs) {
						continue
					}
					if lit, ok := n.Rhs[i].(*ast.BasicLit); ok {
						t.Errorf("%s: .Class = %s is a string, not a Class constant", fset.Position(n.Pos()), lit.Value)
					}
				}
			case *ast.BasicLit:
				if s, err := strconv.Unquote(n.Value); err == nil && known[s] && !ruleNames[n] {
					t.Errorf("%s: class name %s as a string literal; use its Class constant", fset.Position(n.Pos()), n.Value)
				}
			}
			return true
		})
	}
}

// readmeClasses parses README's list of finding classes: the bullets
// ("- `class` — what") after the line starting "Finding classes:".
func readmeClasses(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	start := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "Finding classes:") })
	if start < 0 {
		t.Fatal(`README has no line starting "Finding classes:"`)
	}
	bullet := regexp.MustCompile("^- `([^`]+)` ")
	var out []string
	inList := false
	for _, l := range lines[start+1:] {
		if m := bullet.FindStringSubmatch(l); m != nil {
			out = append(out, m[1])
			inList = true
			continue
		}
		if strings.TrimSpace(l) == "" || inList && strings.HasPrefix(l, "  ") {
			continue // a blank line or a bullet's continuation
		}
		if inList {
			break
		}
	}
	return out
}

// TestReadmeListsEveryClass fails when README's list of finding classes and
// Classes() differ.
func TestReadmeListsEveryClass(t *testing.T) {
	readme := readmeClasses(t)
	var code []string
	for _, c := range Classes() {
		code = append(code, string(c))
	}
	for _, c := range readme {
		if !slices.Contains(code, c) {
			t.Errorf("README lists %s, which no rule emits", c)
		}
	}
	for _, c := range code {
		if !slices.Contains(readme, c) {
			t.Errorf("README does not list %s", c)
		}
	}
	if len(readme) != len(code) {
		t.Errorf("README lists %d classes, the code has %d", len(readme), len(code))
	}
}

// TestFixtureClassesAreKnown: the class each fixture expects is one the
// rules can emit.
func TestFixtureClassesAreKnown(t *testing.T) {
	names, err := fixtures.List()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, name := range names {
		fx, err := fixtures.Load(name)
		if err != nil {
			t.Fatal(err)
		}
		class, ok := fx.Spec.Expect["class"].(string)
		if !ok {
			continue
		}
		n++
		if !slices.Contains(Classes(), Class(class)) {
			t.Errorf("fixture %s expects class %q, which is not in Classes()", name, class)
		}
	}
	if n == 0 {
		t.Error("no fixture names a class")
	}
}
