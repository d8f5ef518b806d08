package cgroups

// Device rules without a kernel: the rule lists, the v1 writes, the eBPF
// program's decisions (run by a small interpreter of the instructions the
// generator uses) and --device parsing. The kernel's verifier and its
// enforcement are tested as root in devices_root_test.go.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestDefaultDevicesAreDockers pins the list to docker's, written out by
// hand from runc's AllowedDevices (libcontainer/specconv, runc 1.2.4+).
func TestDefaultDevicesAreDockers(t *testing.T) {
	want := []string{
		"c *:* m allow", "b *:* m allow",
		"c 1:3 rwm allow", "c 1:5 rwm allow", "c 1:7 rwm allow", "c 1:8 rwm allow", "c 1:9 rwm allow",
		"c 5:0 rwm allow", "c 5:1 rwm allow", "c 5:2 rwm allow", "c 136:* rwm allow", "c 10:200 rwm allow",
	}
	var got []string
	for _, r := range DefaultDevices {
		got = append(got, r.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("DefaultDevices:\n%q\nwant\n%q", got, want)
	}
	if err := validateDevices(DefaultDevices); err != nil {
		t.Error(err)
	}
}

// A request is what the kernel asks a device program about.
type request struct {
	typ          DeviceType
	major, minor uint32
	access       string
}

func (q request) String() string {
	return fmt.Sprintf("%c %d:%d %s", q.typ, q.major, q.minor, q.access)
}

// interpret runs p on q as the kernel would, for the instructions the
// generator emits; anything else fails the test.
func interpret(t *testing.T, p *DeviceProgram, q request) uint64 {
	t.Helper()
	typ := uint32(devcgDevChar)
	if q.typ == BlockDevice {
		typ = devcgDevBlock
	}
	ctx := [3]uint32{typ | uint32(accessBits(q.access))<<16, q.major, q.minor}
	var r [11]uint64
	for pc, steps := 0, 0; steps < 4096; pc, steps = pc+1, steps+1 {
		if pc < 0 || pc >= len(p.insns) {
			t.Fatalf("%s: ran off the program at %d", q, pc)
		}
		in := p.insns[pc]
		operand := uint64(int64(in.imm))
		if in.code&bpfX != 0 {
			operand = r[in.src]
		}
		switch {
		case in.code == bpfLDX|bpfMEM|bpfW && in.src == rCtx && in.off%4 == 0 && in.off < 12:
			r[in.dst] = uint64(ctx[in.off/4])
		case in.code == bpfJMP|bpfEXIT:
			return r[0]
		case in.code&0x07 == bpfALU64 && in.code&0xf0 == bpfAND:
			r[in.dst] &= operand
		case in.code&0x07 == bpfALU64 && in.code&0xf0 == bpfRSH:
			r[in.dst] >>= operand
		case in.code&0x07 == bpfALU64 && in.code&0xf0 == bpfMOV:
			r[in.dst] = operand
		case in.code&0x07 == bpfJMP && in.code&0xf0 == bpfJEQ:
			if r[in.dst] == operand {
				pc += int(in.off)
			}
		case in.code&0x07 == bpfJMP && in.code&0xf0 == bpfJNE:
			if r[in.dst] != operand {
				pc += int(in.off)
			}
		default:
			t.Fatalf("%s: instruction %d %v is not one the interpreter knows", q, pc, in)
		}
	}
	t.Fatalf("%s: no exit after 4096 steps", q)
	return 0
}

func rule(typ DeviceType, major, minor int64, access string, allow bool) DeviceRule {
	return DeviceRule{Type: typ, Major: major, Minor: minor, Access: access, Allow: allow}
}

func TestDeviceFilterDecisions(t *testing.T) {
	withoutFull := slices.DeleteFunc(slices.Clone(DefaultDevices), func(r DeviceRule) bool { return r.Major == 1 && r.Minor == 7 })
	for _, tc := range []struct {
		name  string
		rules []DeviceRule
		allow []request
		deny  []request
	}{
		{"docker's defaults", DefaultDevices,
			[]request{{'c', 1, 3, "rw"}, {'c', 1, 3, "rwm"}, {'c', 1, 9, "r"}, {'c', 136, 7, "rw"}, {'c', 5, 2, "rw"},
				{'c', 10, 200, "rw"}, {'c', 1, 11, "m"}, {'b', 7, 0, "m"}, {'c', 10, 232, "m"}},
			[]request{{'c', 1, 11, "w"}, {'b', 7, 0, "r"}, {'b', 7, 0, "rw"}, {'c', 10, 232, "rw"}, {'c', 4, 1, "r"},
				{'c', 1, 11, "rwm"}, {'b', 1, 3, "r"}, {'c', 5, 3, "r"}}},
		{"defaults without /dev/full", withoutFull,
			[]request{{'c', 1, 3, "r"}, {'c', 1, 7, "m"}},
			[]request{{'c', 1, 7, "r"}, {'c', 1, 7, "w"}}},
		{"no rule denies all", []DeviceRule{},
			nil,
			[]request{{'c', 1, 3, "r"}, {'b', 7, 0, "m"}}},
		{"allow all", []DeviceRule{AllowAllDevices},
			[]request{{'c', 1, 3, "r"}, {'b', 7, 0, "rwm"}, {'c', 10, 232, "rw"}},
			nil},
		{"a later deny wins", append(slices.Clone(DefaultDevices), rule('c', 1, 3, "w", false)),
			[]request{{'c', 1, 3, "r"}, {'c', 1, 3, "m"}},
			[]request{{'c', 1, 3, "w"}, {'c', 1, 3, "rw"}}},
		{"a later allow wins", []DeviceRule{rule('c', 1, 3, "rwm", false), rule('c', 1, 3, "r", true)},
			[]request{{'c', 1, 3, "r"}},
			[]request{{'c', 1, 3, "rw"}, {'c', 1, 3, "m"}}},
		{"rules before a deny-all never decide", []DeviceRule{AllowAllDevices, {Type: AnyDevice, Major: Wildcard, Minor: Wildcard, Access: "rwm"}, rule('b', 7, Wildcard, "r", true)},
			[]request{{'b', 7, 3, "r"}},
			[]request{{'b', 7, 3, "w"}, {'c', 1, 3, "r"}}},
		{"an allow grants only all it names", []DeviceRule{rule('c', 1, 3, "r", true), rule('c', 1, 3, "w", true)},
			[]request{{'c', 1, 3, "r"}, {'c', 1, 3, "w"}},
			[]request{{'c', 1, 3, "rw"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := DeviceFilter(tc.rules)
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range tc.allow {
				if got := interpret(t, p, q); got != 1 {
					t.Errorf("%s: %d, want 1 (allow)", q, got)
				}
			}
			for _, q := range tc.deny {
				if got := interpret(t, p, q); got != 0 {
					t.Errorf("%s: %d, want 0 (deny)", q, got)
				}
			}
			if t.Failed() {
				t.Logf("program:\n%s", p)
			}
		})
	}
}

// TestDeviceFilterString: the disassembly a lesson prints, in bpftool's
// syntax, for a short list.
func TestDeviceFilterString(t *testing.T) {
	p, err := DeviceFilter([]DeviceRule{
		rule('c', Wildcard, Wildcard, "m", true),
		rule('c', 1, 3, "rwm", true),
		rule('c', 1, 3, "w", false),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `; c 1:3 w deny
   0: r2 = *(u32 *)(r1 +0)
   1: r2 &= 0xffff
   2: if r2 != 2 goto +11
   3: r3 = *(u32 *)(r1 +0)
   4: r3 >>= 16
   5: r6 = r3
   6: r6 &= 0x4
   7: if r6 == 0 goto +6
   8: r4 = *(u32 *)(r1 +4)
   9: if r4 != 1 goto +4
  10: r5 = *(u32 *)(r1 +8)
  11: if r5 != 3 goto +2
  12: r0 = 0
  13: exit
; c 1:3 rwm allow
  14: r2 = *(u32 *)(r1 +0)
  15: r2 &= 0xffff
  16: if r2 != 2 goto +6
  17: r4 = *(u32 *)(r1 +4)
  18: if r4 != 1 goto +4
  19: r5 = *(u32 *)(r1 +8)
  20: if r5 != 3 goto +2
  21: r0 = 1
  22: exit
; c *:* m allow
  23: r2 = *(u32 *)(r1 +0)
  24: r2 &= 0xffff
  25: if r2 != 2 goto +7
  26: r3 = *(u32 *)(r1 +0)
  27: r3 >>= 16
  28: r6 = r3
  29: r6 &= 0x1
  30: if r6 != r3 goto +2
  31: r0 = 1
  32: exit
; no rule matched: deny
  33: r0 = 0
  34: exit
`
	if got := p.String(); got != want {
		t.Errorf("String():\n%s\nwant:\n%s", got, want)
	}
	if p.Len() != 35 || len(p.bytes()) != 35*8 {
		t.Errorf("Len() = %d, %d bytes; want 35 instructions of 8 bytes", p.Len(), len(p.bytes()))
	}
	// One instruction's bytes, by hand: "if r5 != 3 goto +2" is
	// BPF_JMP|BPF_JNE|BPF_K = 0x55, dst r5, off 2, imm 3.
	if got := p.bytes()[11*8 : 12*8]; !slices.Equal(got, []byte{0x55, 0x05, 0x02, 0x00, 0x03, 0x00, 0x00, 0x00}) {
		t.Errorf("instruction 11 encodes as % x", got)
	}
}

func TestV1DeviceWrites(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules []DeviceRule
		want  []deviceWrite
	}{
		{"defaults", DefaultDevices[:3], []deviceWrite{
			{"devices.deny", "a"}, {"devices.allow", "c *:* m"}, {"devices.allow", "b *:* m"}, {"devices.allow", "c 1:3 rwm"}}},
		{"none", []DeviceRule{}, []deviceWrite{{"devices.deny", "a"}}},
		{"a deny after an allow", []DeviceRule{rule('c', 1, 3, "rwm", true), rule('c', 1, 3, "w", false)}, []deviceWrite{
			{"devices.deny", "a"}, {"devices.allow", "c 1:3 rwm"}, {"devices.deny", "c 1:3 w"}}},
		{"privileged", []DeviceRule{AllowAllDevices}, []deviceWrite{{"devices.allow", "a"}}},
		{"allow all but loop devices", []DeviceRule{rule('c', 1, 3, "r", true), AllowAllDevices, rule('b', 7, Wildcard, "rwm", false)}, []deviceWrite{
			{"devices.allow", "a"}, {"devices.deny", "b 7:* rwm"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := v1DeviceWrites(tc.rules); !slices.Equal(got, tc.want) {
				t.Errorf("writes %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDeviceRulesValidate(t *testing.T) {
	for _, r := range []DeviceRule{
		{Type: 'x', Major: 1, Minor: 3, Access: "r"},
		{Type: CharDevice, Major: 1, Minor: 3, Access: ""},
		{Type: CharDevice, Major: 1, Minor: 3, Access: "rx"},
		{Type: CharDevice, Major: 1, Minor: 3, Access: "rr"},
		{Type: CharDevice, Major: -2, Minor: 3, Access: "r"},
		{Type: CharDevice, Major: 1, Minor: 1 << 20, Access: "r"},
		{Type: AnyDevice, Major: 1, Minor: Wildcard, Access: "rwm", Allow: true},
		{Type: AnyDevice, Major: Wildcard, Minor: Wildcard, Access: "m", Allow: true},
	} {
		err := (Resources{Devices: []DeviceRule{r}}).validate()
		if !errors.Is(err, ErrInvalidResources) {
			t.Errorf("%+v: %v, want ErrInvalidResources", r, err)
		}
		if _, err := DeviceFilter([]DeviceRule{r}); !errors.Is(err, ErrInvalidResources) {
			t.Errorf("DeviceFilter(%+v): %v, want ErrInvalidResources", r, err)
		}
	}
}

func TestParseDevice(t *testing.T) {
	mustStat(t, "/dev/null")
	for _, tc := range []struct {
		value, path, access string
	}{
		{"/dev/null", "/dev/null", "rwm"},
		{"/dev/null:/dev/mynull", "/dev/mynull", "rwm"},
		{"/dev/null:/dev/mynull:r", "/dev/mynull", "r"},
		{"/dev/null:rw", "/dev/null", "rw"},
	} {
		n, err := ParseDevice(tc.value)
		if err != nil {
			t.Errorf("%s: %v", tc.value, err)
			continue
		}
		want := DeviceNode{HostPath: "/dev/null", Path: tc.path, Type: CharDevice, Major: 1, Minor: 3, Mode: 0o666, Access: tc.access}
		if n != want {
			t.Errorf("%s: %+v\nwant %+v", tc.value, n, want)
		}
		if got := n.Rule().String(); got != "c 1:3 "+tc.access+" allow" {
			t.Errorf("%s: rule %s", tc.value, got)
		}
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		value string
		is    error  // nil: any error, checked by text
		text  string // in the one-line message
	}{
		{filepath.Join(dir, "missing"), fs.ErrNotExist, "missing"},
		{file, ErrNotDevice, "not a device node"},
		{dir, ErrNotDevice, "not a device node"},
		{"/dev/null:/dev/x:rwx", nil, `access "rwx"`},
		{"dev/null", nil, "absolute"},
		{"/dev/null:dev/x", nil, "absolute"},
		{"/dev/null:/dev/x:r:w", nil, "HOST[:CONTAINER][:rwm]"},
		{"", nil, "absolute"},
	} {
		_, err := ParseDevice(tc.value)
		switch {
		case err == nil:
			t.Errorf("%q: no error", tc.value)
		case tc.is != nil && !errors.Is(err, tc.is):
			t.Errorf("%q: %v, want %v", tc.value, err, tc.is)
		case !strings.Contains(err.Error(), tc.text) || strings.Contains(err.Error(), "\n"):
			t.Errorf("%q: %q, want one line naming %q", tc.value, err, tc.text)
		}
	}
}

func mustStat(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&fs.ModeCharDevice == 0 {
		t.Skipf("needs the host's %s: %v", path, err)
	}
}
