// Package depcheck holds the test that keeps minictr's layers honest: each
// stage stands alone, so a student can read one without the others, and
// library code stays quiet, so that a program can embed it. The rules are
// tables in rules_test.go.
package depcheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/minictr/minictr"

// A pkg is what `go list` says about one package of the module.
type pkg struct {
	ImportPath string
	Name       string
	Dir        string
	GoFiles    []string
	CgoFiles   []string
	Imports    []string
}

// rel is the package's path without the module ("pkg/image").
func (p pkg) rel() string { return strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/") }

// goList lists the packages matching patterns. Any failure of go list is an
// error: a package that does not load is a package nobody checked.
func goList(patterns ...string) ([]pkg, error) {
	args := append([]string{"list", "-json=ImportPath,Name,Dir,GoFiles,CgoFiles,Imports"}, patterns...)
	cmd := exec.Command("go", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list %s: %v: %s", strings.Join(patterns, " "), err, strings.TrimSpace(stderr.String()))
	}
	var pkgs []pkg
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list: %w", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("go list %s: no packages", strings.Join(patterns, " "))
	}
	return pkgs, nil
}

// modulePackages lists every package of the module, or fails the test. It
// skips only where there is no go command at all (the lab VM runs test
// binaries without a toolchain).
func modulePackages(t *testing.T) []pkg {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("no go command to list packages with: %v", err)
	}
	pkgs, err := goList(module + "/...")
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

// TestLayering checks every package's imports against the rules.
func TestLayering(t *testing.T) {
	for _, problem := range importProblems(rules, modulePackages(t)) {
		t.Error(problem)
	}
}

// TestRulesNameRealPackages keeps the tables true: every package a rule or
// a list names exists. A rule comes with its package, never before it.
func TestRulesNameRealPackages(t *testing.T) {
	for _, problem := range missingPackages(rules, modulePackages(t)) {
		t.Error(problem)
	}
}

