package layer

import (
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/minictr/minictr/internal/imagetest"
)

// hostileDir holds the fixtures of internal/hostilegen.
var hostileDir = filepath.Join("..", "..", "..", "testdata", "hostile")

// TestHostileFixtures unpacks every hostile fixture, with Unpack and with
// Apply, into target inside a sentinel directory: each must fail naming its
// entry, and nothing may appear beside target or in /tmp.
func TestHostileFixtures(t *testing.T) {
	fixtures, err := imagetest.HostileFixtures(hostileDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range fixtures {
		for mode, fn := range map[string]func(io.Reader, string, Options) (Stats, error){"unpack": Unpack, "apply": Apply} {
			t.Run(mode+"/"+h.File, func(t *testing.T) {
				sentinel := t.TempDir()
				target := filepath.Join(sentinel, "target")
				if err := os.Mkdir(target, 0o755); err != nil {
					t.Fatal(err)
				}
				r := openFixture(t, h.File)
				_, err := fn(r, target, Options{MaxSize: 1 << 20})
				var ee *EntryError
				if !errors.As(err, &ee) || ee.Name != h.Entry || !strings.Contains(err.Error(), h.Want) {
					t.Fatalf("err = %v\nwant an error on entry %q containing %q", err, h.Entry, h.Want)
				}
				if got := names(t, sentinel); !slices.Equal(got, []string{"target"}) {
					t.Errorf("the sentinel directory holds %v, want only [target]", got)
				}
				for _, p := range []string{"/tmp/minictr-hostile-absolute", "/tmp/minictr-hostile-symlink", filepath.Join(filepath.Dir(sentinel), "escape")} {
					if _, err := os.Lstat(p); err == nil {
						t.Errorf("%s exists: the layer escaped", p)
					}
				}
			})
		}
	}
}

func openFixture(t *testing.T, name string) io.Reader {
	t.Helper()
	f, err := os.Open(filepath.Join(hostileDir, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if !strings.HasSuffix(name, ".gz") {
		return f
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	return zr
}
