package seccomp

//go:generate go run mktables.go

// x32Bit marks a syscall number of the x32 ABI (__X32_SYSCALL_BIT): x32
// programs enter the kernel as x86_64 (AUDIT_ARCH_X86_64) with this bit set.
const x32Bit = 0x40000000
