package procfs

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Stat holds the fields of /proc/PID/stat (proc(5)) that minictr uses.
type Stat struct {
	PID   int
	Comm  string // the command name, without its parentheses: any bytes but NUL, at most 15
	State byte   // 'R' running, 'S' sleeping, 'Z' zombie, ...
	PPID  int
	// StartTime is when the process started, in clock ticks after boot
	// (field 22). With the PID it names one process for good: a PID the
	// kernel hands out again gets a later start time.
	StartTime uint64
}

// ReadStat reads /proc/PID/stat. A process that is gone gives an error
// matching fs.ErrNotExist (or ESRCH, when it went while being read).
func ReadStat(pid int) (Stat, error) {
	path := fmt.Sprintf("/proc/%d/stat", pid)
	data, err := os.ReadFile(path)
	if err != nil {
		return Stat{}, err
	}
	s, err := ParseStat(string(data))
	if err != nil {
		return Stat{}, fmt.Errorf("reading %s: %w", path, err)
	}
	return s, nil
}

// ParseStat parses one /proc/PID/stat line:
//
//	1234 (sh) S 1 1234 1234 34816 ... 22-th field: start time ...
//
// The command name may hold spaces and parentheses ("a) b (c"), so it runs
// from the first '(' to the last ')', and the other fields are counted
// from there.
func ParseStat(line string) (Stat, error) {
	open, end := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || end < open {
		return Stat{}, fmt.Errorf("stat %q: no command name in parentheses", line)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line[:open]))
	if err != nil {
		return Stat{}, fmt.Errorf("stat %q: PID: %w", line, err)
	}
	// After the name: field 3 (state) onwards, so field N is rest[N-3].
	rest := strings.Fields(line[end+1:])
	if len(rest) < 22-3+1 || len(rest[0]) != 1 {
		return Stat{}, fmt.Errorf("stat %q: %d fields after the command name, want at least 20", line, len(rest))
	}
	ppid, err := strconv.Atoi(rest[4-3])
	if err != nil {
		return Stat{}, fmt.Errorf("stat %q: parent PID: %w", line, err)
	}
	start, err := strconv.ParseUint(rest[22-3], 10, 64)
	if err != nil {
		return Stat{}, fmt.Errorf("stat %q: start time: %w", line, err)
	}
	return Stat{PID: pid, Comm: line[open+1 : end], State: rest[0][0], PPID: ppid, StartTime: start}, nil
}
