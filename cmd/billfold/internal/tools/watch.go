package tools

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/billfold/billfold/cmd/billfold/internal/cli"
	"github.com/billfold/billfold/domain"
	"github.com/billfold/billfold/projections/feed"
)

// watchIdle is how long the feed may stay silent (the server sends a
// heartbeat every 15 s) before watch reconnects.
const watchIdle = 45 * time.Second

// errWatchDone ends a watch that printed --count changes.
var errWatchDone = errors.New("done")

// Watch is `billfold watch` with its arguments; it returns the exit code.
func Watch(args []string, stdout, stderr io.Writer) int {
	var f cli.Flags
	var from string
	var count int
	fs := cli.NewFlagSet("watch", stderr)
	f.Register(fs)
	fs.StringVar(&from, "from", "", "start: every change the feed holds; a position: the changes after it; default: new changes only")
	fs.IntVar(&count, "count", 0, "exit after this many changes (0: follow until interrupted)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: billfold watch [customers|subscriptions|orders|wallets] [--from start|<position>] [-o table|json] [--server URL]")
		fs.PrintDefaults()
	}
	pos, err := cli.ParseInterleaved(fs, args)
	if err != nil {
		return 2
	}
	if len(pos) > 1 || f.Output != "table" && f.Output != "json" {
		fs.Usage()
		return 2
	}
	w := &watcher{server: strings.TrimRight(f.Server, "/"), json: f.Output == "json", count: count, out: stdout}
	if len(pos) == 1 {
		w.projection = pos[0]
	}
	switch {
	case from == "start":
		w.fromStart = true
	case from != "":
		if _, err := strconv.ParseUint(from, 10, 64); err != nil {
			fmt.Fprintf(stderr, "billfold watch: --from %q: want start or a feed position\n", from)
			return 2
		}
		w.lastID = from
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := w.run(ctx, stderr); err != nil && !errors.Is(err, errWatchDone) && ctx.Err() == nil {
		return cli.Fail(stderr, "watch", err)
	}
	return 0
}

// watcher follows GET /v1/changes, reconnecting after the last id it saw.
type watcher struct {
	server     string
	projection string
	fromStart  bool
	lastID     string
	json       bool
	count      int
	printed    int
	out        io.Writer
}

// run follows the feed until ctx ends, the count is reached, or the server
// refuses the request (a 4xx answer: retrying cannot help).
func (w *watcher) run(ctx context.Context, stderr io.Writer) error {
	wait := 500 * time.Millisecond
	for {
		err := w.follow(ctx)
		var api *cli.APIError
		switch {
		case errors.Is(err, errWatchDone) || ctx.Err() != nil:
			return err
		case errors.As(err, &api) && api.Status >= 400 && api.Status < 500:
			return err
		}
		if err == nil {
			err = errors.New("connection closed")
		}
		fmt.Fprintf(stderr, "billfold watch: %v; reconnecting after position %q\n", err, w.lastID)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, 10*time.Second)
	}
}

// follow reads one connection of the feed.
func (w *watcher) follow(ctx context.Context) error {
	v := url.Values{}
	if w.projection != "" {
		v.Set("projection", w.projection)
	}
	if w.fromStart && w.lastID == "" {
		v.Set("from", "start")
	}
	u := w.server + "/v1/changes"
	if len(v) > 0 {
		u += "?" + v.Encode()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if w.lastID != "" {
		req.Header.Set("Last-Event-ID", w.lastID)
	}
	if tok := os.Getenv("BILLFOLD_API_TOKEN"); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e := &cli.APIError{Status: resp.StatusCode}
		body, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(body, &e.Body)
		return e
	}
	// A connection that stays silent past the heartbeats is dead.
	idle := time.AfterFunc(watchIdle, cancel)
	defer idle.Stop()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 16<<20)
	var id, data string
	for sc.Scan() {
		idle.Reset(watchIdle)
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		case line == "" && id != "":
			if err := w.print(id, data); err != nil {
				return err
			}
			w.lastID, id, data = id, "", ""
			if w.printed++; w.count > 0 && w.printed >= w.count {
				return errWatchDone
			}
		}
	}
	return sc.Err()
}

// print writes one change: a line of text, or a JSON object with its
// position as "seq".
func (w *watcher) print(id, data string) error {
	var c feed.Change
	if err := json.Unmarshal([]byte(data), &c); err != nil {
		return fmt.Errorf("change %s: %w", id, err)
	}
	seq, _ := strconv.ParseUint(id, 10, 64)
	if w.json {
		b, err := json.Marshal(struct {
			Seq uint64 `json:"seq"`
			feed.Change
		}{seq, c})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w.out, "%s\n", b)
		return err
	}
	line := fmt.Sprintf("%s  %-8d %-13s %-9s %-28s v%-4d %s", time.Now().UTC().Format(time.RFC3339), seq, c.Projection, c.Provider, c.ID, c.Version, c.EventID)
	if c.Projection == domain.ProjectionSubscriptions {
		var rec struct {
			State domain.LifecycleState `json:"state"`
		}
		if json.Unmarshal(c.Record, &rec) == nil {
			line += "  " + string(rec.State)
		}
	}
	_, err := fmt.Fprintln(w.out, line)
	return err
}
