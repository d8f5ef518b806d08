package seccomp

import (
	"runtime"
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// An Arch is a syscall ABI, named as libseccomp and docker's profiles name
// it ("SCMP_ARCH_X86_64").
type Arch string

// The ABIs an x86_64 kernel runs, and so the ones this package has syscall
// tables for. A 64-bit kernel also runs 32-bit (x86) and x32 programs: a
// filter that checked only x86_64 numbers would let `int 0x80` or an x32
// number reach syscalls it meant to refuse.
const (
	ArchX86_64 Arch = "SCMP_ARCH_X86_64"
	ArchX86    Arch = "SCMP_ARCH_X86"
	ArchX32    Arch = "SCMP_ARCH_X32"
)

// Native is the ABI of this program (and of the kernel running it), or ""
// where this package has no syscall table for it.
var Native = map[string]Arch{"amd64": ArchX86_64, "386": ArchX86}[runtime.GOARCH]

// abi is what the compiler needs to know of an Arch.
type abi struct {
	audit    uint32          // seccomp_data.arch: AUDIT_ARCH_* from linux/audit.h
	syscalls table           // name -> number, see zsyscalls.go
	names    []string        // how docker's includes/excludes "arches" name it
	subs     []Arch          // the ABIs a kernel of this one also runs
	numbers  func() []uint32 // the syscall numbers in order, sorted once
}

var abis = map[Arch]abi{
	ArchX86_64: newABI(unix.AUDIT_ARCH_X86_64, syscallsX86_64, []string{"amd64"}, []Arch{ArchX86, ArchX32}),
	ArchX86:    newABI(unix.AUDIT_ARCH_I386, syscallsX86, []string{"x86", "386"}, nil),
	ArchX32:    newABI(unix.AUDIT_ARCH_X86_64, syscallsX32, []string{"x32"}, nil), // numbers carry x32Bit
}

func newABI(audit uint32, syscalls table, names []string, subs []Arch) abi {
	return abi{audit, syscalls, names, subs, sync.OnceValue(func() []uint32 {
		nums := make([]uint32, 0, len(syscalls))
		for _, e := range syscalls {
			nums = append(nums, e.nr)
		}
		slices.Sort(nums)
		return nums
	})}
}

// knownArches are all the names libseccomp knows. A profile may list any of
// them (docker's lists ten); those this package has no table for can never
// reach an x86 kernel, so leaving them out of the filter changes nothing.
var knownArches = map[Arch]bool{
	"SCMP_ARCH_NATIVE": true, ArchX86: true, ArchX86_64: true, ArchX32: true,
	"SCMP_ARCH_ARM": true, "SCMP_ARCH_AARCH64": true, "SCMP_ARCH_LOONGARCH64": true,
	"SCMP_ARCH_M68K": true, "SCMP_ARCH_MIPS": true, "SCMP_ARCH_MIPS64": true,
	"SCMP_ARCH_MIPS64N32": true, "SCMP_ARCH_MIPSEL": true, "SCMP_ARCH_MIPSEL64": true,
	"SCMP_ARCH_MIPSEL64N32": true, "SCMP_ARCH_PPC": true, "SCMP_ARCH_PPC64": true,
	"SCMP_ARCH_PPC64LE": true, "SCMP_ARCH_S390": true, "SCMP_ARCH_S390X": true,
	"SCMP_ARCH_PARISC": true, "SCMP_ARCH_PARISC64": true, "SCMP_ARCH_RISCV64": true,
	"SCMP_ARCH_SH": true, "SCMP_ARCH_SHEB": true,
}
