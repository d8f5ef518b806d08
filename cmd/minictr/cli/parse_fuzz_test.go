package cli

import (
	"math"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// The fuzz targets of the run flags that take free text. -p, -v and
// --mount do not exist yet: their parsers get a target when they land.

// oneLine fails when err's message spans lines: the CLI prints
// "minictr: <error>" once, and input must not forge a second line.
func oneLine(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.ContainsAny(err.Error(), "\r\n") {
		t.Errorf("error of more than one line: %q", err)
	}
}

// FuzzEnvFile feeds an arbitrary --env-file and -e value to buildEnv.
// Every entry it returns is KEY=VALUE with a non-empty KEY free of blanks
// and no NUL anywhere (execve(2) could not pass it); the file's entries,
// written back one per line, read back the same; errors are one line.
func FuzzEnvFile(f *testing.F) {
	for _, s := range []struct{ file, flag string }{
		{"# comment\n\nA=1\nB=x=y\n  C = spaced \nPATH\nMINICTR_FUZZ_UNSET\n", "D=4"},
		{"A=1\r\nB=2\r\n", "A"},
		{"=x\n", "E=5"}, {"A B=1\n", "F=6"}, {"\tA=1\n", "=no"}, {"A=\x00\n", "G=\x00"},
		{"A=1", "K V=1"}, {strings.Repeat("x", 70000) + "=long line\n", "H=8"},
		{"\xff\xfe=bytes\n#=\n", "I=a\nb"},
	} {
		f.Add([]byte(s.file), s.flag)
	}
	f.Fuzz(func(t *testing.T, data []byte, flag string) {
		dir := t.TempDir()
		file := filepath.Join(dir, "env")
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		env, err := buildEnv([]string{file}, []string{flag})
		if err != nil {
			oneLine(t, err)
			return
		}
		for _, e := range env {
			key, _, ok := strings.Cut(e, "=")
			if !ok || key == "" || strings.ContainsAny(key, " \t") || strings.ContainsRune(e, 0) {
				t.Errorf("entry %q is no KEY=VALUE that execve can pass", e)
			}
		}
		fromFile, err := readEnvFile(file)
		if err != nil {
			t.Fatalf("buildEnv read %s, readEnvFile did not: %v", file, err)
		}
		if !slices.Equal(env[:len(fromFile)], fromFile) {
			t.Errorf("buildEnv = %q, does not begin with the file's %q", env, fromFile)
		}
		again := filepath.Join(dir, "again")
		if err := os.WriteFile(again, []byte(strings.Join(fromFile, "\n")), 0o600); err != nil {
			t.Fatal(err)
		}
		back, err := readEnvFile(again)
		if err != nil || !slices.Equal(back, fromFile) {
			t.Errorf("entries %q written back read as %q, %v", fromFile, back, err)
		}
	})
}

// simpleSize is the plain subset of --memory values, for which the
// expected number of bytes is worked out here with exact arithmetic.
var simpleSize = regexp.MustCompile(`^([0-9]{1,40}(?:\.[0-9]{1,40})?) ?(?:([kmgtpKMGTP])(?:[iI]?[bB])?|[bB])?$`)

// exactBytes is the exact size a simple value names (rounded down), or
// nil when s is not simple.
func exactBytes(s string) *big.Int {
	m := simpleSize.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return nil
	}
	num, ok := new(big.Rat).SetString(m[1])
	if !ok {
		return nil
	}
	shift := map[string]uint{"": 0, "k": 10, "m": 20, "g": 30, "t": 40, "p": 50}[strings.ToLower(m[2])]
	num.Mul(num, new(big.Rat).SetInt(new(big.Int).Lsh(big.NewInt(1), shift)))
	return new(big.Int).Quo(num.Num(), num.Denom())
}

