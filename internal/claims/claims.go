package claims

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// Heading starts the index section of a README.
const Heading = "## Claims and their proofs"

// Claim is one row of the index.
type Claim struct {
	Text    string   // the claim, as written
	Scripts []string // the scripts it names, such as "testdata/pid_one.txtar"
	Line    int      // where the row is in the README, for errors
}

var script = regexp.MustCompile("testdata/[A-Za-z0-9_.-]+\\.txtar")

// Parse reads a README and returns the rows of its index. It reports
// false when the README has no index section. A row that names no script
// is an error: a claim without a proof is what the index exists to catch.
func Parse(r io.Reader) ([]Claim, bool, error) {
	var claims []Claim
	found, inTable := false, false
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == Heading:
			found = true
			continue
		case !found:
			continue
		case strings.HasPrefix(line, "## "):
			return claims, found, sc.Err() // the next section ends the index
		case !strings.HasPrefix(line, "|"):
			if inTable && line != "" {
				return claims, found, sc.Err()
			}
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if !inTable { // the header row, then the |---|---| row
			inTable = true
			continue
		}
		if strings.Trim(line, "|-: ") == "" {
			continue
		}
		if len(cells) < 2 {
			return nil, found, fmt.Errorf("line %d: want | claim | scripts |, got %q", n, line)
		}
		c := Claim{Text: strings.TrimSpace(cells[0]), Scripts: script.FindAllString(strings.Join(cells[1:], "|"), -1), Line: n}
		if c.Text == "" || len(c.Scripts) == 0 {
			return nil, found, fmt.Errorf("line %d: a claim and at least one testdata/NAME.txtar, got %q", n, line)
		}
		claims = append(claims, c)
	}
	return claims, found, sc.Err()
}
