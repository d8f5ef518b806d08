package imagetest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// MinHostile is the fewest fixtures the hostile table may list: fewer
// means a table that was cut or misread, and a test over it that proves
// little.
const MinHostile = 20

// A Hostile is one row of testdata/hostile/README.md: a layer that
// pkg/image/layer must refuse with an error naming Entry and containing
// Want.
type Hostile struct {
	File  string // the fixture in the directory
	Tries string // what it tries, in words
	Entry string // the entry the error must name
	Want  string // a substring of the error
}

// HostileFixtures reads the table of dir/README.md (made by
// internal/hostilegen). The pkg/image and pkg/image/layer tests both read
// it here, so that one rule holds for both: the table must be found, every
// row well formed, every row's file present, every file in dir listed, and
// at least MinHostile rows there. Anything else is an error, never an
// empty list.
func HostileFixtures(dir string) ([]Hostile, error) {
	readme := filepath.Join(dir, "README.md")
	f, err := os.Open(readme)
	if err != nil {
		return nil, fmt.Errorf("hostile fixtures: %w", err)
	}
	defer f.Close()
	rows, err := parseHostileTable(bufio.NewScanner(f))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", readme, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("hostile fixtures: %w", err)
	}
	var files []string
	for _, e := range entries {
		if e.Name() != "README.md" {
			files = append(files, e.Name())
		}
	}
	for _, r := range rows {
		if !slices.Contains(files, r.File) {
			return nil, fmt.Errorf("%s: %s is listed but not in %s", readme, r.File, dir)
		}
	}
	for _, name := range files {
		if !slices.ContainsFunc(rows, func(r Hostile) bool { return r.File == name }) {
			return nil, fmt.Errorf("%s: %s is in %s but not listed", readme, name, dir)
		}
	}
	if len(rows) < MinHostile {
		return nil, fmt.Errorf("%s: %d fixtures listed, want at least %d", readme, len(rows), MinHostile)
	}
	return rows, nil
}

// hostileColumns are the columns of the table, by their headers.
var hostileColumns = []string{"file", "what it tries", "entry", "expected error"}

// parseHostileTable reads the markdown table whose header is
// hostileColumns: its rows run from after the |---| line to the first line
// that is not a table row.
func parseHostileTable(sc *bufio.Scanner) ([]Hostile, error) {
	var rows []Hostile
	header := false
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if !header {
			header = slices.Equal(cells(text), hostileColumns)
			if header && sc.Scan() { // the |---| line
				line++
			}
			continue
		}
		if !strings.HasPrefix(text, "|") {
			break
		}
		c := cells(text)
		if len(c) != len(hostileColumns) || slices.Contains(c, "") {
			return nil, fmt.Errorf("line %d: want %d non-empty cells (%s): %s", line, len(hostileColumns), strings.Join(hostileColumns, ", "), text)
		}
		unquote := func(s string) string { return strings.TrimSuffix(strings.TrimPrefix(s, "`"), "`") }
		rows = append(rows, Hostile{File: unquote(c[0]), Tries: c[1], Entry: unquote(c[2]), Want: unquote(c[3])})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if !header {
		return nil, fmt.Errorf("no table with the columns %q", hostileColumns)
	}
	return rows, nil
}

// cells splits a markdown table row "| a | b |" into its trimmed cells.
func cells(row string) []string {
	if !strings.HasPrefix(row, "|") || !strings.HasSuffix(row, "|") || len(row) < 2 {
		return nil
	}
	parts := strings.Split(row[1:len(row)-1], "|")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
	}
	return parts
}
