package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billfold/billfold/ingest"
	"github.com/billfold/billfold/projections/query"
	"github.com/billfold/billfold/test/natstest"
)

// TestOpenAPIDocsCopy keeps docs/openapi.json equal to the document the
// server embeds and serves.
func TestOpenAPIDocsCopy(t *testing.T) {
	docs, err := os.ReadFile("../../docs/openapi.json")
	require.NoError(t, err)
	assert.True(t, bytes.Equal(docs, query.OpenAPI()),
		"docs/openapi.json differs from projections/query/openapi.json: copy it (cp projections/query/openapi.json docs/openapi.json)")
}

// TestAdminRoutesInOpenAPI runs serve and checks that every route it
// registers on the admin listener is in the OpenAPI document, with its
// method.
func TestAdminRoutesInOpenAPI(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(query.OpenAPI(), &doc))

	clearProviderEnv(t)
	adminPort := natstest.FreePort(t)
	o := serveOptions{
		dataDir: t.TempDir(), listen: fmt.Sprintf("127.0.0.1:%d", natstest.FreePort(t)),
		adminListen: fmt.Sprintf("127.0.0.1:%d", adminPort), replicas: 1, appendTimeout: 5 * time.Second,
		deliveryRetention: ingest.DefaultDeliveryRetention, logLevel: "error",
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, o, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	defer func() { cancel(); <-done }()
	adminURL := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	require.Eventually(t, func() bool {
		resp, err := http.Get(adminURL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond)

	adminMuxesMu.Lock()
	require.NotEmpty(t, adminMuxes)
	patterns := adminMuxes[len(adminMuxes)-1].Patterns()
	adminMuxesMu.Unlock()
	require.Contains(t, patterns, "GET /v1/subscriptions")
	for _, p := range patterns {
		method, path, ok := strings.Cut(p, " ")
		if !ok {
			method, path = "", p
		}
		if path == "/" {
			continue // the catch-all that answers 404 not_found
		}
		ops, found := doc.Paths[path]
		if !assert.True(t, found, "route %q is not in projections/query/openapi.json", p) || method == "" {
			continue
		}
		assert.Contains(t, ops, strings.ToLower(method), "route %q: method missing in projections/query/openapi.json", p)
	}

	// The served document is the embedded one.
	resp, err := http.Get(adminURL + "/v1/openapi.json")
	require.NoError(t, err)
	defer resp.Body.Close()
	served, _ := io.ReadAll(resp.Body)
	assert.JSONEq(t, string(query.OpenAPI()), string(served))
}
