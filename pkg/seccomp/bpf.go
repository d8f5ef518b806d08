package seccomp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// A seccomp filter is a classic BPF program (the packet filter language of
// tcpdump) that the kernel runs on every syscall. Its input is not a packet
// but struct seccomp_data (linux/seccomp.h), read with "ld [offset]":
//
//	offset 0   int   nr;                  the syscall number
//	offset 4   u32   arch;                AUDIT_ARCH_*: which ABI made the call
//	offset 8   u64   instruction_pointer;
//	offset 16  u64   args[6];             8 bytes each, low half first (x86 is little-endian)
//
// Its result, from "ret", is a SECCOMP_RET_* action. Classic BPF has one
// 32-bit register (A), so a 64-bit argument is compared half by half, and
// its jumps only go forward: a conditional one at most 255 instructions
// ("jeq #k, jt, jf" skips jt instructions when A == k, jf otherwise), "ja"
// any distance.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

func argLow(i uint) uint32  { return offArgs + 8*uint32(i) }
func argHigh(i uint) uint32 { return argLow(i) + 4 }

// The instructions the compiler uses.
const (
	opLd  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS  // A = seccomp_data[k]
	opAnd = unix.BPF_ALU | unix.BPF_AND | unix.BPF_K // A &= k
	opJa  = unix.BPF_JMP | unix.BPF_JA               // skip k instructions
	opJeq = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K // A == k ? skip jt : skip jf
	opJgt = unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K // A >  k, unsigned
	opJge = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K // A >= k, unsigned
	opRet = unix.BPF_RET | unix.BPF_K                // return k
)

// maxInstructions is BPF_MAXINSNS: the kernel refuses longer programs.
const maxInstructions = 4096

// A Filter is a compiled profile: the program Install hands to the kernel.
type Filter struct {
	Program []unix.SockFilter
	notes   []string // what each instruction is for, for String
}

// String prints the program one instruction per line, with what the
// compiler meant by each:
//
//	0: ld [4]                       ; arch
//	1: jeq #0xc000003e, 0, 1        ; x86_64
func (f *Filter) String() string { return disassemble(f.Program, f.notes) }

// Disassemble prints any seccomp program one instruction per line, in the
// syntax of the kernel's bpf_asm; jump offsets are relative, as the kernel
// stores them, and each line starts with its index so they can be followed.
func Disassemble(prog []unix.SockFilter) string { return disassemble(prog, nil) }

