package cli

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// parseBytes reads a size the way docker does: a number with an optional
// binary unit b, k, m, g, t (with or without a trailing "b" or "ib", any case).
func parseBytes(s string) (int64, error) {
	num := strings.ToLower(strings.TrimSpace(s))
	num = strings.TrimSuffix(num, "ib")
	num = strings.TrimSuffix(num, "b")
	mult := int64(1)
	if n := len(num); n > 0 {
		switch num[n-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		case 't':
			mult = 1 << 40
		}
		if mult != 1 {
			num = num[:n-1]
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || num == "" || math.IsNaN(v) || math.IsInf(v, 0) || strings.ContainsAny(num, "eEnNiI") {
		return 0, fmt.Errorf("not a size: want a positive number with an optional unit b, k, m or g")
	}
	if v*float64(mult) >= math.MaxInt64 {
		return 0, fmt.Errorf("too large")
	}
	return int64(v * float64(mult)), nil
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
	if hasValue {
		return e, true, nil
	}
	if v, ok := os.LookupEnv(key); ok {
		return key + "=" + v, true, nil
	}
	return "", false, nil
}
