package seccomp

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// A Profile is a seccomp policy in docker's JSON format (the file that
// `docker run --security-opt seccomp=PROFILE.json` reads), loaded unchanged.
// It says nothing about BPF: Compile turns it into a Filter for one
// architecture and one capability set.
type Profile struct {
	DefaultAction   Action    `json:"defaultAction"`
	DefaultErrnoRet *uint     `json:"defaultErrnoRet,omitempty"` // for an ERRNO or TRACE default; EPERM when absent
	Architectures   []Arch    `json:"architectures,omitempty"`   // the old form: every ABI the filter checks
	ArchMap         []ArchMap `json:"archMap,omitempty"`         // the new form: per native ABI, its sub-ABIs
	Syscalls        []Syscall `json:"syscalls,omitempty"`
}

// An ArchMap lists the ABIs a kernel of Architecture also runs.
type ArchMap struct {
	Architecture     Arch   `json:"architecture"`
	SubArchitectures []Arch `json:"subArchitectures"`
}

// A Syscall is one rule: the named syscalls get Action when every one of
// Args holds. Includes and Excludes decide, before compiling, whether the
// rule applies to this container at all.
type Syscall struct {
	Name     string   `json:"name,omitempty"` // the old form of a single name
	Names    []string `json:"names,omitempty"`
	Action   Action   `json:"action"`
	ErrnoRet *uint    `json:"errnoRet,omitempty"` // for ERRNO (the errno) or TRACE (the tracer's message); EPERM when absent
	Args     []Arg    `json:"args,omitempty"`
	Comment  string   `json:"comment,omitempty"`
	Includes Scope    `json:"includes"`
	Excludes Scope    `json:"excludes"`
}

// A Scope says when a rule applies. In Includes every listed capability
// must be held, the architecture must be one of Arches, and the kernel at
// least MinKernel; in Excludes any one of them drops the rule.
type Scope struct {
	Caps      []string `json:"caps,omitempty"`
	Arches    []string `json:"arches,omitempty"`    // docker's short names: "amd64", "x86", "x32", "arm64", ...
	MinKernel string   `json:"minKernel,omitempty"` // "4.8"
}

// An Arg compares one syscall argument, as a 64-bit unsigned number, with
// Value: arg OP Value, or (arg & Value) == ValueTwo for SCMP_CMP_MASKED_EQ.
type Arg struct {
	Index    uint     `json:"index"`
	Value    uint64   `json:"value"`
	ValueTwo uint64   `json:"valueTwo,omitempty"`
	Op       Operator `json:"op"`
}

// An Action is what the kernel does with a syscall, named as libseccomp
// names it.
type Action string

// The actions, as seccomp(2) lists them under SECCOMP_RET_*.
const (
	ActAllow       Action = "SCMP_ACT_ALLOW"        // run the syscall
	ActErrno       Action = "SCMP_ACT_ERRNO"        // fail it with errnoRet, without running it
	ActKill        Action = "SCMP_ACT_KILL"         // kill the thread (the old name of KILL_THREAD)
	ActKillThread  Action = "SCMP_ACT_KILL_THREAD"  // kill the thread with SIGSYS
	ActKillProcess Action = "SCMP_ACT_KILL_PROCESS" // kill the whole process (Linux 4.14)
	ActTrap        Action = "SCMP_ACT_TRAP"         // send SIGSYS to the thread
	ActTrace       Action = "SCMP_ACT_TRACE"        // stop for a ptrace(2) tracer, or fail with ENOSYS
	ActLog         Action = "SCMP_ACT_LOG"          // run it and log it (Linux 4.14)
)

// actionBase is each action's SECCOMP_RET_* value; ERRNO and TRACE add a
// 16-bit datum.
var actionBase = map[Action]uint32{
	ActAllow:       0x7fff0000, // SECCOMP_RET_ALLOW
	ActLog:         0x7ffc0000, // SECCOMP_RET_LOG
	ActTrace:       0x7ff00000, // SECCOMP_RET_TRACE
	ActErrno:       0x00050000, // SECCOMP_RET_ERRNO
	ActTrap:        0x00030000, // SECCOMP_RET_TRAP
	ActKill:        0x00000000, // SECCOMP_RET_KILL_THREAD
	ActKillThread:  0x00000000,
	ActKillProcess: 0x80000000, // SECCOMP_RET_KILL_PROCESS
}

// An Operator compares a syscall argument with a rule's values.
type Operator string

// The operators of libseccomp's scmp_compare.
const (
	OpNotEqual     Operator = "SCMP_CMP_NE"
	OpLess         Operator = "SCMP_CMP_LT"
	OpLessEqual    Operator = "SCMP_CMP_LE"
	OpEqual        Operator = "SCMP_CMP_EQ"
	OpGreaterEqual Operator = "SCMP_CMP_GE"
	OpGreater      Operator = "SCMP_CMP_GT"
	OpMaskedEqual  Operator = "SCMP_CMP_MASKED_EQ"
)

var operators = map[Operator]bool{
	OpNotEqual: true, OpLess: true, OpLessEqual: true, OpEqual: true,
	OpGreaterEqual: true, OpGreater: true, OpMaskedEqual: true,
}

// maxArgs: a syscall has at most six arguments (seccomp_data.args[6]).
const maxArgs = 6

//go:embed default.json
var defaultJSON []byte

// Default returns minictr's default profile: the effect of docker's, in
// docker's format (default.json beside this file).
func Default() (*Profile, error) {
	p, err := Parse(defaultJSON)
	if err != nil {
		return nil, fmt.Errorf("default profile: %w", err)
	}
	return p, nil
}

