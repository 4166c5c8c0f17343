package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"sync"
	"time"
)

// checkTimeout bounds one check of one datastore.
const checkTimeout = 5 * time.Second

// drainTimeout bounds how long SIGTERM waits for in-flight requests (Kubernetes' default grace
// period is 30 s).
const drainTimeout = 25 * time.Second

// maxValue bounds a marker's value.
const maxValue = 1 << 20

var keyPattern = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$`)

// check is one dependency the service watches. Gating checks decide readiness: the port opens
// once they all pass and /health answers 503 while one fails.
type check struct {
	name string
	gate bool
	fn   func(ctx context.Context) error
}

// health is the latest result of every check: "ok" or "error: ...".
type health struct {
	checks []check

	mu     sync.RWMutex
	status map[string]string
}

func newHealth(checks []check) *health {
	return &health{checks: checks, status: map[string]string{}}
}

// run checks everything once, in parallel, logs every change and says whether all gating
// checks passed.
func (h *health) run(ctx context.Context) bool {
	results := make([]string, len(h.checks))
	var wg sync.WaitGroup
	for i, c := range h.checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, checkTimeout)
			defer cancel()
			if err := c.fn(cctx); err != nil {
				results[i] = "error: " + err.Error()
			} else {
				results[i] = "ok"
			}
		}()
	}
	wg.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	ok := true
	for i, c := range h.checks {
		if ctx.Err() != nil {
			// Shutting down: a cancelled check says nothing about the datastore.
			return false
		}
		if h.status[c.name] != results[i] {
			logf("%s: %s", c.name, results[i])
			h.status[c.name] = results[i]
		}
		if c.gate && results[i] != "ok" {
			ok = false
		}
	}
	return ok
}

func (h *health) get(name string) string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.status[name]
}

func (h *health) ok() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, c := range h.checks {
		if c.gate && h.status[c.name] != "ok" {
			return false
		}
	}
	return true
}

// settings that tests (and only tests) change, from the environment.
type settings struct {
	interval   time.Duration // INSYNC_STANDIN_CHECK_INTERVAL, default 5s
	listenHost string        // INSYNC_STANDIN_LISTEN_HOST, default all interfaces
	// The image's version is neverReadyVersion: never open the port, so every tcpSocket probe
	// fails while the container keeps running (a release that starts but never turns ready).
	neverReady bool
}

// neverReadyVersion is the e2e never-ready convention (docs/e2e.md): on kwok a stage holds pods
// of this version NotReady; on the real node the stand-in images tagged with it never listen,
// so their readiness probes fail for real.
const neverReadyVersion = "0.0.0-never-ready"

func loadSettings() (settings, error) {
	s := settings{interval: 5 * time.Second, listenHost: os.Getenv("INSYNC_STANDIN_LISTEN_HOST")}
	if v := os.Getenv("INSYNC_STANDIN_CHECK_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return s, fmt.Errorf("INSYNC_STANDIN_CHECK_INTERVAL = %q is not a positive duration", v)
		}
		s.interval = d
	}
	s.neverReady = version() == neverReadyVersion
	return s, nil
}

// serve waits until the gating checks pass, then listens on port and serves handler until ctx
// ends (SIGTERM), re-checking every interval. On SIGTERM it stops accepting, lets in-flight
// requests finish, and returns nil.
func serve(ctx context.Context, s settings, port int, h *health, handler http.Handler) error {
	if s.neverReady {
		logf("version %s: never listening on port %d (a release that never turns ready)", neverReadyVersion, port)
		<-ctx.Done()
		logf("stopping; never listened")
		return nil
	}
	for waiting := false; !h.run(ctx); waiting = true {
		if !waiting {
			logf("waiting for the datastores before listening on port %d", port)
		}
		select {
		case <-ctx.Done():
			logf("stopping before listening")
			return nil
		case <-time.After(s.interval):
		}
	}
	addr := net.JoinHostPort(s.listenHost, strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	logf("all datastores answer; listening on %s", ln.Addr())

	checkCtx, stopChecks := context.WithCancel(context.Background())
	defer stopChecks()
	go func() {
		ticker := time.NewTicker(s.interval)
		defer ticker.Stop()
		for {
			select {
			case <-checkCtx.Done():
				return
			case <-ticker.C:
				h.run(checkCtx)
			}
		}
	}()

	srv := &http.Server{
		Handler:           logRequests(handler),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	logf("signal received: no longer accepting; finishing in-flight requests")
	stopChecks()
	drainCtx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	if err := srv.Shutdown(drainCtx); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	logf("drained; exiting")
	return nil
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, req)
		logf("%s %s %d %s from %s", req.Method, req.URL.RequestURI(), rec.status,
			time.Since(start).Round(time.Microsecond), req.RemoteAddr)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// markerKey returns the request's {key}, or answers 400 and returns "".
func markerKey(w http.ResponseWriter, req *http.Request) string {
	key := req.PathValue("key")
	if !keyPattern.MatchString(key) {
		writeError(w, http.StatusBadRequest,
			"marker keys are 1-128 of A-Z a-z 0-9 . _ - and do not start with a dot")
		return ""
	}
	return key
}

// markerValue reads a PUT body, or answers 413/400 and returns false.
func markerValue(w http.ResponseWriter, req *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxValue))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("values are at most %d bytes", maxValue))
		return nil, false
	case err != nil:
		writeError(w, http.StatusBadRequest, err.Error())
		return nil, false
	}
	return body, true
}

// sleepHandler answers after ?ms= milliseconds (at most 60 s): a slow request for drain tests.
func sleepHandler(w http.ResponseWriter, req *http.Request) {
	ms, err := strconv.Atoi(req.URL.Query().Get("ms"))
	if err != nil || ms < 0 || ms > 60000 {
		writeError(w, http.StatusBadRequest, "ms must be 0..60000")
		return
	}
	select {
	case <-time.After(time.Duration(ms) * time.Millisecond):
		writeJSON(w, http.StatusOK, map[string]int{"slept_ms": ms})
	case <-req.Context().Done():
	}
}

// result is "ok" or "error: ..." for one store's part of a write.
func result(err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return "ok"
}

func version() string {
	if v := os.Getenv("INSYNC_VERSION"); v != "" {
		return v
	}
	return "unknown"
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return h
}