// FuzzRunResources feeds arbitrary --memory, --memory-swap, --cpus,
// --cpu-shares and --pids-limit values to runFlags.resources. What it
// accepts is in bounds: memory 0 (no limit) only for a zero value, else at
// least 6 MiB and, for plain values, the exact number of bytes asked for
// (to float64's precision) with no overflow; swap -1, 0 or at least the
// memory; a CPU quota from 1% of a CPU to all of them; shares 0 or 2 to
// 262144; pids 0 or more. Errors are one line and name the flag.
func FuzzRunResources(f *testing.F) {
	for _, s := range []struct {
		memory, swap, cpus string
		shares, pids       int64
	}{
		{"64m", "128m", "0.5", 512, 100}, {"1g", "-1", "1", 2, -1}, {"0", "0", "", 0, 0},
		{"64MiB", "64mb", "0.01", 262144, 1}, {"6m", "", "1e-3", 1, -2}, {"0.5", "", "NaN", 0, 0},
		{"9999999999g", "", "+Inf", 262145, math.MinInt64}, {"8191p", "8192p", "0x1p-1", 0, math.MaxInt64},
		{"64m\n", "1k", "1", 0, 0}, {"1e30", "", "-1", 0, 0}, {"9223372036854775807", "", "", 0, 0},
		{" 64 m ", "64m\x00", "1.5", 0, 0}, {"0.5", "", "", 0, 0}, {"0x1p-3m", "", "", 0, 0},
	} {
		f.Add(s.memory, s.swap, s.cpus, s.shares, s.pids)
	}
	host := runtime.NumCPU()
	maxInt64 := new(big.Int).SetInt64(math.MaxInt64)
	f.Fuzz(func(t *testing.T, memory, swap, cpus string, shares, pids int64) {
		fl := runFlags{memory: memory, memorySwap: swap, cpus: cpus, cpuShares: shares, pidsLimit: pids}
		r, err := fl.resources()
		if err != nil {
			oneLine(t, err)
			if !strings.Contains(err.Error(), "--") {
				t.Errorf("error %q names no flag", err)
			}
			return
		}
		if memory != "" {
			exact := exactBytes(memory)
			switch {
			case r.Memory < 0:
				t.Errorf("--memory %q = %d", memory, r.Memory)
			case r.Memory == 0 && strings.ContainsAny(memory, "123456789"):
				t.Errorf("--memory %q = 0, which is no limit at all", memory)
			case r.Memory > 0 && r.Memory < 6<<20:
				t.Errorf("--memory %q = %d, under 6 MiB", memory, r.Memory)
			case exact != nil && exact.Cmp(maxInt64) >= 0:
				t.Errorf("--memory %q (%s bytes) overflows int64, yet gave %d", memory, exact, r.Memory)
			case exact != nil:
				diff := new(big.Int).Sub(exact, big.NewInt(r.Memory))
				tolerance := new(big.Int).Rsh(exact, 50) // float64 keeps 53 bits
				if diff.Abs(diff).Cmp(tolerance.Add(tolerance, big.NewInt(1))) > 0 {
					t.Errorf("--memory %q = %d bytes, want %s", memory, r.Memory, exact)
				}
			}
		}
		if r.MemorySwap != -1 && r.MemorySwap != 0 && r.MemorySwap < r.Memory {
			t.Errorf("--memory-swap %q = %d, under --memory %d", swap, r.MemorySwap, r.Memory)
		}
		if r.MemorySwap > 0 && r.Memory == 0 {
			t.Errorf("--memory-swap %q = %d without --memory", swap, r.MemorySwap)
		}
		if cpus != "" && (r.CPUPeriod != 100000 || r.CPUQuota < 1000 || r.CPUQuota > int64(host)*100000) {
			t.Errorf("--cpus %q = quota %d, period %d; host has %d CPUs", cpus, r.CPUQuota, r.CPUPeriod, host)
		}
		if r.CPUShares != 0 && (r.CPUShares < 2 || r.CPUShares > 262144) {
			t.Errorf("--cpu-shares %d = %d", shares, r.CPUShares)
		}
		if r.PidsLimit < 0 {
			t.Errorf("--pids-limit %d = %d", pids, r.PidsLimit)
		}
	})
}

// FuzzSecurityOpt feeds arbitrary --security-opt values to
// parseSecurityOpts. It accepts only no-new-privileges (bare or with a
// boolean) and seccomp=VALUE (builtin, unconfined or a profile's path, read
// later); the last of each wins; errors are one line.
func FuzzSecurityOpt(f *testing.F) {
	for _, s := range []string{"no-new-privileges", "no-new-privileges=true", "no-new-privileges=false", "no-new-privileges=1",
		"no-new-privileges:true", "no-new-privileges=maybe", "seccomp=unconfined", "seccomp=builtin", "seccomp=", "seccomp=/p.json",
		"apparmor=x\ny", "=", ""} {
		f.Add(s, "no-new-privileges")
	}
	bools := map[string]bool{"1": true, "t": true, "T": true, "TRUE": true, "true": true, "True": true,
		"0": false, "f": false, "F": false, "FALSE": false, "false": false, "False": false}
	f.Fuzz(func(t *testing.T, a, b string) {
		got, err := parseSecurityOpts([]string{a, b})
		if err != nil {
			oneLine(t, err)
			return
		}
		var want securityOpts
		for _, o := range []string{a, b} {
			val, hasVal := strings.CutPrefix(o, "no-new-privileges=")
			v, ok := bools[val]
			profile, isSeccomp := strings.CutPrefix(o, "seccomp=")
			switch {
			case o == "no-new-privileges":
				want.noNewPrivs = true
			case hasVal && ok:
				want.noNewPrivs = v
			case isSeccomp && profile == "builtin":
				want.seccomp = ""
			case isSeccomp && profile != "":
				want.seccomp = profile
			default:
				t.Fatalf("accepted --security-opt %q", o)
			}
		}
		if got != want {
			t.Errorf("--security-opt %q --security-opt %q = %+v, want %+v", a, b, got, want)
		}
	})
}
