package image

import (
	"net/http"
	"strings"
	"testing"
)

func TestCurlOfShowsHeadersNeverSecrets(t *testing.T) {
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:5000/v2/a/manifests/latest", nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	req.SetBasicAuth("student", "s3cret")
	got := curlOf(req)
	want := `curl -sS -H 'Accept: application/vnd.oci.image.manifest.v1+json' -u "$USER:$PASSWORD" 'http://127.0.0.1:5000/v2/a/manifests/latest'`
	if got != want {
		t.Errorf("curlOf =\n%s\nwant\n%s", got, want)
	}
	req.Header.Set("Authorization", "Bearer eyJsecret")
	req.Method = http.MethodHead
	got = curlOf(req)
	if strings.Contains(got, "eyJsecret") || !strings.Contains(got, `-I -H 'Accept`) || !strings.Contains(got, `"Authorization: Bearer $TOKEN"`) {
		t.Errorf("curlOf = %s", got)
	}
	req.URL, _ = req.URL.Parse("http://user:pw@127.0.0.1:5000/v2/")
	if got := curlOf(req); strings.Contains(got, ":pw@") {
		t.Errorf("password in URL leaked: %s", got)
	}
}
