package cli

import (
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/minictr/minictr/internal/imagetest"
	"github.com/minictr/minictr/internal/testenv"
)

// TestImageScripts runs the image verbs against registries the scripts
// start: "registry" (go-containerregistry's, in this process) and
// "docker-registry" (Debian's, a real distribution server, optionally with
// an htpasswd file); see internal/imagetest.
func TestImageScripts(t *testing.T) {
	p := testenv.Params("testdata/image")
	p.Cmds = imagetest.Commands()
	p.Condition = imagetest.Condition(p.Condition)
	testscript.Run(t, p)
}
