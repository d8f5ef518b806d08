package image

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// A SearchResult is one repository found by Search.
type SearchResult struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Stars       int    `json:"star_count"`
	Official    bool   `json:"is_official"`
}

// Search looks for repositories whose name contains term. A term that
// starts with a registry ("127.0.0.1:5000/busy") lists that registry's
// /v2/_catalog and filters it, since the distribution API has no search;
// any other term asks Docker Hub's search API, as docker does.
func (c *Client) Search(ctx context.Context, term string, limit int) ([]SearchResult, error) {
	if limit <= 0 {
		limit = 25
	}
	if reg := registryOf(term); reg != "" {
		return c.searchCatalog(ctx, reg, strings.TrimPrefix(term, reg+"/"), limit)
	}
	return c.searchHub(ctx, term, limit)
}

func (c *Client) searchCatalog(ctx context.Context, host, term string, limit int) ([]SearchResult, error) {
	reg, err := c.registry(host)
	if err != nil {
		return nil, fmt.Errorf("searching %s: %w", host, err)
	}
	repos, err := remote.Catalog(ctx, reg, c.remoteOptions(ctx)...)
	if err != nil {
		return nil, fmt.Errorf("searching %s: %w", host, classify(err))
	}
	var out []SearchResult
	for _, r := range repos {
		if strings.Contains(r, term) {
			out = append(out, SearchResult{Name: host + "/" + r})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// hubSearchURL is Docker Hub's search endpoint (the v1 API docker uses).
var hubSearchURL = "https://index.docker.io/v1/search"

func (c *Client) searchHub(ctx context.Context, term string, limit int) ([]SearchResult, error) {
	u := fmt.Sprintf("%s?q=%s&n=%d", hubSearchURL, url.QueryEscape(term), limit)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	client := http.Client{Transport: c.transport()}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("searching docker.io: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("searching docker.io: %s", resp.Status)
	}
	var body struct {
		Results []SearchResult `json:"results"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, MaxManifestSize)).Decode(&body); err != nil {
		return nil, fmt.Errorf("searching docker.io: %w", err)
	}
	return body.Results, nil
}
