package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// page is the shape every list answer has.
type page struct {
	Items      []json.RawMessage `json:"items"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

func writePage(items []json.RawMessage, next string) (string, *httptest.ResponseRecorder) {
	rec := httptest.NewRecorder()
	WritePage(rec, items, next)
	return rec.Body.String(), rec
}

func writeJSON(v any) string {
	rec := httptest.NewRecorder()
	WriteJSON(rec, 200, v)
	return rec.Body.String()
}

// A list answer keeps the outer form WriteJSON gives every other answer:
// with items that indenting leaves as they are, the bytes are the same.
func TestWritePageOuterFormIsWriteJSONs(t *testing.T) {
	for _, p := range []page{
		{Items: []json.RawMessage{}},
		{Items: []json.RawMessage{}, NextCursor: "abc"},
		{Items: []json.RawMessage{json.RawMessage(`1`), json.RawMessage(`"two"`)}},
		{Items: []json.RawMessage{json.RawMessage(`{}`), json.RawMessage(`3`)}, NextCursor: "c3RyaXBlCnN1Yl8x"},
		{Items: []json.RawMessage{json.RawMessage(`4`)}, NextCursor: "quote\" and \\ and \n"},
	} {
		got, rec := writePage(p.Items, p.NextCursor)
		assert.Equal(t, writeJSON(p), got)
		assert.Equal(t, 200, rec.Code)
		assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	}
}

// Records are written as they are stored, not re-indented, and the answer
// is the same JSON value WriteJSON would have written.
func TestWritePageItemsVerbatim(t *testing.T) {
	items := []json.RawMessage{
		json.RawMessage(`{"id":"sub_1","items":[{"price":"p<1>","qty":2}],"meta":{"a&b":true}}`),
		json.RawMessage(`{"id":"sub_2","state":"active"}`),
	}
	got, _ := writePage(items, "next")
	for _, it := range items {
		assert.Contains(t, got, "\n    "+string(it))
	}
	var a, b any
	require.NoError(t, json.Unmarshal([]byte(got), &a))
	require.NoError(t, json.Unmarshal([]byte(writeJSON(page{Items: items, NextCursor: "next"})), &b))
	assert.Equal(t, b, a)
	var decoded page
	require.NoError(t, json.Unmarshal([]byte(got), &decoded))
	assert.Equal(t, "next", decoded.NextCursor)
	require.Len(t, decoded.Items, 2)
	assert.JSONEq(t, string(items[0]), string(decoded.Items[0]))
}

// Answers written at once from many handlers (which share the pooled
// buffers) each hold their own items only.
func TestWritePageConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			items := []json.RawMessage{json.RawMessage(fmt.Sprintf(`{"writer":%d,"pad":%q}`, g, strings.Repeat("x", 1000*g)))}
			want := "{\n  \"items\": [\n    " + string(items[0]) + "\n  ],\n  \"next_cursor\": \"" + fmt.Sprint(g) + "\"\n}\n"
			for range 200 {
				got, _ := writePage(items, fmt.Sprint(g))
				if got != want {
					t.Errorf("writer %d: got %.80q", g, got)
					return
				}
			}
		})
	}
	wg.Wait()
}
