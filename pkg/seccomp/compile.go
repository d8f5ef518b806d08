package seccomp

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Compile turns the profile into a BPF program for a container whose
// init holds caps (["CAP_CHOWN", ...]; docker's 14 by default) on the
// running kernel, for arch (Native) and the sub-ABIs the profile names
// for it.
//
// The program is a checklist the kernel runs on every syscall:
//
//  1. Which ABI made the call (seccomp_data.arch)? One the profile does
//     not name gets the default action: on x86_64 that is the only thing
//     that stops a 32-bit `int 0x80` from using other numbers.
//  2. On x86_64, is the number an x32 one (bit 30 set)? Then the x32
//     rules decide, or the default action when x32 is not named.
//     Then, unless the default action allows: is the number above every
//     one the profile names? ENOSYS, as runc answers for a syscall newer
//     than the profile, so that a libc falls back to an older one.
//  3. The syscalls whose rules compare arguments, one block each: every
//     rule in profile order, the first whose comparisons all hold decides.
//  4. The syscalls with one plain rule, grouped by action: checks that
//     all jump to one "ret", "jeq #nr" for a lone number and "jge #lo"
//     then "jgt #hi" for a range of consecutive ones (read to getuid is
//     0 to 102 on x86_64). The kernel's cost to load a filter grows with
//     its length; ranges take docker's allow-list from about 1,100
//     instructions to under 400.
//  5. Anything else: the default action.
//
// Rules are read in profile order and the first that matches decides, so
// a rule that returns the default action still matters when it comes
// before another for the same syscall (default.json uses one to close a
// hole in docker's socket rule). runc drops such rules, because libseccomp
// cannot hold them; docker's own profile has none, so it means the same
// here and there.
//
// Rules are resolved before compiling, as docker does: a rule whose
// includes the container does not meet (a capability it lacks, another
// architecture, an older kernel) or whose excludes it meets is left out.
// That is how docker's profile lets clone create namespaces only with
// CAP_SYS_ADMIN: one rule allows clone outright but includes CAP_SYS_ADMIN,
// the other excludes CAP_SYS_ADMIN and allows clone only when
// (flags & CLONE_NEW*) == 0.
func (p *Profile) Compile(arch Arch, caps []string) (*Filter, error) {
	k, err := runningKernel()
	if err != nil {
		return nil, err
	}
	return p.compile(arch, caps, k)
}

var runningKernel = sync.OnceValues(func() (kernel, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return kernel{}, os.NewSyscallError("uname", err)
	}
	return parseKernel(unix.ByteSliceToString(u.Release[:]))
})

// A rule is one profile rule for one syscall number, ready to compile.
type rule struct {
	ret  uint32 // the SECCOMP_RET_* value
	args []Arg  // all must hold; none means always
}

func (p *Profile) compile(arch Arch, caps []string, k kernel) (*Filter, error) {
	if arch == "" {
		return nil, errors.New("seccomp: no syscall table for this architecture")
	}
	if _, ok := abis[arch]; !ok || arch == ArchX32 {
		return nil, fmt.Errorf("seccomp: cannot compile for %s", arch)
	}
	held := map[string]bool{}
	for _, c := range caps {
		held[capName(c)] = true
	}
	var active []Syscall
	for _, s := range p.Syscalls {
		if s.appliesTo(arch, held, k) {
			active = append(active, s)
		}
	}
	deflt := ret(p.DefaultAction, p.DefaultErrnoRet)
	sections := p.arches(arch)
	rules := resolve(active)

	a := newAssembler()
	entry := map[Arch]label{}
	for _, s := range sections {
		entry[s] = a.newLabel()
	}
	// 1. Which ABI?
	a.ld(offArch)
	for _, s := range sections {
		if s == ArchX32 {
			continue // x32 calls come as x86_64 ones, see step 2
		}
		other := a.newLabel()
		a.jump(opJeq, abis[s].audit, next, other, archLabel(s))
		a.ja(entry[s], "")
		a.place(other)
	}
	a.ret(deflt, "an ABI the profile does not name")
	for _, s := range sections {
		if s == ArchX32 {
			continue
		}
		a.place(entry[s])
		a.ld(offNr)
		if s == ArchX86_64 {
			// 2. An x32 number?
			native := a.newLabel()
			if slices.Contains(sections, ArchX32) {
				a.jump(opJge, x32Bit, next, native, "x32 numbers")
				a.ja(entry[ArchX32], "")
			} else {
				a.jump(opJge, x32Bit, next, native, "x32 numbers, not in the profile")
				a.ret(deflt, "")
			}
			a.place(native)
		}
		a.syscalls(rules.forABI(abis[s]), s, deflt)
	}
	if slices.Contains(sections, ArchX32) {
		a.place(entry[ArchX32])
		a.syscalls(rules.forABI(abis[ArchX32]), ArchX32, deflt)
	}
	return a.assemble()
}