// TestLibrariesStayQuiet parses every non-test file of every library
// package and reports each reference to the terminal or to exiting.
func TestLibrariesStayQuiet(t *testing.T) {
	var files []string
	for _, p := range modulePackages(t) {
		if !isLibrary(p) {
			continue
		}
		for _, f := range slices.Concat(p.GoFiles, p.CgoFiles) {
			files = append(files, filepath.Join(p.Dir, f))
		}
	}
	if len(files) < 20 {
		t.Fatalf("found only %d library files to check: is go list's output read right?", len(files))
	}
	root := moduleRoot(t)
	var found []use
	for _, f := range files {
		uses, err := noisyUses(f, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range uses {
			u.file, _ = filepath.Rel(root, u.file)
			found = append(found, u)
		}
	}
	for _, problem := range unexcused(found, exceptions) {
		t.Error(problem)
	}
}

// importProblems returns one line per import that breaks the rules.
func importProblems(rules []rule, pkgs []pkg) []string {
	var out []string
	for _, p := range pkgs {
		r, ok := ruleFor(rules, p.rel())
		if !ok {
			out = append(out, fmt.Sprintf("%s has no rule: add one to rules_test.go", p.rel()))
			continue
		}
		var stagesUsed []string
		for _, imp := range p.Imports {
			if isStd(imp) {
				continue
			}
			local, isLocal := strings.CutPrefix(imp, module+"/")
			if imp == cobra || under(imp, cobra) {
				if !underAny(p.rel(), cobraUsers) {
					out = append(out, fmt.Sprintf("%s imports %s: only %v may use cobra", p.rel(), imp, cobraUsers))
				}
				continue
			}
			for _, s := range stages {
				if isLocal && under(local, s) && !under(p.rel(), s) && !slices.Contains(stagesUsed, s) {
					stagesUsed = append(stagesUsed, s)
				}
			}
			name := imp
			if isLocal {
				name = local
			}
			if !underAny(name, r.may) {
				out = append(out, fmt.Sprintf("%s imports %s, outside its layer (rule %q: %s; may import %v)", p.rel(), name, r.pkg, r.why, r.may))
			}
		}
		if len(stagesUsed) > 1 && !underAny(p.rel(), composers) {
			out = append(out, fmt.Sprintf("%s imports the stages %v: only %v may put stages together", p.rel(), stagesUsed, composers))
		}
	}
	return out
}

// ruleFor returns the rule with the longest pkg that p is at or beneath.
func ruleFor(rules []rule, p string) (rule, bool) {
	var best rule
	found := false
	for _, r := range rules {
		if under(p, r.pkg) && (!found || len(r.pkg) > len(best.pkg)) {
			best, found = r, true
		}
	}
	return best, found
}

// missingPackages returns one line per module package that a table names
// but that does not exist.
func missingPackages(rules []rule, pkgs []pkg) []string {
	var names []string
	for _, r := range rules {
		names = append(names, r.pkg)
		for _, m := range r.may {
			if isLocalName(m) {
				names = append(names, m)
			}
		}
	}
	names = slices.Concat(names, stages, leaves, cobraUsers, composers, testSupport)
	exists := func(name string) bool {
		return slices.ContainsFunc(pkgs, func(p pkg) bool { return under(p.rel(), name) })
	}
	var out []string
	for _, name := range sortedUnique(names) {
		if !exists(name) {
			out = append(out, fmt.Sprintf("the rules name %s, which is no package of the module: remove it, or add the package", name))
		}
	}
	return out
}

// isLibrary: a non-main package in pkg/ or internal/ that is not test support.
func isLibrary(p pkg) bool {
	return p.Name != "main" && underAny(p.rel(), quietTrees) && !underAny(p.rel(), testSupport)
}

// A use is one reference to the terminal or to exiting, in one file.
type use struct {
	file string
	line int
	name string // "os.Stdout", "println"
}

func (u use) String() string { return fmt.Sprintf("%s:%d: %s", u.file, u.line, u.name) }

// noisyUses parses one Go file (src as in parser.ParseFile: nil reads the
// file) and returns every reference it makes to a name in noisy, whatever
// name the file imports the package under.
func noisyUses(filename string, src any) ([]use, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filename, src, 0)
	if err != nil {
		return nil, err
	}
	imported := map[string]string{} // local name -> import path
	for _, spec := range f.Imports {
		path, _ := strconv.Unquote(spec.Path.Value)
		local := path[strings.LastIndex(path, "/")+1:]
		if spec.Name != nil {
			local = spec.Name.Name
		}
		imported[local] = path
	}
	var out []use
	add := func(pos token.Pos, name string) {
		out = append(out, use{file: filename, line: fset.Position(pos).Line, name: name})
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			x, ok := n.X.(*ast.Ident)
			if !ok || x.Obj != nil { // a local variable, not a package
				return true
			}
			if path, ok := imported[x.Name]; ok && slices.Contains(noisy[path], n.Sel.Name) {
				add(n.Pos(), path+"."+n.Sel.Name)
			}
		case *ast.CallExpr:
			if id, ok := n.Fun.(*ast.Ident); ok && id.Obj == nil && slices.Contains(noisy[""], id.Name) {
				add(n.Pos(), id.Name)
			}
		}
		return true
	})
	return out, nil
}

// unexcused returns one line per use no exception covers, and one per
// exception that covers nothing.
func unexcused(uses []use, exceptions []exception) []string {
	var out []string
	used := make([]bool, len(exceptions))
	for _, u := range uses {
		i := slices.IndexFunc(exceptions, func(e exception) bool { return e.file == u.file && e.use == u.name })
		if i >= 0 {
			used[i] = true
			continue
		}
		out = append(out, fmt.Sprintf("%s: library code never writes to the terminal or exits: return an error or take an io.Writer (or add an exception, with its reason)", u))
	}
	for i, e := range exceptions {
		if !used[i] {
			out = append(out, fmt.Sprintf("exception %s in %s matches nothing: remove it", e.use, e.file))
		}
	}
	return out
}

// moduleRoot is the directory of go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// under reports whether path is name or beneath it.
func under(path, name string) bool {
	return path == name || strings.HasPrefix(path, name+"/")
}

func underAny(path string, names []string) bool {
	return slices.ContainsFunc(names, func(n string) bool { return under(path, n) })
}

// isStd: standard library import paths have no dot in their first element.
func isStd(imp string) bool {
	return !strings.HasPrefix(imp, module+"/") && isLocalName(imp)
}

// isLocalName: a name in the tables without a dot in its first element is
// a package of this module.
func isLocalName(name string) bool {
	first, _, _ := strings.Cut(name, "/")
	return !strings.Contains(first, ".")
}

func sortedUnique(names []string) []string {
	out := slices.Clone(names)
	slices.Sort(out)
	return slices.Compact(out)
}
