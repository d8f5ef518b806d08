// Package claims reads the claim index at the end of each lesson's
// README.md: a table under "## Claims and their proofs" whose rows pair a
// claim with the testscripts (testdata/NAME.txtar) that prove it. Its test
// keeps the index and the lesson's testdata/ in step: every script named
// exists, and every script is named by some claim.
package claims