func archLabel(s Arch) string {
	return strings.ToLower(strings.TrimPrefix(string(s), "SCMP_ARCH_"))
}

// arches lists the ABIs the filter checks, main first. The kernel always
// checks the main one; of the others, only those a kernel of main can run
// matter (an x86_64 kernel never sees an arm64 syscall).
func (p *Profile) arches(main Arch) []Arch {
	var named []Arch
	if len(p.ArchMap) > 0 {
		for _, m := range p.ArchMap {
			if m.Architecture == main {
				named = m.SubArchitectures
			}
		}
	} else {
		named = p.Architectures
	}
	out := []Arch{main}
	for _, sub := range abis[main].subs {
		if slices.Contains(named, sub) {
			out = append(out, sub)
		}
	}
	return out
}

// appliesTo resolves includes and excludes for a container on arch with
// the held capabilities and kernel k.
func (s *Syscall) appliesTo(arch Arch, held map[string]bool, k kernel) bool {
	in, ex := s.Includes, s.Excludes
	for _, c := range in.Caps {
		if !held[capName(c)] {
			return false
		}
	}
	if len(in.Arches) > 0 && !archIn(arch, in.Arches) {
		return false
	}
	if in.MinKernel != "" {
		if min, _ := parseKernel(in.MinKernel); !k.atLeast(min) {
			return false
		}
	}
	for _, c := range ex.Caps {
		if held[capName(c)] {
			return false
		}
	}
	if len(ex.Arches) > 0 && archIn(arch, ex.Arches) {
		return false
	}
	if ex.MinKernel != "" {
		if min, _ := parseKernel(ex.MinKernel); k.atLeast(min) {
			return false
		}
	}
	return true
}

func archIn(arch Arch, names []string) bool {
	for _, n := range abis[arch].names {
		if slices.Contains(names, n) {
			return true
		}
	}
	return false
}

// capName spells a capability as "CAP_SYS_ADMIN", however it came.
func capName(c string) string {
	c = strings.ToUpper(c)
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	return c
}

// ret is the SECCOMP_RET_* value of an action.
func ret(a Action, errnoRet *uint) uint32 {
	k := actionBase[a]
	if a == ActErrno || a == ActTrace {
		data := uint32(unix.EPERM)
		if errnoRet != nil {
			data = uint32(*errnoRet)
		}
		k |= data
	}
	return k
}

// resolved are the rules that apply, in profile order, each with its
// SECCOMP_RET_* value and its comparisons split into alternatives.
type resolved []struct {
	names []string
	rules []rule
}

func resolve(active []Syscall) resolved {
	out := make(resolved, len(active))
	for i, s := range active {
		out[i].names = s.Names
		if s.Name != "" {
			out[i].names = []string{s.Name}
		}
		k := ret(s.Action, s.ErrnoRet)
		for _, args := range splitArgs(s.Args) {
			out[i].rules = append(out[i].rules, rule{k, args})
		}
	}
	return out
}

// maxNumber is above every syscall number of the x86 ABIs, once x32Bit is
// masked off: tables indexed by number are slices of this length.
const maxNumber = 1024

// A syscallRules is what one syscall number compiles from.
type syscallRules struct {
	nr    uint32
	name  string
	rules []rule
}

