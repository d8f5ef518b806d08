package seccomp

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Bad profiles fail in Parse, in one line that names what is wrong.
func TestParseErrors(t *testing.T) {
	const ok = `"defaultAction": "SCMP_ACT_ERRNO"`
	for _, tc := range []struct{ json, want string }{
		{`{"defaultAction": 5}`, `field "defaultAction": a JSON number cannot be a seccomp.Action`},
		{`{` + ok + `, "syscalls": [{"names": "read", "action": "SCMP_ACT_ALLOW"}]}`, `field "syscalls.names"`},
		{`{` + ok + `, "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": -1}]}]}`, `field "syscalls.args.index"`},
		{"{\n" + ok + ",\n  \"syscalls\": [,]\n}", "invalid JSON on line 3"},
		{`{}`, `field "defaultAction": missing`},
		{`{"defaultAction": "SCMP_ACT_DENY"}`, `field "defaultAction": unknown action "SCMP_ACT_DENY"`},
		{`{` + ok + `, "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}, {"names": ["write"], "action": "ALLOW"}]}`,
			`field "syscalls[1].action": unknown action "ALLOW"`},
		{`{` + ok + `, "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQUAL"}]}]}`,
			`field "syscalls[0].args[0].op": unknown operator "SCMP_CMP_EQUAL"`},
		{`{` + ok + `, "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}`,
			`field "syscalls[0].args[0].index": 6 is not an argument`},
		{`{` + ok + `, "syscalls": [{"name": "read", "names": ["write"], "action": "SCMP_ACT_ALLOW"}]}`,
			`field "syscalls[0]": use either "name" or "names"`},
		{`{` + ok + `, "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]}`,
			`field "syscalls[0].action": SCMP_ACT_ALLOW takes no errnoRet`},
		{`{` + ok + `, "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}]}`,
			`errnoRet 70000 does not fit in 16 bits`},
		{`{` + ok + `, "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "four"}}]}`,
			`field "syscalls[0].includes.minKernel": kernel version "four" is not MAJOR.MINOR`},
		{`{` + ok + `, "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "excludes": {"minKernel": "5"}}]}`,
			`field "syscalls[0].excludes.minKernel"`},
		{`{` + ok + `, "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}`, `SCMP_ACT_NOTIFY is not supported`},
		{`{` + ok + `, "architectures": ["SCMP_ARCH_X86_64"], "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}`,
			`use either "architectures" or "archMap"`},
		{`{` + ok + `, "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_Z80"]}`, `field "architectures[1]": unknown architecture "SCMP_ARCH_Z80"`},
		{`{` + ok + `, "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["x32"]}]}`,
			`field "archMap[0].subArchitectures[0]": unknown architecture "x32"`},
	} {
		_, err := Parse([]byte(tc.json))
		if err == nil {
			t.Errorf("%s: parsed", tc.json)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %s", tc.json, err, tc.want)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error on more than one line: %q", tc.json, err)
		}
	}
}

// Load names the file; a missing file is an os.PathError.
func TestLoad(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"defaultAction": "SCMP_ACT_NOPE"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.HasPrefix(err.Error(), bad+": ") {
		t.Errorf("Load(bad) = %v, want an error naming %s", err, bad)
	}
	var pathErr *os.PathError
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); !errors.As(err, &pathErr) {
		t.Errorf("Load(missing) = %v, want an *os.PathError", err)
	}
}

// What Parse reads: both spellings of names, the actions with their data,
// and fields docker's profiles have that the compiler does not use.
func TestParseFields(t *testing.T) {
	p, err := Parse([]byte(`{
		"defaultAction": "SCMP_ACT_KILL_PROCESS",
		"listenerPath": "/run/ignored.sock",
		"architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
		"syscalls": [
			{"name": "read", "action": "SCMP_ACT_ALLOW", "args": null, "comment": "old form"},
			{"names": ["write"], "action": "SCMP_ACT_TRACE", "errnoRet": 7}
		]}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.DefaultAction != "SCMP_ACT_KILL_PROCESS" || len(p.Architectures) != 2 || p.Syscalls[0].Name != "read" ||
		p.Syscalls[1].Names[0] != "write" || *p.Syscalls[1].ErrnoRet != 7 {
		t.Errorf("parsed %+v", p)
	}
}

func TestParseKernel(t *testing.T) {
	for s, want := range map[string]kernel{"4.8": {4, 8}, "6.18.44-fc-v857": {6, 18}, "5.10.0-13-amd64": {5, 10}, "6.1-rc3": {6, 1}} {
		got, err := parseKernel(s)
		if err != nil || got != want {
			t.Errorf("parseKernel(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "4", "x.8", "4.x", "-1.2"} {
		if _, err := parseKernel(s); err == nil {
			t.Errorf("parseKernel(%q) succeeded", s)
		}
	}
	if !(kernel{4, 8}).atLeast(kernel{4, 8}) || !(kernel{5, 0}).atLeast(kernel{4, 19}) || (kernel{4, 7}).atLeast(kernel{4, 8}) {
		t.Error("atLeast is wrong")
	}
}
