package cgroups

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The bpf(2) system call takes one union, bpf_attr, whose shape depends on
// the command. These are the members this file uses, laid out as in
// linux/bpf.h; the kernel accepts a shorter attr than its own as long as
// what is missing would be zero. The kernel's __aligned_u64 pointers are
// unsafe.Pointer here, the same 8 bytes on a 64-bit machine, so that Go
// keeps what they point to alive and in place during the call.

type bpfProgLoadAttr struct {
	progType    uint32
	insnCnt     uint32
	insns       unsafe.Pointer
	license     unsafe.Pointer // a C string
	logLevel    uint32
	logSize     uint32
	logBuf      unsafe.Pointer
	kernVersion uint32
	progFlags   uint32
	progName    [16]byte
}

type bpfAttachAttr struct {
	targetFD    uint32 // the cgroup's directory
	attachBPFFD uint32
	attachType  uint32
	attachFlags uint32
}

type bpfQueryAttr struct {
	targetFD    uint32
	attachType  uint32
	queryFlags  uint32
	attachFlags uint32
	progIDs     unsafe.Pointer // a uint32 array
	progCnt     uint32
	_           uint32
}

type bpfGetFDAttr struct {
	id, nextID, openFlags uint32
}

type bpfInfoAttr struct {
	fd      uint32
	infoLen uint32
	info    unsafe.Pointer
}

// bpfLicense is what the program tells the kernel about its licence. Only
// programs that call GPL-only helpers need a GPL-compatible one; a device
// program calls no helper at all (runc passes "Apache" likewise).
const bpfLicense = "Apache-2.0"

func bpf(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
	if errno != 0 {
		return int(r), errno
	}
	return int(r), nil
}

// load hands the program to the kernel's verifier and returns its file
// descriptor. When the verifier refuses it, load asks again for the
// verifier's log and puts it in the error: it says which instruction
// and why.
func (p *DeviceProgram) load() (int, error) {
	code := p.bytes()
	license := []byte(bpfLicense + "\x00")
	attr := bpfProgLoadAttr{
		progType: unix.BPF_PROG_TYPE_CGROUP_DEVICE,
		insnCnt:  uint32(len(p.insns)),
		insns:    unsafe.Pointer(&code[0]),
		license:  unsafe.Pointer(&license[0]),
	}
	copy(attr.progName[:], "minictr_devices")
	// The verifier gives up with EAGAIN when a signal arrives while it
	// works (the Go runtime sends some): try again, as cilium/ebpf does.
	fd, err := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	for try := 0; errors.Is(err, unix.EAGAIN) && try < 10; try++ {
		fd, err = bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	}
	if err == nil {
		return fd, nil
	}
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EACCES) {
		log := make([]byte, 64<<10)
		attr.logLevel, attr.logSize = 1, uint32(len(log))
		attr.logBuf = unsafe.Pointer(&log[0])
		if _, lerr := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); lerr != nil {
			n := 0
			for n < len(log) && log[n] != 0 {
				n++
			}
			return -1, fmt.Errorf("%w; verifier log:\n%s", os.NewSyscallError("bpf(BPF_PROG_LOAD)", err), log[:n])
		}
	}
	return -1, os.NewSyscallError("bpf(BPF_PROG_LOAD)", err)
}

// attachDevices loads the rules' program and attaches it to the cgroup
// dir, then detaches any device program attached there before: one
// program decides, and there is no moment without one. BPF_F_ALLOW_MULTI
// lets two programs sit on one cgroup for that moment, and lets a
// container's own descendants (a nested engine) add theirs: the kernel
// runs every program of the cgroup and its ancestors, and any 0 denies.
// The cgroup holds the program: when it is removed, the program goes too.
func attachDevices(dir string, rules []DeviceRule) (*DeviceProgram, error) {
	p, err := DeviceFilter(rules)
	if err != nil {
		return nil, err
	}
	prog, err := p.load()
	if err != nil {
		return nil, err
	}
	defer unix.Close(prog)
	cg, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(cg)
	attr := bpfAttachAttr{targetFD: uint32(cg), attachBPFFD: uint32(prog), attachType: unix.BPF_CGROUP_DEVICE, attachFlags: unix.BPF_F_ALLOW_MULTI}
	if _, err := bpf(unix.BPF_PROG_ATTACH, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err != nil {
		return nil, &os.PathError{Op: "bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE)", Path: dir, Err: err}
	}
	id, err := progID(prog)
	if err != nil {
		return nil, err
	}
	attached, err := deviceProgs(cg, dir)
	if err != nil {
		return nil, err
	}
	for _, old := range attached {
		if old != id {
			if err := detachDevices(cg, dir, old); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

// progID asks the kernel for a loaded program's ID: the first two fields
// of struct bpf_prog_info are its type and its ID.
func progID(fd int) (uint32, error) {
	var info [2]uint32
	attr := bpfInfoAttr{fd: uint32(fd), infoLen: uint32(unsafe.Sizeof(info)), info: unsafe.Pointer(&info[0])}
	if _, err := bpf(unix.BPF_OBJ_GET_INFO_BY_FD, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err != nil {
		return 0, os.NewSyscallError("bpf(BPF_OBJ_GET_INFO_BY_FD)", err)
	}
	return info[1], nil
}

// deviceProgs lists the IDs of the device programs attached to the
// cgroup itself (not its ancestors'), as `bpftool cgroup show DIR` does.
func deviceProgs(cg int, dir string) ([]uint32, error) {
	ids := make([]uint32, 64)
	attr := bpfQueryAttr{targetFD: uint32(cg), attachType: unix.BPF_CGROUP_DEVICE,
		progIDs: unsafe.Pointer(&ids[0]), progCnt: uint32(len(ids))}
	if _, err := bpf(unix.BPF_PROG_QUERY, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err != nil {
		return nil, &os.PathError{Op: "bpf(BPF_PROG_QUERY, BPF_CGROUP_DEVICE)", Path: dir, Err: err}
	}
	return ids[:min(attr.progCnt, uint32(len(ids)))], nil
}

// detachDevices takes the program id off the cgroup.
func detachDevices(cg int, dir string, id uint32) error {
	get := bpfGetFDAttr{id: id}
	prog, err := bpf(unix.BPF_PROG_GET_FD_BY_ID, unsafe.Pointer(&get), unsafe.Sizeof(get))
	if err != nil {
		return os.NewSyscallError("bpf(BPF_PROG_GET_FD_BY_ID)", err)
	}
	defer unix.Close(prog)
	attr := bpfAttachAttr{targetFD: uint32(cg), attachBPFFD: uint32(prog), attachType: unix.BPF_CGROUP_DEVICE}
	if _, err := bpf(unix.BPF_PROG_DETACH, unsafe.Pointer(&attr), unsafe.Sizeof(attr)); err != nil {
		return &os.PathError{Op: "bpf(BPF_PROG_DETACH, BPF_CGROUP_DEVICE)", Path: dir, Err: err}
	}
	return nil
}

// setDevices is the v2 driver's part of Set.
func (g *v2) setDevices(rules []DeviceRule) error {
	if rules == nil {
		return nil
	}
	p, err := attachDevices(g.dir, rules)
	if err != nil {
		return err
	}
	g.fs.note(fmt.Sprintf("attach a BPF_CGROUP_DEVICE program of %d instructions for %d device rules to %s (bpftool cgroup show %s)",
		p.Len(), len(rules), g.dir, g.dir))
	return nil
}