// forABI gathers, per syscall number of one ABI, its rules in profile
// order. Names the ABI does not have are skipped (docker's profile names
// syscalls of every architecture), and nothing after a rule without
// comparisons can ever be reached.
func (rs resolved) forABI(abi abi) []syscallRules {
	index := make([]int, maxNumber) // number -> 1 + index in out, 0 for none yet
	out := make([]syscallRules, 0, len(abi.syscalls))
	for _, r := range rs {
		for _, name := range r.names {
			nr, ok := abi.syscalls.lookup(name)
			if !ok {
				continue
			}
			i := index[nr&^x32Bit] - 1
			if i < 0 {
				i = len(out)
				index[nr&^x32Bit] = i + 1
				out = append(out, syscallRules{nr: nr, name: name})
			}
			if have := out[i].rules; len(have) > 0 && len(have[len(have)-1].args) == 0 {
				continue // already decided
			}
			if out[i].rules == nil {
				out[i].rules = r.rules[:len(r.rules):len(r.rules)] // shared until appended to
			} else {
				out[i].rules = append(out[i].rules, r.rules...)
			}
		}
	}
	sorted := make([]syscallRules, 0, len(out))
	for _, nr := range abi.numbers() {
		if i := index[nr&^x32Bit] - 1; i >= 0 && out[i].nr == nr {
			sorted = append(sorted, out[i])
			index[nr&^x32Bit] = 0 // once, should two names share a number
		}
	}
	return sorted
}

// splitArgs: the comparisons of a rule must all hold, except that several
// on the same argument (which could then never all hold for EQ) mean any
// one of them, each a rule of its own. runc and docker read profiles that
// way, so the same file means the same thing here.
func splitArgs(args []Arg) [][]Arg {
	seen := map[uint]bool{}
	for _, arg := range args {
		if seen[arg.Index] {
			out := make([][]Arg, len(args))
			for i := range args {
				out[i] = args[i : i+1]
			}
			return out
		}
		seen[arg.Index] = true
	}
	return [][]Arg{args}
}

// maxChunk bounds a chunk of range checks that all jump to one "ret": a
// conditional jump goes at most 255 instructions.
const maxChunk = 250

// A span is a range of syscall numbers, lo to hi, that get one action.
type span struct {
	lo, hi         uint32
	loName, hiName string
}

// syscalls emits steps 3 to 5 for one ABI. The accumulator holds the
// syscall number throughout: argument checks load into it only within a
// block that ends in a ret.
func (a *assembler) syscalls(all []syscallRules, arch Arch, deflt uint32) {
	// 2b. A number above every one the profile names is a syscall newer
	// than the profile: ENOSYS, as runc answers, makes a libc fall back to
	// the older call it replaces, where EPERM would fail the program.
	if len(all) > 0 && deflt != actionBase[ActAllow] && deflt != actionBase[ActLog] {
		newest := all[len(all)-1]
		known := a.newLabel()
		a.jump(opJgt, newest.nr, next, known, "newer than "+newest.name)
		a.ret(actionBase[ActErrno]|uint32(unix.ENOSYS), "")
		a.place(known)
	}
	// 3. Syscalls with comparisons.
	decided := make([]bool, maxNumber) // numbers that never get past what is emitted so far
	plain := map[uint32][]*syscallRules{}
	var rets []uint32
	for i := range all {
		s := &all[i]
		if len(s.rules) == 1 && len(s.rules[0].args) == 0 {
			k := s.rules[0].ret
			if k == deflt {
				continue // the end of the program returns it anyway
			}
			if _, ok := plain[k]; !ok {
				rets = append(rets, k)
			}
			plain[k] = append(plain[k], s) // in order of number, as all is
			continue
		}
		end := a.newLabel()
		a.jump(opJeq, s.nr, next, end, s.name)
		for _, r := range s.rules {
			fail := a.newLabel()
			for _, arg := range r.args {
				a.compare(arg, fail)
			}
			a.ret(r.ret, "")
			if len(r.args) == 0 {
				break
			}
			a.place(fail)
		}
		if last := s.rules[len(s.rules)-1]; len(last.args) > 0 {
			a.ret(deflt, "no rule matched")
		}
		a.place(end)
		decided[s.nr&^x32Bit] = true
	}
	// 4. Plain syscalls, by action: numbers in a row become one range.
	slices.Sort(rets)
	for _, k := range rets {
		spans := spans(plain[k], decided, abis[arch].numbers())
		for len(spans) > 0 {
			chunk, cost := 0, 0
			for chunk < len(spans) && cost < maxChunk {
				cost += 2
				if spans[chunk].lo == spans[chunk].hi {
					cost--
				}
				chunk++
			}
			// Each check jumps to the ret when it matches; the last one
			// is turned around, to fall into the ret and jump past it.
			match, skip := a.newLabel(), a.newLabel()
			for i, sp := range spans[:chunk] {
				last := i == chunk-1
				switch {
				case sp.lo == sp.hi && last:
					a.jump(opJeq, sp.lo, next, skip, sp.loName)
				case sp.lo == sp.hi:
					a.jump(opJeq, sp.lo, match, next, sp.loName)
				case last:
					a.jump(opJge, sp.lo, next, skip, sp.loName+" to "+sp.hiName)
					a.jump(opJgt, sp.hi, skip, next, "")
				default:
					past := a.newLabel()
					a.jump(opJge, sp.lo, next, past, sp.loName+" to "+sp.hiName)
					a.jump(opJgt, sp.hi, next, match, "")
					a.place(past)
				}
			}
			a.place(match)
			a.ret(k, "")
			a.place(skip)
			spans = spans[chunk:]
		}
		for _, s := range plain[k] {
			decided[s.nr&^x32Bit] = true
		}
	}
	// 5. The rest.
	a.ret(deflt, archLabel(arch)+": any other syscall")
}

