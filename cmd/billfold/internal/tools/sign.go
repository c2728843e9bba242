package tools

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/billfold/billfold/cmd/billfold/internal/cli"
	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/ingest/samples"
)

// signFlags are the flags sign and send share.
type signFlags struct {
	provider string
	secret   string
	file     string
	typ      string
	endpoint string
	output   string
	list     bool
}

func (f *signFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.provider, "provider", "stripe", "provider whose scheme signs the delivery")
	fs.StringVar(&f.secret, "secret", "", "signing secret (default: the provider's environment variable, e.g. STRIPE_WEBHOOK_SECRET; Braintree: public_key:private_key)")
	fs.StringVar(&f.file, "file", "", "the event body to sign, as a file ('-' for stdin)")
	fs.StringVar(&f.typ, "type", "", "sign a built-in sample event of this type instead of --file")
	fs.StringVar(&f.endpoint, "endpoint", "", "endpoint name (default: the provider's name)")
	fs.StringVar(&f.output, "o", "table", "output: table or json")
	fs.BoolVar(&f.list, "list-samples", false, "list the built-in sample event types and exit")
}

// build returns the signed delivery the flags describe.
func (f *signFlags) build() (samples.Signed, error) {
	provider := domain.Provider(f.provider)
	secret, envName := f.secret, strings.ToUpper(f.provider)+"_WEBHOOK_SECRET"
	if provider == domain.Braintree {
		envName = "BRAINTREE_PUBLIC_KEY and BRAINTREE_PRIVATE_KEY"
		if pub, priv := firstSecret(os.Getenv("BRAINTREE_PUBLIC_KEY")), firstSecret(os.Getenv("BRAINTREE_PRIVATE_KEY")); secret == "" && pub != "" && priv != "" {
			secret = pub + ":" + priv
		}
	}
	if secret == "" {
		secret = firstSecret(os.Getenv(envName))
	}
	if secret == "" {
		return samples.Signed{}, fmt.Errorf("no secret: pass --secret or set %s", envName)
	}
	var body []byte
	var err error
	switch {
	case f.file == "-":
		body, err = io.ReadAll(os.Stdin)
	case f.file != "":
		body, err = os.ReadFile(f.file)
	case f.typ != "":
		body, err = samples.Sample(provider, f.typ, time.Now())
	default:
		return samples.Signed{}, fmt.Errorf("pass --file or --type (billfold sign --list-samples lists the types)")
	}
	if err != nil {
		return samples.Signed{}, err
	}
	return samples.Sign(provider, secret, body, time.Now())
}

func firstSecret(list string) string {
	if s := cli.SplitList(list); len(s) > 0 {
		return s[0]
	}
	return ""
}

func (f *signFlags) endpointName() string {
	if f.endpoint != "" {
		return f.endpoint
	}
	return f.provider
}

func listSamples(w io.Writer) {
	types := samples.Types()
	providers := make([]string, 0, len(types))
	for p := range types {
		providers = append(providers, string(p))
	}
	sort.Strings(providers)
	for _, p := range providers {
		for _, t := range types[domain.Provider(p)] {
			fmt.Fprintf(w, "%-10s %s\n", p, t)
		}
	}
}

// signedDelivery parses the flags sign and send share and signs the
// delivery they describe, with the URL it goes to. When ok is false the
// command is done (--list, or a bad flag or sample) with exit code code.
func signedDelivery(cmd, serverUsage string, args []string, stdout, stderr io.Writer) (f signFlags, url string, signed samples.Signed, code int, ok bool) {
	server := "http://127.0.0.1:8080"
	fs := cli.NewFlagSet(cmd, stderr)
	f.register(fs)
	fs.StringVar(&server, "server", server, serverUsage)
	if err := cli.ParseFlags(fs, args); err != nil {
		return f, "", signed, 2, false
	}
	if f.list {
		listSamples(stdout)
		return f, "", signed, 0, false
	}
	signed, err := f.build()
	if err != nil {
		fmt.Fprintf(stderr, "billfold %s: %v\n", cmd, err)
		return f, "", signed, 1, false
	}
	return f, strings.TrimRight(server, "/") + "/webhooks/" + f.endpointName(), signed, 0, true
}

// Sign is `billfold sign` with its arguments; it returns the exit code.
func Sign(args []string, stdout, stderr io.Writer) int {
	f, url, signed, code, ok := signedDelivery("sign", "public listener URL used in the printed curl command", args, stdout, stderr)
	if !ok {
		return code
	}
	curl := curlCommand(url, signed)
	if f.output == "json" {
		return cli.WriteJSON(stdout, map[string]any{"url": url, "headers": signed.Headers, "body": string(signed.Body), "curl": curl})
	}
	for _, k := range slices.Sorted(maps.Keys(signed.Headers)) {
		fmt.Fprintf(stdout, "%s: %s\n", k, signed.Headers[k])
	}
	fmt.Fprintf(stdout, "\n%s\n", curl)
	return 0
}

// Send is `billfold send` with its arguments; it returns the exit code.
func Send(args []string, stdout, stderr io.Writer) int {
	f, url, signed, code, ok := signedDelivery("send", "the public listener's URL", args, stdout, stderr)
	if !ok {
		return code
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(signed.Body))
	if err != nil {
		fmt.Fprintln(stderr, "billfold send:", err)
		return 1
	}
	for k, v := range signed.Headers {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "billfold send:", err)
		return 1
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if f.output == "json" {
		cli.WriteJSON(stdout, map[string]any{"url": url, "status": resp.StatusCode, "request_id": resp.Header.Get("X-Request-Id"), "answer": json.RawMessage(orNull(answer))})
	} else {
		fmt.Fprintf(stdout, "%s %s\nrequest id: %s\n%s\n", resp.Proto, resp.Status, resp.Header.Get("X-Request-Id"), strings.TrimSpace(string(answer)))
	}
	if resp.StatusCode/100 != 2 {
		return 1
	}
	return 0
}

func orNull(b []byte) []byte {
	if json.Valid(b) {
		return b
	}
	q, _ := json.Marshal(string(b))
	return q
}

// curlCommand is a ready-to-paste curl delivering signed to url.
func curlCommand(url string, signed samples.Signed) string {
	var b strings.Builder
	b.WriteString("curl -sS -X POST " + shellQuote(url))
	for _, k := range slices.Sorted(maps.Keys(signed.Headers)) {
		b.WriteString(" \\\n  -H " + shellQuote(k+": "+signed.Headers[k]))
	}
	b.WriteString(" \\\n  --data-binary " + shellQuote(string(signed.Body)))
	return b.String()
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
