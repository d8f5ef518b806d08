package cli

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"strings"

	units "github.com/docker/go-units"
)

// parseBytes reads a size as docker's --memory does (go-units' RAMInBytes:
// a number with an optional binary unit b, k, m, g, t, p, with or without a
// trailing "b" or "ib", any case), and refuses what would overflow, which
// RAMInBytes converts without a check.
func parseBytes(s string) (int64, error) {
	n, err := units.RAMInBytes(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("not a size: want a positive number with an optional unit b, k, m or g")
	}
	// float64 -> int64 of a value out of range gives MinInt64 (amd64) or
	// saturates at MaxInt64 (arm64).
	if n < 0 || n == math.MaxInt64 {
		return 0, fmt.Errorf("too large")
	}
	// RAMInBytes rounds down: "0.5" would be 0, which means no limit at all.
	if n == 0 && strings.ContainsAny(s, "123456789") {
		return 0, fmt.Errorf("less than one byte")
	}
	return n, nil
}

// buildEnv merges --env-file files and -e flags, in that order, as docker
// does: "KEY=VALUE" sets a value, a bare "KEY" copies it from this process's
// environment (and is dropped when unset here).
func buildEnv(files, flags []string) ([]string, error) {
	var env []string
	for _, name := range files {
		lines, err := readEnvFile(name)
		if err != nil {
			return nil, err
		}
		env = append(env, lines...)
	}
	for _, e := range flags {
		v, ok, err := envEntry(e)
		if err != nil {
			return nil, fmt.Errorf("invalid --env %q: %w", e, err)
		}
		if ok {
			env = append(env, v)
		}
	}
	return env, nil
}

func readEnvFile(name string) ([]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("reading --env-file: %w", err)
	}
	defer f.Close()
	var env []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		v, ok, err := envEntry(line)
		if err != nil {
			return nil, fmt.Errorf("--env-file %s, line %d: %w", name, n, err)
		}
		if ok {
			env = append(env, v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading --env-file %s: %w", name, err)
	}
	return env, nil
}

func envEntry(e string) (string, bool, error) {
	key, _, hasValue := strings.Cut(e, "=")
	if key == "" {
		return "", false, fmt.Errorf("variable name is empty")
	}
	if strings.ContainsAny(key, " \t") {
		return "", false, fmt.Errorf("variable name %q contains whitespace", key)
	}
	// execve(2) takes C strings: a NUL would fail the container's start,
	// after everything was set up, instead of here.
	if strings.ContainsRune(e, 0) {
		return "", false, fmt.Errorf("variable %q contains a NUL byte", key)
	}
	if hasValue {
		return e, true, nil
	}
	if v, ok := os.LookupEnv(key); ok {
		return key + "=" + v, true, nil
	}
	return "", false, nil
}
