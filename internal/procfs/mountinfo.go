package procfs

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// A Mount is one line of a mountinfo table (proc(5)):
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//	(1)(2) (3)   (4)   (5)      (6)      (7)   (8) (9)    (10)         (11)
//
// Paths and the source are unescaped.
type Mount struct {
	ID, Parent   int
	Device       string   // "major:minor" of the file system
	Root         string   // the directory of the file system that is mounted here
	Point        string   // the mount point, as this process sees it
	Options      string   // per-mount options: "rw,nosuid,relatime"
	Optional     []string // tags such as "shared:1" or "master:3"; none for a private mount
	FSType       string   // "ext4", "cgroup", "cgroup2", "overlay", ...
	Source       string   // "/dev/vda1", "cgroup", "none", or ""
	SuperOptions string   // per-superblock options: for a v1 cgroup, its controllers ("rw,cpu,cpuacct")
}

// Mounts reads this process's mount table, /proc/self/mountinfo.
func Mounts() ([]Mount, error) {
	return readMountinfo("/proc/self/mountinfo")
}

func readMountinfo(path string) ([]Mount, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ms, err := ParseMountinfo(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return ms, nil
}

// ParseMountinfo parses a mountinfo table. A line it cannot read is an
// error naming the line: the kernel writes these tables, so a line that
// does not parse means the reader is wrong, not the line.
func ParseMountinfo(r io.Reader) ([]Mount, error) {
	var ms []Mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		m, err := parseMountLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d %q: %w", n, sc.Text(), err)
		}
		ms = append(ms, m)
	}
	return ms, sc.Err()
}

func parseMountLine(line string) (Mount, error) {
	// Split on single spaces, not on runs of them: an empty source shows
	// as two spaces in a row, and strings.Fields would lose its field.
	f := strings.Split(line, " ")
	if len(f) < 10 {
		return Mount{}, fmt.Errorf("%d fields, want at least 10", len(f))
	}
	// The optional fields end at a lone "-". No field before it can be
	// "-": paths start with "/", and options and tags are never a dash.
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 || len(f) != sep+4 {
		return Mount{}, fmt.Errorf("no \"-\" followed by 3 fields")
	}
	id, err1 := strconv.Atoi(f[0])
	parent, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return Mount{}, fmt.Errorf("mount ID %q or parent ID %q is not a number", f[0], f[1])
	}
	m := Mount{
		ID:           id,
		Parent:       parent,
		Device:       f[2],
		Root:         Unescape(f[3]),
		Point:        Unescape(f[4]),
		Options:      f[5],
		FSType:       Unescape(f[sep+1]),
		Source:       Unescape(f[sep+2]),
		SuperOptions: Unescape(f[sep+3]),
	}
	if sep > 6 {
		m.Optional = f[6:sep]
	}
	return m, nil
}

// Unescape undoes the kernel's octal escapes in mountinfo fields (seq_file's
// mangle): "\040" space, "\011" tab, "\012" newline, "\134" backslash. A
// backslash not followed by three octal digits is kept as it is.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) && isOctal(s[i+1:i+4]) {
			n, _ := strconv.ParseUint(s[i+1:i+4], 8, 8)
			b.WriteByte(byte(n))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// isOctal: three digits 0-7 whose value fits a byte (at most \377).
func isOctal(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '7' {
			return false
		}
	}
	return s[0] <= '3'
}
