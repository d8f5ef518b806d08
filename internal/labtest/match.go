package labtest

import (
	"regexp"
	"strings"
)

// Match reports whether got (a command's output, split in lines) is what
// want shows. A want line that is exactly "..." matches any number of
// lines, none included; "..." inside a line matches any text; trailing
// spaces and trailing blank lines count on neither side.
func Match(want, got []string) bool {
	want, got = trimTrailingBlank(trimRight(want)), trimTrailingBlank(trimRight(got))
	pats := make([]*regexp.Regexp, len(want))
	for i, w := range want {
		if w != "..." {
			pats[i] = linePattern(w)
		}
	}
	// memo[i][j]: want[i:] against got[j:] already failed.
	failed := make(map[[2]int]bool)
	var match func(i, j int) bool
	match = func(i, j int) bool {
		if i == len(want) {
			return j == len(got)
		}
		if failed[[2]int{i, j}] {
			return false
		}
		ok := false
		if pats[i] == nil {
			for k := j; k <= len(got) && !ok; k++ {
				ok = match(i+1, k)
			}
		} else {
			ok = j < len(got) && pats[i].MatchString(got[j]) && match(i+1, j+1)
		}
		if !ok {
			failed[[2]int{i, j}] = true
		}
		return ok
	}
	return match(0, 0)
}

// linePattern turns one shown line into an anchored regexp: literal text,
// with "..." matching anything.
func linePattern(line string) *regexp.Regexp {
	parts := strings.Split(line, "...")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile("^" + strings.Join(parts, ".*") + "$")
}

func trimRight(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = strings.TrimRight(l, " \t\r")
	}
	return out
}
