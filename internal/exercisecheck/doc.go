// Package exercisecheck holds the test that keeps the lessons' exercises
// true to their solutions. Each lesson's main.go (build tag !exercise) is
// the solution; its exercise.go (build tag exercise) is the same program
// with a few holes, each a `// TODO(N): hint` comment down to the line that
// fails with "TODO N: ...". The test checks that every exercise compiles,
// that it differs from main.go only inside its holes, and, as root, that
// the lesson's testscripts fail against an unfinished exercise.
// lessons/EXERCISES.md is the students' side of it.
package exercisecheck
