package procfs

import (
	"errors"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestParseMountinfo(t *testing.T) {
	// Each line written by hand the way the kernel prints it (show_mountinfo
	// in fs/proc_namespace.c): escapes, optional fields, an empty source.
	const table = `22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
40 22 0:37 /a\040b /mnt/my\040dir rw,nosuid shared:5 master:2 - tmpfs tmp\011fs rw
41 22 0:38 / /mnt/line\012break\134back rw - tmpfs  rw,size=4k
42 22 0:39 / /mnt/not\9escape\04 ro - proc proc ro
43 22 0:40 / /mnt/- rw - cgroup2 cgroup2 rw,nsdelegate
`
	ms, err := ParseMountinfo(strings.NewReader(table))
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{
		{ID: 22, Parent: 1, Device: "254:1", Root: "/", Point: "/", Options: "rw,relatime", Optional: []string{"shared:1"},
			FSType: "ext4", Source: "/dev/vda1", SuperOptions: "rw,errors=remount-ro"},
		{ID: 40, Parent: 22, Device: "0:37", Root: "/a b", Point: "/mnt/my dir", Options: "rw,nosuid", Optional: []string{"shared:5", "master:2"},
			FSType: "tmpfs", Source: "tmp\tfs", SuperOptions: "rw"},
		{ID: 41, Parent: 22, Device: "0:38", Root: "/", Point: "/mnt/line\nbreak\\back", Options: "rw",
			FSType: "tmpfs", Source: "", SuperOptions: "rw,size=4k"},
		{ID: 42, Parent: 22, Device: "0:39", Root: "/", Point: `/mnt/not\9escape\04`, Options: "ro",
			FSType: "proc", Source: "proc", SuperOptions: "ro"},
		{ID: 43, Parent: 22, Device: "0:40", Root: "/", Point: "/mnt/-", Options: "rw",
			FSType: "cgroup2", Source: "cgroup2", SuperOptions: "rw,nsdelegate"},
	}
	if !reflect.DeepEqual(ms, want) {
		t.Errorf("ParseMountinfo:\n got %+v\nwant %+v", ms, want)
	}
}

func TestParseMountinfoRefusesBrokenLines(t *testing.T) {
	for _, line := range []string{
		"22 1 254:1 / / rw,relatime shared:1 ext4 /dev/vda1 rw", // no separator
		"22 1 254:1 / / rw,relatime - ext4 /dev/vda1",           // too few fields after it
		"22 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw extra",  // too many
		"x 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw",         // ID not a number
		"22 1 254:1 / /", // cut short
	} {
		_, err := ParseMountinfo(strings.NewReader("21 1 0:1 / /x rw - tmpfs t rw\n" + line + "\n"))
		if err == nil || !strings.Contains(err.Error(), "mountinfo line 2") {
			t.Errorf("%q: error %v, want one naming line 2", line, err)
		}
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:        "plain",
		`a\040b`:       "a b",
		`\011\012\134`: "\t\n\\",
		`end\`:         `end\`,
		`\04`:          `\04`,
		`\400`:         `\400`, // over a byte: not an escape
		`\1340`:        `\0`,
		`\\040`:        `\ `, // a lone backslash (the kernel writes one as \134), then an escaped space
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseStat(t *testing.T) {
	// A comm that tries every trick: spaces, both parentheses, and a fake
	// field layout inside the name.
	const line = "4242 (a) b (c) S 1 2 3) R 17 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654321 1000 200 18446744073709551615\n"
	s, err := ParseStat(line)
	if err != nil {
		t.Fatal(err)
	}
	want := Stat{PID: 4242, Comm: "a) b (c) S 1 2 3", State: 'R', PPID: 17, StartTime: 987654321}
	if s != want {
		t.Errorf("ParseStat = %+v, want %+v", s, want)
	}
	for _, bad := range []string{
		"4242 sh S 1",       // no parentheses
		"4242 (sh) S 1 2 3", // cut short
		"x (sh) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20", // PID not a number
		"4242 (sh) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 x 20",
	} {
		if _, err := ParseStat(bad); err == nil {
			t.Errorf("ParseStat(%q) accepted it", bad)
		}
	}
}

// TestReadStatSelf reads this test process's own line: the kernel's format,
// not one written by hand.
func TestReadStatSelf(t *testing.T) {
	s, err := ReadStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// /proc/PID/stat is the thread group leader's state: the main thread
	// may be asleep while another thread of this process reads it.
	if s.PID != os.Getpid() || s.PPID != os.Getppid() || (s.State != 'R' && s.State != 'S') || s.StartTime == 0 {
		t.Errorf("ReadStat(self) = %+v, want PID %d, parent %d, running or sleeping, a start time", s, os.Getpid(), os.Getppid())
	}
	exe, _ := os.Executable()
	if base := exe[strings.LastIndexByte(exe, '/')+1:]; !strings.HasPrefix(base, s.Comm) || s.Comm == "" {
		t.Errorf("Comm = %q, want a prefix of %q", s.Comm, base)
	}
	if _, err := ReadStat(1 << 30); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadStat of a PID that cannot exist: %v, want fs.ErrNotExist", err)
	}
}

func TestReadMountsSelf(t *testing.T) {
	ms, err := Mounts()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Point == "/proc" && m.FSType == "proc" {
			return
		}
	}
	t.Errorf("no proc mount at /proc among %d mounts", len(ms))
}

func TestParseCgroups(t *testing.T) {
	const hybrid = `12:pids:/user.slice/user-0.slice/session-1.scope
4:cpu,cpuacct:/
1:name=systemd:/user.slice
0::/odd:path:with colons
`
	es, err := ParseCgroups(strings.NewReader(hybrid))
	if err != nil {
		t.Fatal(err)
	}
	want := []CgroupEntry{
		{12, "pids", "/user.slice/user-0.slice/session-1.scope"},
		{4, "cpu,cpuacct", "/"},
		{1, "name=systemd", "/user.slice"},
		{0, "", "/odd:path:with colons"},
	}
	if !reflect.DeepEqual(es, want) {
		t.Errorf("ParseCgroups:\n got %+v\nwant %+v", es, want)
	}
	for _, bad := range []string{"0:/x\n", "x::/\n"} {
		if _, err := ParseCgroups(strings.NewReader(bad)); err == nil {
			t.Errorf("ParseCgroups(%q) accepted it", bad)
		}
	}
	if es, err := ThreadCgroups(); err != nil || len(es) == 0 {
		t.Errorf("ThreadCgroups() = %v, %v; want this thread's cgroups", es, err)
	}
}
