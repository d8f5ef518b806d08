package imagetest

import (
	"bufio"
	"bytes"
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

// MinContained is the fewest layers the second table, of layers that must
// unpack, may list.
const MinContained = 5

// A Hostile is one row of testdata/hostile/README.md: a layer that
// pkg/image/layer must refuse with an error naming Entry and containing
// Want.
type Hostile struct {
	File  string // the fixture in the directory
	Tries string // what it tries, in words
	Entry string // the entry the error must name
	Want  string // a substring of the error
}

// A Contained is one row of the second table of testdata/hostile/README.md:
// a layer whose names only look hostile (a root entry "/" as umoci writes
// it, absolute or "./" names), which pkg/image/layer must unpack, creating
// Lands below its target and nothing outside it.
type Contained struct {
	File  string   // the fixture in the directory
	Holds string   // what it holds, in words
	Lands []string // paths it must create, relative to the target
}

// HostileFixtures reads the table of dir/README.md (made by
// internal/hostilegen). The pkg/image and pkg/image/layer tests both read
// it here, so that one rule holds for both: the table must be found, every
// row well formed, every row's file present, every file in dir listed (in
// it or in the table of layers that must unpack), and at least MinHostile
// rows there. Anything else is an error, never an empty list.
func HostileFixtures(dir string) ([]Hostile, error) {
	hostile, _, err := readFixtures(dir)
	if err != nil {
		return nil, err
	}
	if len(hostile) < MinHostile {
		return nil, fmt.Errorf("%s: %d fixtures listed, want at least %d", filepath.Join(dir, "README.md"), len(hostile), MinHostile)
	}
	return hostile, nil
}

// ContainedFixtures reads the second table of dir/README.md, of layers
// that must unpack, by the same rules as HostileFixtures, and at least
// MinContained rows.
func ContainedFixtures(dir string) ([]Contained, error) {
	_, contained, err := readFixtures(dir)
	if err != nil {
		return nil, err
	}
	if len(contained) < MinContained {
		return nil, fmt.Errorf("%s: %d layers to unpack listed, want at least %d", filepath.Join(dir, "README.md"), len(contained), MinContained)
	}
	return contained, nil
}

// readFixtures reads both tables and checks that each file of dir is
// listed in one, and each listed file is there. The second table may be
// missing (then it has no rows); the first may not.
func readFixtures(dir string) ([]Hostile, []Contained, error) {
	readme := filepath.Join(dir, "README.md")
	data, err := os.ReadFile(readme)
	if err != nil {
		return nil, nil, fmt.Errorf("hostile fixtures: %w", err)
	}
	rows, err := parseHostileTable(bufio.NewScanner(bytes.NewReader(data)))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", readme, err)
	}
	contained, err := parseContainedTable(bufio.NewScanner(bytes.NewReader(data)))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", readme, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("hostile fixtures: %w", err)
	}
	var files []string
	for _, e := range entries {
		if e.Name() != "README.md" {
			files = append(files, e.Name())
		}
	}
	var listed []string
	for _, r := range rows {
		listed = append(listed, r.File)
	}
	for _, c := range contained {
		listed = append(listed, c.File)
	}
	for _, name := range listed {
		if !slices.Contains(files, name) {
			return nil, nil, fmt.Errorf("%s: %s is listed but not in %s", readme, name, dir)
		}
	}
	for _, name := range files {
		if !slices.Contains(listed, name) {
			return nil, nil, fmt.Errorf("%s: %s is in %s but not listed", readme, name, dir)
		}
	}
	return rows, contained, nil
}

// hostileColumns are the columns of the table, by their headers.
var hostileColumns = []string{"file", "what it tries", "entry", "expected error"}

// containedColumns are the columns of the table of layers that must unpack.
var containedColumns = []string{"file", "what it holds", "lands at"}

// parseHostileTable reads the markdown table whose header is
// hostileColumns.
func parseHostileTable(sc *bufio.Scanner) ([]Hostile, error) {
	table, found, err := parseTable(sc, hostileColumns)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("no table with the columns %q", hostileColumns)
	}
	var rows []Hostile
	for _, c := range table {
		rows = append(rows, Hostile{File: unquote(c[0]), Tries: c[1], Entry: unquote(c[2]), Want: unquote(c[3])})
	}
	return rows, nil
}

// parseContainedTable reads the markdown table whose header is
// containedColumns, if there is one; its last cell lists paths, each in
// backquotes, separated by commas.
func parseContainedTable(sc *bufio.Scanner) ([]Contained, error) {
	table, _, err := parseTable(sc, containedColumns)
	if err != nil {
		return nil, err
	}
	var rows []Contained
	for _, c := range table {
		var lands []string
		for _, p := range strings.Split(c[2], ",") {
			lands = append(lands, unquote(strings.TrimSpace(p)))
		}
		rows = append(rows, Contained{File: unquote(c[0]), Holds: c[1], Lands: lands})
	}
	return rows, nil
}

// parseTable reads the markdown table whose header is columns: its rows
// run from after the |---| line to the first line that is not a table row.
func parseTable(sc *bufio.Scanner, columns []string) (rows [][]string, found bool, err error) {
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if !found {
			found = slices.Equal(cells(text), columns)
			if found && sc.Scan() { // the |---| line
				line++
			}
			continue
		}
		if !strings.HasPrefix(text, "|") {
			break
		}
		c := cells(text)
		if len(c) != len(columns) || slices.Contains(c, "") {
			return nil, true, fmt.Errorf("line %d: want %d non-empty cells (%s): %s", line, len(columns), strings.Join(columns, ", "), text)
		}
		rows = append(rows, c)
	}
	return rows, found, sc.Err()
}

func unquote(s string) string { return strings.TrimSuffix(strings.TrimPrefix(s, "`"), "`") }

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
