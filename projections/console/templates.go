package console

import (
	"fmt"
	"html/template"
	"io/fs"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/billfold/billfold/domain"
)

// funcs are the templates' helpers. Links are built from path-escaped
// segments; html/template escapes every value it writes.
var funcs = template.FuncMap{
	"eventURL":   eventURL,
	"subURL":     func(ns, id string) string { return recordURL(domain.KindSubscription, ns, id) },
	"custURL":    func(ns, id string) string { return recordURL(domain.KindCustomer, ns, id) },
	"orderURL":   func(ns, id string) string { return recordURL(domain.KindOrder, ns, id) },
	"walletURL":  func(user string) string { return recordURL(domain.KindWallet, "", user) },
	"recordURL":  recordURL,
	"pathEscape": url.PathEscape,
	// message drops the code a dead letter's message starts with, since
	// the page shows the code beside it.
	"message": func(code domain.Code, msg string) string {
		return strings.TrimPrefix(msg, string(code)+": ")
	},
	"link": link,
	"ts": func(t any) string {
		switch t := t.(type) {
		case time.Time:
			if t.IsZero() {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04:05Z")
		case *time.Time:
			if t == nil || t.IsZero() {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04:05Z")
		}
		return fmt.Sprint(t)
	},
	"dur": func(d time.Duration) string { return d.Round(time.Second).String() },
	"secs": func(s float64) string {
		return (time.Duration(s) * time.Second).Round(time.Second).String()
	},
	"pct": func(done, total uint64) int {
		if total == 0 {
			return 0
		}
		return int(min(100, done*100/total))
	},
	"isProvider": func(kind string) bool { return domain.Provider(kind).Valid() },
	"join":       strings.Join,
	"inc":        func(n int) int { return n + 1 },
	"troubleshooting": func(code domain.Code) string {
		return "docs/troubleshooting.md#" + strings.ToLower(string(code))
	},
	"money": func(amount int64, currency string) string {
		return fmt.Sprintf("%d.%02d %s", amount/100, abs(amount%100), strings.ToUpper(currency))
	},
	"deref": func(b *bool) string {
		if b == nil {
			return "—"
		}
		return fmt.Sprint(*b)
	},
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// link is path with the query kv (name, value, ...) names, leaving out
// empty values. html/template would escape a query string written into an
// href as one value; this one is encoded here, so it is trusted as a URL.
func link(path string, kv ...string) template.URL {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			v.Set(kv[i], kv[i+1])
		}
	}
	if len(v) == 0 {
		return template.URL(path)
	}
	return template.URL(path + "?" + v.Encode())
}

// recordURL is the page of a record of kind: a wallet's is its user's.
func recordURL(kind, ns, id string) string {
	if kind == domain.KindWallet {
		return "/ui/wallets/" + url.PathEscape(id)
	}
	return "/ui/" + kind + "s/" + url.PathEscape(ns) + "/" + url.PathEscape(id)
}

func custPath(ns, id string) string { return recordURL(domain.KindCustomer, ns, id) }

func eventURL(ns, id string) string {
	return "/ui/events/" + url.PathEscape(ns) + "/" + url.PathEscape(id)
}

// parsePages parses each page template with the layout.
func parsePages() (map[string]*template.Template, error) {
	layout, err := template.New("layout").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, name := range names {
		base := strings.TrimSuffix(path.Base(name), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, name)
		if err != nil {
			return nil, err
		}
		pages[base] = t
	}
	return pages, nil
}