func disassemble(prog []unix.SockFilter, notes []string) string {
	var b strings.Builder
	for i, in := range prog {
		var comment []string
		if c := autoComment(in); c != "" {
			comment = append(comment, c)
		}
		if i < len(notes) && notes[i] != "" {
			comment = append(comment, notes[i])
		}
		line := fmt.Sprintf("%4d: %s", i, instruction(in))
		if len(comment) > 0 {
			line = fmt.Sprintf("%-36s ; %s", line, strings.Join(comment, ": "))
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

func instruction(in unix.SockFilter) string {
	switch in.Code {
	case opLd:
		return fmt.Sprintf("ld [%d]", in.K)
	case opAnd:
		return fmt.Sprintf("and #%#x", in.K)
	case opJa:
		return fmt.Sprintf("ja %d", in.K)
	case opJeq:
		return fmt.Sprintf("jeq #%#x, %d, %d", in.K, in.Jt, in.Jf)
	case opJgt:
		return fmt.Sprintf("jgt #%#x, %d, %d", in.K, in.Jt, in.Jf)
	case opJge:
		return fmt.Sprintf("jge #%#x, %d, %d", in.K, in.Jt, in.Jf)
	case opRet:
		return fmt.Sprintf("ret #%#x", in.K)
	}
	return fmt.Sprintf(".insn code=%#x jt=%d jf=%d k=%#x", in.Code, in.Jt, in.Jf, in.K)
}

// autoComment names the field a load reads and the action a ret returns.
func autoComment(in unix.SockFilter) string {
	switch in.Code {
	case opLd:
		switch {
		case in.K == offNr:
			return "nr"
		case in.K == offArch:
			return "arch"
		case in.K >= offArgs && in.K < offArgs+8*maxArgs:
			half := "low"
			if (in.K-offArgs)%8 == 4 {
				half = "high"
			}
			return fmt.Sprintf("args[%d] %s", (in.K-offArgs)/8, half)
		}
	case opRet:
		return actionName(in.K)
	}
	return ""
}

// actionName spells a SECCOMP_RET_* value.
func actionName(k uint32) string {
	data := k & 0xffff
	switch k &^ 0xffff {
	case 0x7fff0000:
		return "ALLOW"
	case 0x7ffc0000:
		return "LOG"
	case 0x7ff00000:
		return fmt.Sprintf("TRACE(%d)", data)
	case 0x00050000:
		return fmt.Sprintf("ERRNO(%s)", unix.ErrnoName(unix.Errno(data)))
	case 0x00030000:
		return "TRAP"
	case 0x00000000:
		return "KILL_THREAD"
	case 0x80000000:
		return "KILL_PROCESS"
	}
	return ""
}

// An assembler collects instructions whose jumps name labels, then turns
// the labels into the relative offsets the kernel wants. The compiler can
// then say "jump to the end of this rule" without counting.
type assembler struct {
	insns   []unix.SockFilter
	notes   []string
	targets [][2]label // per instruction: where jt and jf go (next: the next one)
	at      []int      // label -> index of the instruction it names, -1 until placed
}

// A label names an instruction before it is emitted.
type label int

// next is the label of the instruction that follows: a jump of 0.
const next label = -1

func newAssembler() *assembler {
	return &assembler{
		insns:   make([]unix.SockFilter, 0, 1024),
		notes:   make([]string, 0, 1024),
		targets: make([][2]label, 0, 1024),
	}
}

// newLabel returns a label to place later.
func (a *assembler) newLabel() label {
	a.at = append(a.at, -1)
	return label(len(a.at) - 1)
}

// place makes l name the next instruction emitted.
func (a *assembler) place(l label) { a.at[l] = len(a.insns) }

func (a *assembler) emit(code uint16, k uint32, jt, jf label, note string) {
	a.insns = append(a.insns, unix.SockFilter{Code: code, K: k})
	a.targets = append(a.targets, [2]label{jt, jf})
	a.notes = append(a.notes, note)
}

func (a *assembler) ld(offset uint32)          { a.emit(opLd, offset, next, next, "") }
func (a *assembler) and(k uint32)              { a.emit(opAnd, k, next, next, "") }
func (a *assembler) ja(to label, note string)  { a.emit(opJa, 0, to, next, note) }
func (a *assembler) ret(k uint32, note string) { a.emit(opRet, k, next, next, note) }
func (a *assembler) jump(code uint16, k uint32, jt, jf label, note string) {
	a.emit(code, k, jt, jf, note)
}

// assemble resolves the labels.
func (a *assembler) assemble() (*Filter, error) {
	if len(a.insns) > maxInstructions {
		return nil, fmt.Errorf("filter has %d instructions, the kernel takes at most %d", len(a.insns), maxInstructions)
	}
	offset := func(i int, l label) (int, error) {
		if l == next {
			return 0, nil
		}
		to := a.at[l]
		if to <= i || to >= len(a.insns) {
			return 0, fmt.Errorf("instruction %d: its label is not a later instruction", i)
		}
		return to - i - 1, nil
	}
	prog := a.insns
	for i := range prog {
		jt, err := offset(i, a.targets[i][0])
		if err != nil {
			return nil, err
		}
		jf, err := offset(i, a.targets[i][1])
		if err != nil {
			return nil, err
		}
		if prog[i].Code == opJa {
			prog[i].K = uint32(jt)
			continue
		}
		if jt > 255 || jf > 255 {
			return nil, fmt.Errorf("instruction %d (%s): a conditional jump of more than 255 instructions; split the rule", i, a.notes[i])
		}
		prog[i].Jt, prog[i].Jf = uint8(jt), uint8(jf)
	}
	return &Filter{Program: prog, notes: a.notes}, nil
}

// MarshalBinary encodes the program as the kernel lays out struct
// sock_filter (code u16, jt u8, jf u8, k u32; little-endian on x86), 8
// bytes an instruction: a form the engine can compile once and hand to the
// container's init through its configuration, so that the init only has
// to Install it. The notes for String are not kept.
func (f *Filter) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 8*len(f.Program))
	for _, in := range f.Program {
		b = binary.LittleEndian.AppendUint16(b, in.Code)
		b = append(b, in.Jt, in.Jf)
		b = binary.LittleEndian.AppendUint32(b, in.K)
	}
	return b, nil
}

// UnmarshalBinary decodes what MarshalBinary encoded.
func (f *Filter) UnmarshalBinary(b []byte) error {
	if len(b)%8 != 0 || len(b) == 0 || len(b)/8 > maxInstructions {
		return fmt.Errorf("seccomp: %d bytes are not a filter of 1 to %d instructions", len(b), maxInstructions)
	}
	f.Program = make([]unix.SockFilter, len(b)/8)
	for i := range f.Program {
		in := b[8*i:]
		f.Program[i] = unix.SockFilter{Code: binary.LittleEndian.Uint16(in), Jt: in[2], Jf: in[3], K: binary.LittleEndian.Uint32(in[4:])}
	}
	f.notes = nil
	return nil
}

// Evaluate runs the program on one syscall of arch, as the kernel would,
// and returns the action and its data (the errno of ERRNO). The engine can
// ask, before it starts anything, whether a profile lets the init execve
// the user's program at all; a lesson can ask what happens to a call.
func (f *Filter) Evaluate(arch Arch, name string, args ...uint64) (Action, uint16, error) {
	a, ok := abis[arch]
	if !ok {
		return "", 0, fmt.Errorf("seccomp: no syscall table for %s", arch)
	}
	nr, ok := a.syscalls.lookup(name)
	if !ok {
		return "", 0, fmt.Errorf("seccomp: %s has no syscall %q", arch, name)
	}
	if len(args) > maxArgs {
		return "", 0, fmt.Errorf("seccomp: %d arguments, at most %d", len(args), maxArgs)
	}
	var data [offArgs + 8*maxArgs]byte
	binary.LittleEndian.PutUint32(data[offNr:], nr)
	binary.LittleEndian.PutUint32(data[offArch:], a.audit)
	for i, v := range args {
		binary.LittleEndian.PutUint64(data[argLow(uint(i)):], v)
	}
	k, err := execute(f.Program, data[:])
	if err != nil {
		return "", 0, err
	}
	for _, act := range []Action{ActAllow, ActLog, ActTrace, ActErrno, ActTrap, ActKillThread, ActKillProcess} {
		if actionBase[act] == k&^0xffff {
			return act, uint16(k), nil
		}
	}
	return "", 0, fmt.Errorf("seccomp: the program returned %#x, not an action", k)
}

// execute is a classic BPF interpreter for the instructions Compile emits.
func execute(prog []unix.SockFilter, data []byte) (uint32, error) {
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		jump := func(cond bool) {
			if cond {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		}
		switch in.Code {
		case opLd:
			if in.K%4 != 0 || int(in.K)+4 > len(data) {
				return 0, fmt.Errorf("seccomp: instruction %d loads offset %d", pc, in.K)
			}
			acc = binary.LittleEndian.Uint32(data[in.K:])
		case opAnd:
			acc &= in.K
		case opJa:
			pc += int(in.K)
		case opJeq:
			jump(acc == in.K)
		case opJgt:
			jump(acc > in.K)
		case opJge:
			jump(acc >= in.K)
		case opRet:
			return in.K, nil
		default:
			return 0, fmt.Errorf("seccomp: instruction %d: %s is not one Compile emits", pc, instruction(in))
		}
	}
	return 0, errors.New("seccomp: the program ends without ret")
}
