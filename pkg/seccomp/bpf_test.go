package seccomp

import (
	"encoding/binary"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// This file holds a small classic BPF interpreter written from the
// kernel's description (Documentation/networking/filter.rst), so that the
// tests can run what Compile produced on a syscall of their choosing and
// check the action, as the kernel would, without installing anything.

// call is one syscall as the kernel shows it to a filter.
type call struct {
	arch uint32 // AUDIT_ARCH_*
	nr   uint32
	args [6]uint64
}

// data lays out struct seccomp_data as the kernel does on x86.
func (c call) data() []byte {
	b := make([]byte, 64)
	binary.LittleEndian.PutUint32(b[0:], c.nr)
	binary.LittleEndian.PutUint32(b[4:], c.arch)
	binary.LittleEndian.PutUint64(b[8:], 0x401000) // instruction_pointer: any
	for i, a := range c.args {
		binary.LittleEndian.PutUint64(b[16+8*i:], a)
	}
	return b
}

// run executes prog on c and returns what it returned. It fails the test
// on anything the kernel would refuse: an unknown instruction, a load
// outside seccomp_data or not aligned, a jump past the end, no ret.
func run(t *testing.T, prog []unix.SockFilter, c call) uint32 {
	t.Helper()
	data := c.data()
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			if in.K%4 != 0 || in.K+4 > uint32(len(data)) {
				t.Fatalf("pc %d: load at %d", pc, in.K)
			}
			acc = binary.LittleEndian.Uint32(data[in.K:])
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			acc &= in.K
		case unix.BPF_JMP | unix.BPF_JA:
			pc += int(in.K)
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K:
			pc += branch(acc == in.K, in)
		case unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K:
			pc += branch(acc > in.K, in)
		case unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K:
			pc += branch(acc >= in.K, in)
		case unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
			pc += branch(acc&in.K != 0, in)
		case unix.BPF_RET | unix.BPF_K:
			return in.K
		default:
			t.Fatalf("pc %d: instruction %#x not interpreted", pc, in.Code)
		}
		if pc+1 > len(prog) {
			t.Fatalf("pc %d: jump past the end", pc)
		}
	}
	t.Fatal("program ended without ret")
	return 0
}

func branch(cond bool, in unix.SockFilter) int {
	if cond {
		return int(in.Jt)
	}
	return int(in.Jf)
}

// The results, written out rather than taken from the package.
const (
	allow       = 0x7fff0000
	errnoEPERM  = 0x00050000 | 1
	errnoENOSYS = 0x00050000 | 38
)

func errno(e unix.Errno) uint32 { return 0x00050000 | uint32(e) }

func retString(k uint32) string {
	switch {
	case k == allow:
		return "ALLOW"
	case k&^0xffff == 0x00050000:
		return fmt.Sprintf("ERRNO(%d)", k&0xffff)
	}
	return fmt.Sprintf("%#x", k)
}

// The interpreter itself must be right for the other tests to mean
// anything: a hand-written program, checked instruction by instruction.
func TestInterpreter(t *testing.T) {
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 4},            // 0: arch
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: 7, Jf: 5},    // 1: arch 7 or ret 1
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 20},           // 2: args[0] high
		{Code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, K: 0xf0},        // 3
		{Code: unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K, K: 0x10, Jt: 1}, // 4: > 0x10: ret 3
		{Code: unix.BPF_RET | unix.BPF_K, K: 2},                          // 5
		{Code: unix.BPF_RET | unix.BPF_K, K: 3},                          // 6
		{Code: unix.BPF_RET | unix.BPF_K, K: 1},                          // 7
	}
	for _, tc := range []struct {
		c    call
		want uint32
	}{
		{call{arch: 8}, 1},
		{call{arch: 7, args: [6]uint64{0x20_0000_0000}}, 3},
		{call{arch: 7, args: [6]uint64{0x2f_0000_0000}}, 3},
		{call{arch: 7, args: [6]uint64{0x10_ffff_ffff}}, 2},
		{call{arch: 7, args: [6]uint64{0x0f_0000_0000}}, 2},
	} {
		if got := run(t, prog, tc.c); got != tc.want {
			t.Errorf("%+v: got %d, want %d", tc.c, got, tc.want)
		}
	}
}