// Load reads and checks a profile file.
func Load(path string) (*Profile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// Parse reads a profile and checks it, so that a bad one fails here, with
// the field that is wrong, rather than in the container's init. Fields it
// does not know (docker's "comment"s, "listenerPath") are ignored, as
// docker does; syscall names it does not know are skipped when compiling,
// as libseccomp-based runtimes do, so a profile written for a newer kernel
// still loads.
func Parse(data []byte) (*Profile, error) {
	var p Profile
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, jsonError(data, err)
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	return &p, nil
}

// jsonError says where the JSON went wrong in one line.
func jsonError(data []byte, err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		line := 1 + strings.Count(string(data[:syntax.Offset]), "\n")
		return fmt.Errorf("seccomp profile: invalid JSON on line %d: %w", line, err)
	case errors.As(err, &typ):
		return fmt.Errorf("seccomp profile: field %q: a JSON %s cannot be a %s", typ.Field, typ.Value, typ.Type)
	}
	return fmt.Errorf("seccomp profile: %w", err)
}

// check validates what JSON types cannot.
func (p *Profile) check() error {
	if p.DefaultAction == "" {
		return errors.New(`seccomp profile: field "defaultAction": missing`)
	}
	if err := checkAction("defaultAction", p.DefaultAction, p.DefaultErrnoRet); err != nil {
		return err
	}
	if len(p.Architectures) > 0 && len(p.ArchMap) > 0 {
		return errors.New(`seccomp profile: use either "architectures" or "archMap", not both`)
	}
	for i, a := range p.Architectures {
		if !knownArches[a] {
			return fmt.Errorf("seccomp profile: field \"architectures[%d]\": unknown architecture %q", i, a)
		}
	}
	for i, m := range p.ArchMap {
		if !knownArches[m.Architecture] {
			return fmt.Errorf("seccomp profile: field \"archMap[%d].architecture\": unknown architecture %q", i, m.Architecture)
		}
		for j, a := range m.SubArchitectures {
			if !knownArches[a] {
				return fmt.Errorf("seccomp profile: field \"archMap[%d].subArchitectures[%d]\": unknown architecture %q", i, j, a)
			}
		}
	}
	for i, s := range p.Syscalls {
		if err := s.check(fmt.Sprintf("syscalls[%d]", i)); err != nil {
			return err
		}
	}
	return nil
}

func (s *Syscall) check(field string) error {
	if s.Name != "" && len(s.Names) > 0 {
		return fmt.Errorf("seccomp profile: field %q: use either \"name\" or \"names\", not both", field)
	}
	if err := checkAction(field+".action", s.Action, s.ErrnoRet); err != nil {
		return err
	}
	if len(s.Args) > maxArgs {
		return fmt.Errorf("seccomp profile: field \"%s.args\": %d comparisons, at most %d", field, len(s.Args), maxArgs)
	}
	for j, a := range s.Args {
		if a.Index >= maxArgs {
			return fmt.Errorf("seccomp profile: field \"%s.args[%d].index\": %d is not an argument (0 to %d)", field, j, a.Index, maxArgs-1)
		}
		if !operators[a.Op] {
			return fmt.Errorf("seccomp profile: field \"%s.args[%d].op\": unknown operator %q", field, j, a.Op)
		}
	}
	for _, scope := range []struct {
		name string
		Scope
	}{{"includes", s.Includes}, {"excludes", s.Excludes}} {
		if scope.MinKernel == "" {
			continue
		}
		if _, err := parseKernel(scope.MinKernel); err != nil {
			return fmt.Errorf("seccomp profile: field \"%s.%s.minKernel\": %w", field, scope.name, err)
		}
	}
	return nil
}

func checkAction(field string, a Action, errnoRet *uint) error {
	if a == "SCMP_ACT_NOTIFY" {
		return fmt.Errorf("seccomp profile: field %q: %s is not supported (it needs a listener process)", field, a)
	}
	if _, ok := actionBase[a]; !ok {
		return fmt.Errorf("seccomp profile: field %q: unknown action %q", field, a)
	}
	if errnoRet == nil {
		return nil
	}
	if a != ActErrno && a != ActTrace {
		return fmt.Errorf("seccomp profile: field %q: %s takes no errnoRet", field, a)
	}
	if *errnoRet > 0xffff {
		return fmt.Errorf("seccomp profile: field %q: errnoRet %d does not fit in 16 bits", field, *errnoRet)
	}
	return nil
}

// A kernel is a kernel version as major, minor.
type kernel [2]int

// parseKernel reads "4.8", or the start of a release such as "6.1.0-13-amd64".
func parseKernel(s string) (kernel, error) {
	fields := strings.SplitN(s, ".", 3)
	if len(fields) < 2 {
		return kernel{}, fmt.Errorf("kernel version %q is not MAJOR.MINOR", s)
	}
	var k kernel
	for i := range k {
		digits := fields[i]
		if i == 1 { // "18-rc1" or "18+" in a release string
			digits = digits[:len(digits)-len(strings.TrimLeft(digits, "0123456789"))]
		}
		n, err := strconv.Atoi(digits)
		if err != nil || n < 0 {
			return kernel{}, fmt.Errorf("kernel version %q is not MAJOR.MINOR", s)
		}
		k[i] = n
	}
	return k, nil
}

func (k kernel) atLeast(o kernel) bool {
	return k[0] > o[0] || k[0] == o[0] && k[1] >= o[1]
}
