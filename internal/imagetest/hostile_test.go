package imagetest

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// The committed table reads whole.
func TestHostileFixturesReadsTheTable(t *testing.T) {
	rows, err := HostileFixtures(filepath.Join("..", "..", "testdata", "hostile"))
	if err != nil {
		t.Fatal(err)
	}
	first := Hostile{File: "dotdot.tar", Tries: "a file next to the layer directory", Entry: "../escape", Want: `".." component`}
	if len(rows) < MinHostile || rows[0] != first {
		t.Fatalf("read %d rows, the first %+v; want at least %d, the first %+v", len(rows), rows[0], MinHostile, first)
	}
}

// Every way a table can be wrong is an error, never a short list.
func TestHostileFixturesRefusesABadTable(t *testing.T) {
	const head = "# Hostile\n\n| file | what it tries | entry | expected error |\n|---|---|---|---|\n"
	row := func(i int) string { return fmt.Sprintf("| `f%02d.tar` | try %d | `e%d` | `want %d` |\n", i, i, i, i) }
	full := head
	for i := range MinHostile {
		full += row(i)
	}
	for _, c := range []struct {
		name, readme string
		files        int // f00.tar ... in the directory
		want         string
	}{
		{"no README", "", MinHostile, "no such file"},
		{"no table", "# Hostile\n\nnothing here\n", 0, "no table with the columns"},
		{"empty table", head, 0, "0 fixtures listed, want at least 20"},
		{"short table", head + row(0) + row(1), 2, "2 fixtures listed, want at least 20"},
		{"a file not listed", head + row(0) + row(1), 3, "f02.tar is in"},
		{"a row without its file", full, MinHostile - 1, "f19.tar is listed but not in"},
		{"a row with a missing cell", full + "| `f99.tar` | tries | `e` |\n", MinHostile, "want 4 non-empty cells"},
		{"a row with an empty cell", full + "| `f99.tar` | tries | | `w` |\n", MinHostile, "want 4 non-empty cells"},
		{"renamed columns", strings.Replace(full, "expected error", "error", 1), MinHostile, "no table with the columns"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if c.readme != "" {
				if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte(c.readme), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for i := range c.files {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d.tar", i)), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			rows, err := HostileFixtures(dir)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("HostileFixtures = %d rows, %v; want an error containing %q", len(rows), err, c.want)
			}
		})
	}
	// And the full made-up table is good, so that the cases above fail for
	// their own reason.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "README.md"), []byte(full+"\nText after the table.\n| not | a | row | here |\n"), 0o644)
	for i := range MinHostile {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d.tar", i)), nil, 0o644)
	}
	rows, err := HostileFixtures(dir)
	if err != nil || len(rows) != MinHostile || rows[3] != (Hostile{"f03.tar", "try 3", "e3", "want 3"}) {
		t.Fatalf("HostileFixtures = %d rows (%+v), %v", len(rows), rows, err)
	}
}

// The committed second table, of layers that must unpack, reads whole.
func TestContainedFixturesReadsTheTable(t *testing.T) {
	rows, err := ContainedFixtures(filepath.Join("..", "..", "testdata", "hostile"))
	if err != nil {
		t.Fatal(err)
	}
	first := Contained{File: "umoci-root.tar", Holds: "a root entry `/`, as `umoci insert DIR /` writes it", Lands: []string{"etc/hello"}}
	if len(rows) < MinContained || !reflect.DeepEqual(rows[0], first) {
		t.Fatalf("read %d rows, the first %+v; want at least %d, the first %+v", len(rows), rows[0], MinContained, first)
	}
	var names []string
	for _, r := range rows {
		names = append(names, r.File)
	}
	if !slices.Contains(names, "absolute-names.tar") || !slices.Contains(names, "dot-slash.tar") {
		t.Errorf("the table lists %v, want absolute-names.tar and dot-slash.tar among them", names)
	}
}

// The second table follows the same rules, and its files count as listed.
func TestContainedFixturesRefusesABadTable(t *testing.T) {
	const head = "# Hostile\n\n| file | what it tries | entry | expected error |\n|---|---|---|---|\n"
	hostile := head
	for i := range MinHostile {
		hostile += fmt.Sprintf("| `f%02d.tar` | try %d | `e%d` | `want %d` |\n", i, i, i, i)
	}
	const chead = "\n## Layers that must unpack\n\n| file | what it holds | lands at |\n|---|---|---|\n"
	crow := func(i int) string { return fmt.Sprintf("| `c%02d.tar` | holds %d | `a%d`, `b/%d` |\n", i, i, i, i) }
	contained := chead
	for i := range MinContained {
		contained += crow(i)
	}
	write := func(t *testing.T, readme string, cfiles int) string {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "README.md"), []byte(readme), 0o644)
		for i := range MinHostile {
			os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d.tar", i)), nil, 0o644)
		}
		for i := range cfiles {
			os.WriteFile(filepath.Join(dir, fmt.Sprintf("c%02d.tar", i)), nil, 0o644)
		}
		return dir
	}
	for _, c := range []struct {
		name, readme string
		cfiles       int
		want         string
	}{
		{"no second table", hostile, 0, "0 layers to unpack listed, want at least 5"},
		{"short second table", hostile + chead + crow(0), 1, "1 layers to unpack listed, want at least 5"},
		{"a file in neither table", hostile + contained, MinContained + 1, "c05.tar is in"},
		{"a row without its file", hostile + contained, MinContained - 1, "c04.tar is listed but not in"},
		{"a row with a missing cell", hostile + contained + "| `c99.tar` | holds |\n", MinContained, "want 3 non-empty cells"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rows, err := ContainedFixtures(write(t, c.readme, c.cfiles))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ContainedFixtures = %d rows, %v; want an error containing %q", len(rows), err, c.want)
			}
		})
	}
	// The full made-up tables are good, for both readers.
	dir := write(t, hostile+contained, MinContained)
	rows, err := ContainedFixtures(dir)
	if err != nil || len(rows) != MinContained || !reflect.DeepEqual(rows[2], Contained{"c02.tar", "holds 2", []string{"a2", "b/2"}}) {
		t.Fatalf("ContainedFixtures = %d rows (%+v), %v", len(rows), rows, err)
	}
	if h, err := HostileFixtures(dir); err != nil || len(h) != MinHostile {
		t.Fatalf("HostileFixtures beside a second table = %d rows, %v", len(h), err)
	}
}
