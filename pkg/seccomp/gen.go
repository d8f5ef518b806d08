package seccomp

import (
	"slices"
	"strings"
)

//go:generate go run mktables.go

// x32Bit marks a syscall number of the x32 ABI (__X32_SYSCALL_BIT): x32
// programs enter the kernel as x86_64 (AUDIT_ARCH_X86_64) with this bit set.
const x32Bit = 0x40000000

// A table lists an ABI's syscalls, sorted by name (see zsyscalls.go).
type table []entry

type entry struct {
	name string
	nr   uint32
}

// lookup returns the number of a syscall name.
func (t table) lookup(name string) (uint32, bool) {
	i, found := slices.BinarySearchFunc(t, name, func(e entry, name string) int { return strings.Compare(e.name, name) })
	if !found {
		return 0, false
	}
	return t[i].nr, true
}
