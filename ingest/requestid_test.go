package ingest

import (
	"net/http"
	"testing"
)

// FuzzRequestID feeds arbitrary X-Request-Id values to requestID, whose
// answer goes into logs, the delivery log and the journal's headers: no
// panic, the sender's value is kept only when it is a sane token, and the
// id is always one (1-128 of A-Z a-z 0-9 - _ . :).
func FuzzRequestID(f *testing.F) {
	for _, s := range []string{"req_1", "", "a b", "x\r\nInjected: 1", "\xff\xfe", "ok:1.2-3_4", string(make([]byte, 129))} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sent string) {
		r := &http.Request{Header: http.Header{"X-Request-Id": {sent}}}
		got := requestID(r)
		if !saneRequestID(got) {
			t.Fatalf("request id %q is not a sane token", got)
		}
		if saneRequestID(sent) != (got == sent) {
			t.Fatalf("sent %q, got %q", sent, got)
		}
	})
}
