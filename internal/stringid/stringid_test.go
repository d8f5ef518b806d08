package stringid

import "testing"

func TestShort(t *testing.T) {
	const full = "4fc4b5b4e1d6c7c8a2b9e0f1d2c3b4a5968778695a4b3c2d1e0f9e8d7c6b5a49"
	for in, want := range map[string]string{
		full:             "4fc4b5b4e1d6",
		"sha256:" + full: "4fc4b5b4e1d6",
		"abc":            "abc",
		"sha256:abc":     "abc",
		"":               "",
	} {
		if got := Short(in); got != want {
			t.Errorf("Short(%q) = %q, want %q", in, got, want)
		}
	}
}