// spans turns syscalls into ranges of consecutive numbers. A range may
// run through numbers decided before it (they never reach it) but never
// through a number the kernel does not have yet, nor one the profile
// refuses.
func spans(these []*syscallRules, decided []bool, numbers []uint32) []span {
	var out []span
	j := 0 // these and numbers are both in order: walk them together
	for i := 0; i < len(numbers) && j < len(these); i++ {
		if numbers[i] != these[j].nr {
			continue
		}
		sp := span{these[j].nr, these[j].nr, these[j].name, these[j].name}
		j++
		for i+1 < len(numbers) && numbers[i+1] == numbers[i]+1 {
			n := numbers[i+1]
			if j < len(these) && these[j].nr == n {
				sp.hi, sp.hiName = n, these[j].name
				j++
			} else if !decided[n&^x32Bit] {
				break
			}
			i++
		}
		out = append(out, sp)
	}
	return out
}

// compare emits the check of one comparison: it falls through to the next
// instruction when the comparison holds and jumps to fail when it does
// not. Each 64-bit comparison reads the high half first: only when the
// high halves are equal does the low half decide.
func (a *assembler) compare(arg Arg, fail label) {
	hi, lo := uint32(arg.Value>>32), uint32(arg.Value)
	note := fmt.Sprintf("args[%d] %s %#x", arg.Index, opSymbol[arg.Op], arg.Value)
	ok := a.newLabel()
	switch arg.Op {
	case OpEqual: // hi == vhi && lo == vlo
		a.ld(argHigh(arg.Index))
		a.jump(opJeq, hi, next, fail, note)
		a.ld(argLow(arg.Index))
		a.jump(opJeq, lo, next, fail, "")
	case OpNotEqual: // hi != vhi || lo != vlo
		a.ld(argHigh(arg.Index))
		a.jump(opJeq, hi, next, ok, note)
		a.ld(argLow(arg.Index))
		a.jump(opJeq, lo, fail, next, "")
	case OpGreater, OpGreaterEqual: // hi > vhi || hi == vhi && lo >(=) vlo
		a.ld(argHigh(arg.Index))
		a.jump(opJgt, hi, ok, next, note)
		a.jump(opJeq, hi, next, fail, "")
		a.ld(argLow(arg.Index))
		a.jump(map[Operator]uint16{OpGreater: opJgt, OpGreaterEqual: opJge}[arg.Op], lo, next, fail, "")
	case OpLess, OpLessEqual: // not (>=) and not (>)
		a.ld(argHigh(arg.Index))
		a.jump(opJgt, hi, fail, next, note)
		a.jump(opJeq, hi, next, ok, "")
		a.ld(argLow(arg.Index))
		a.jump(map[Operator]uint16{OpLess: opJge, OpLessEqual: opJgt}[arg.Op], lo, fail, next, "")
	case OpMaskedEqual: // (arg & value) == valueTwo, half by half
		note = fmt.Sprintf("args[%d] & %#x == %#x", arg.Index, arg.Value, arg.ValueTwo)
		a.ld(argHigh(arg.Index))
		a.and(hi)
		a.jump(opJeq, uint32(arg.ValueTwo>>32), next, fail, note)
		a.ld(argLow(arg.Index))
		a.and(lo)
		a.jump(opJeq, uint32(arg.ValueTwo), next, fail, "")
	}
	a.place(ok)
}

var opSymbol = map[Operator]string{
	OpNotEqual: "!=", OpLess: "<", OpLessEqual: "<=", OpEqual: "==",
	OpGreaterEqual: ">=", OpGreater: ">", OpMaskedEqual: "&",
}
