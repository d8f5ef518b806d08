package cgroups

import (
	"errors"
	"fmt"
	"time"

	"github.com/minictr/minictr/pkg/trace"
)

// Resources are the limits of one cgroup, in docker's units. A zero field
// means "no limit" when creating and "leave as it is" in [Cgroup.Set].
type Resources struct {
	Memory     int64 // bytes; 0 = no limit
	MemorySwap int64 // memory+swap bytes like docker --memory-swap; 0 = default (2x Memory when Memory set), -1 = unlimited
	CPUQuota   int64 // microseconds per period; 0 = no limit (--cpus 1.5 -> 150000 of 100000)
	CPUPeriod  int64 // microseconds; 0 = 100000
	CPUShares  int64 // docker --cpu-shares (2..262144); 0 = default; mapped to cpu.weight on v2
	PidsLimit  int64 // 0 (or -1) = no limit
	// Devices are the device rules, enforced by the kernel: the v1
	// devices controller, a BPF_CGROUP_DEVICE program on v2. nil leaves
	// device access as it is (on New: every device, as the host allows);
	// an empty list denies every device. A container gets DefaultDevices
	// and its --device rules, a --privileged one AllowAllDevices.
	Devices []DeviceRule
}

// Config describes the cgroup [New] creates.
type Config struct {
	Name      string // one path element, e.g. "minictr-3f2a..."
	Resources Resources
	// Layout is the host's, from DetectLayout: the engine reads it once
	// per command, so that every stage agrees on v1 or v2.
	Layout *Layout
	Tracer trace.Tracer
}

// A Cgroup is one container's control group, in whichever layout the host
// uses.
type Cgroup interface {
	Paths() []string   // the directories it created, for display
	Add(pid int) error // move a process (all its threads) into the group
	Set(Resources) error
	Stats() (Stats, error) // for the lifecycle issue's `minictr stats`
	OOMKilled() (bool, error)
	Procs() ([]int, error) // for the lifecycle issue's `minictr top` and `ps`
	Destroy() error        // kill what is left, rmdir with retry while procs die; idempotent
}

// Stats is what the kernel counted for a cgroup. A limit of 0 means none.
type Stats struct {
	MemoryUsage, MemoryPeak, MemoryLimit uint64        // bytes
	CPUUsage                             time.Duration // 0 on a v1 host that does not mount cpuacct
	NrPeriods, NrThrottled               uint64        // CFS periods, and those in which the group was stopped
	ThrottledTime                        time.Duration
	Pids, PidsLimit                      uint64
	OOMKills                             uint64 // processes the OOM killer killed in this group
}

// Errors for errors.Is.
var (
	ErrNoCgroups         = errors.New("no cgroup file system mounted")
	ErrControllerMissing = errors.New("cgroup controller not available")
	ErrInvalidResources  = errors.New("invalid cgroup resources")
	ErrInvalidName       = errors.New("invalid cgroup name")
	ErrNoLayout          = errors.New("no cgroup layout given (read it once with DetectLayout)")
)

// defaultCPUPeriod is the kernel's and docker's CFS period: 100ms.
const defaultCPUPeriod = 100000

// New creates the cgroup cfg.Name under the root of each hierarchy of
// cfg.Layout and applies cfg.Resources. A group of that name
// that exists already is an error (fs.ErrExist), and is left alone. When a
// limit cannot be set, New removes what it created and returns the error.
func New(cfg Config) (Cgroup, error) {
	if err := checkName(cfg.Name); err != nil {
		return nil, err
	}
	if err := cfg.Resources.validate(); err != nil {
		return nil, err
	}
	cg, err := open(cfg.Layout, cfg.Name, cfg.Tracer)
	if err != nil {
		return nil, err
	}
	if err := cg.create(); err != nil {
		return nil, err // create removed what it made
	}
	if err := cg.Set(cfg.Resources); err != nil {
		return nil, errors.Join(err, cg.Destroy())
	}
	return cg, nil
}

// Load returns the existing cgroup name in layout l, for stats and Destroy
// after a restart. It fails with an error matching fs.ErrNotExist when no
// directory of that name exists.
func Load(name string, l *Layout, t trace.Tracer) (Cgroup, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	cg, err := open(l, name, t)
	if err != nil {
		return nil, err
	}
	if err := cg.exists(); err != nil {
		return nil, err
	}
	return cg, nil
}

// driver is what New and Load need beyond the Cgroup interface.
type driver interface {
	Cgroup
	create() error // mkdir and, on v2, enable controllers
	exists() error
}

// open places the cgroup name in the hierarchies l's mode calls for,
// without touching the cgroup.
func open(l *Layout, name string, t trace.Tracer) (driver, error) {
	if l == nil {
		return nil, ErrNoLayout
	}
	mode, err := l.Mode()
	if err != nil {
		return nil, err
	}
	if mode == ModeV2 {
		return newV2(l.Unified, name, t), nil
	}
	return newV1(l.Controllers, l.controllerless(), name, t)
}

// checkName keeps the name one plain path element, so that it can never
// point outside the hierarchy's root.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	for _, r := range name {
		if r == '/' || r == 0 || r == '\n' {
			return fmt.Errorf("%w: %q", ErrInvalidName, name)
		}
	}
	return nil
}

// validate rejects values no kernel accepts. The CLI checks user input
// with friendlier messages; this is the library's last line.
func (r Resources) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidResources, fmt.Sprintf(format, args...))
	}
	switch {
	case r.Memory < 0:
		return bad("memory %d is negative", r.Memory)
	case r.MemorySwap < -1:
		return bad("memory+swap %d is negative (-1 means unlimited)", r.MemorySwap)
	case r.MemorySwap > 0 && r.Memory == 0:
		return bad("memory+swap %d needs a memory limit too", r.MemorySwap)
	case r.MemorySwap > 0 && r.MemorySwap < r.Memory:
		return bad("memory+swap %d is less than memory %d", r.MemorySwap, r.Memory)
	case r.CPUQuota < 0:
		return bad("cpu quota %d is negative", r.CPUQuota)
	case r.CPUPeriod < 0:
		return bad("cpu period %d is negative", r.CPUPeriod)
	case r.CPUShares != 0 && (r.CPUShares < 2 || r.CPUShares > 262144):
		return bad("cpu shares %d is outside 2..262144", r.CPUShares)
	case r.PidsLimit < -1:
		return bad("pids limit %d is negative (-1 means unlimited)", r.PidsLimit)
	}
	return validateDevices(r.Devices)
}

// memorySwap returns the memory+swap limit docker would set: -1 for
// unlimited, 0 for "do not touch".
func memorySwap(memory, swap int64) int64 {
	switch {
	case swap != 0:
		return swap
	case memory > 0:
		return 2 * memory // docker's default: as much swap as memory
	}
	return 0
}

// swapOnly turns docker's memory+swap total into v2's memory.swap.max,
// which counts swap alone: "max" for unlimited.
func swapOnly(memory, total int64) string {
	if total == -1 {
		return "max"
	}
	return fmt.Sprint(total - memory)
}

// sharesToWeight maps v1 cpu.shares (2..262144, default 1024) onto v2
// cpu.weight (1..10000, default 100) linearly, as runc does. The default
// does not map exactly: 1024 shares become weight 39.
func sharesToWeight(shares int64) int64 {
	if shares == 0 {
		return 0
	}
	return 1 + ((shares-2)*9999)/262142
}
