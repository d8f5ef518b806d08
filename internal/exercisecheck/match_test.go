package exercisecheck

import (
	"strings"
	"testing"
)

// The rule itself, on small files: a test of the checker must be able to
// see it catch a drift.
func TestSameOutsideHoles(t *testing.T) {
	solution := `//go:build !exercise

// Solution.
package main

func a() error {
	return chroot()
}

func b() {
	loop()
}
`
	exercise := func(body string) string {
		return "//go:build exercise\n\n// Exercise: any header.\npackage main\n" + body
	}
	tests := []struct {
		name, exercise, wantErr string
	}{
		{"two holes", exercise(`
func a() error {
	// TODO(1): call chroot.
	return errors.New("TODO 1: chroot")
}

func b() {
	// TODO(2): loop.
	// More hint.
	panic("TODO 2: loop")
}
`), ""},
		{"a hole over nothing", exercise(`
func a() error {
	return chroot()
}
// TODO(1): an insertion is a hole too.
// "TODO 1: x"

func b() {
	loop()
}
`), ""},
		{"changed outside a hole", exercise(`
func a() error {
	// TODO(1): call chroot.
	return errors.New("TODO 1: chroot")
}

func b() {
	loopDifferently()
}
`), `not end main.go: main.go has no line "\tloopDifferently()"`},
		{"changed before the first hole", exercise(`
func A() error {
	// TODO(1): call chroot.
	return errors.New("TODO 1: chroot")
}

func b() {
	loop()
}
`), `line 6 differs from main.go outside any TODO hole: "func A() error {"`},
		{"changed between holes", exercise(`
func a() error {
	// TODO(1): call chroot.
	return errors.New("TODO 1: chroot")
}

func c() {
	// TODO(2): loop.
	panic("TODO 2: loop")
}
`), `lines 9-11 (between TODO(1) and the next hole) are not in main.go`},
		{"no message", exercise(`
func a() error {
	// TODO(1): call chroot.
	return nil
}

func b() {
	loop()
}
`), `TODO(1) has no line below it that fails with "TODO 1:`},
		{"numbered out of order", exercise(`
func a() error {
	// TODO(2): call chroot.
	return errors.New("TODO 2: chroot")
}

func b() {
	loop()
}
`), `TODO(2) where TODO(1) comes next`},
		{"no holes", exercise(strings.TrimPrefix(solution, "//go:build !exercise\n\n// Solution.\npackage main\n")), "no holes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := sameOutsideHoles(strings.Split(tt.exercise, "\n"), strings.Split(solution, "\n"))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("no error, want one containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("error %q, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
