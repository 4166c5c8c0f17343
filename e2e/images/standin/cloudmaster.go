package main

import (
	"context"
	"net/http"
)

const masterConfigPath = "/etc/inSyncCloud/cloudmaster.conf"

type master struct {
	cfg    *masterConfig
	health *health
	db     *database
	meta   *dynamo
	objs   objectStore
}

type masterHealth struct {
	Role        string `json:"role"`
	Hostname    string `json:"hostname"`
	Database    string `json:"database"`
	Metadata    string `json:"metadata"`
	Objectstore string `json:"objectstore"`
	Version     string `json:"version"`
}

// masterMarker is what each store holds for one key (null where absent), and read errors.
type masterMarker struct {
	Database    *string           `json:"database"`
	Metadata    *string           `json:"metadata"`
	Objectstore *string           `json:"objectstore"`
	Errors      map[string]string `json:"errors,omitempty"`
}

type masterKeys struct {
	Database    []string          `json:"database"`
	Metadata    []string          `json:"metadata"`
	Objectstore []string          `json:"objectstore"`
	Errors      map[string]string `json:"errors,omitempty"`
}

func runMaster(ctx context.Context, configPath string, s settings) error {
	cfg, err := loadMaster(configPath)
	if err != nil {
		return err
	}
	db, err := newDatabase(cfg.Database)
	if err != nil {
		return err
	}
	defer db.db.Close()
	objs, err := newObjectStore(cfg.ObjectStore)
	if err != nil {
		return err
	}
	m := &master{cfg: cfg, db: db, meta: newDynamo(cfg.Metadata), objs: objs}
	m.health = newHealth([]check{
		{name: "database", gate: true, fn: db.check},
		{name: "metadata", gate: true, fn: m.meta.check},
		{name: "objectstore", gate: true, fn: objs.check},
	})
	logf("cloudmaster %s for cloud %q (%s): database %s:%d/%s, metadata %s, objectstore %s",
		version(), cfg.Cloud.Name, cfg.Cloud.Hostname, cfg.Database.Host, cfg.Database.Port,
		cfg.Database.Name, cfg.Metadata.Endpoint, describeObjectStore(cfg.ObjectStore))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", m.getHealth)
	mux.HandleFunc("GET /markers", m.listMarkers)
	mux.HandleFunc("GET /markers/{key}", m.getMarker)
	mux.HandleFunc("PUT /markers/{key}", m.putMarker)
	mux.HandleFunc("GET /sleep", sleepHandler)
	return serve(ctx, s, cfg.ListenPort, m.health, mux)
}

func describeObjectStore(c objectStoreConfig) string {
	if c.Type == "filesystem" {
		return "directory " + c.Path
	}
	return c.Endpoint.String() + " bucket " + c.Bucket
}

func (m *master) getHealth(w http.ResponseWriter, _ *http.Request) {
	status := http.StatusOK
	if !m.health.ok() {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, masterHealth{
		Role:        "cloudmaster",
		Hostname:    hostname(),
		Database:    m.health.get("database"),
		Metadata:    m.health.get("metadata"),
		Objectstore: m.health.get("objectstore"),
		Version:     version(),
	})
}

func objectKey(key string) string { return "markers/" + key }

// putMarker writes the body into all three stores; 200 when all took it, 503 naming the ones
// that did not.
func (m *master) putMarker(w http.ResponseWriter, req *http.Request) {
	key := markerKey(w, req)
	if key == "" {
		return
	}
	value, ok := markerValue(w, req)
	if !ok {
		return
	}
	ctx := req.Context()
	out := map[string]string{
		"database":    result(m.db.put(ctx, key, string(value))),
		"metadata":    result(m.meta.put(ctx, key, string(value))),
		"objectstore": result(m.objs.put(ctx, objectKey(key), value)),
	}
	status := http.StatusOK
	for _, r := range out {
		if r != "ok" {
			status = http.StatusServiceUnavailable
		}
	}
	writeJSON(w, status, out)
}

func (m *master) getMarker(w http.ResponseWriter, req *http.Request) {
	key := markerKey(w, req)
	if key == "" {
		return
	}
	ctx := req.Context()
	var out masterMarker
	errs := map[string]string{}
	var err error
	if out.Database, err = m.db.get(ctx, key); err != nil {
		errs["database"] = err.Error()
	}
	if out.Metadata, err = m.meta.get(ctx, key); err != nil {
		errs["metadata"] = err.Error()
	}
	obj, err := m.objs.get(ctx, objectKey(key))
	if err != nil {
		errs["objectstore"] = err.Error()
	} else if obj != nil {
		s := string(obj)
		out.Objectstore = &s
	}
	status := http.StatusOK
	switch {
	case len(errs) > 0:
		out.Errors = errs
		status = http.StatusServiceUnavailable
	case out.Database == nil && out.Metadata == nil && out.Objectstore == nil:
		status = http.StatusNotFound
	}
	writeJSON(w, status, out)
}

func (m *master) listMarkers(w http.ResponseWriter, req *http.Request) {
	ctx := req.Context()
	out := masterKeys{Database: []string{}, Metadata: []string{}, Objectstore: []string{}}
	errs := map[string]string{}
	if keys, err := m.db.keys(ctx); err != nil {
		errs["database"] = err.Error()
	} else {
		out.Database = keys
	}
	if keys, err := m.meta.keys(ctx); err != nil {
		errs["metadata"] = err.Error()
	} else {
		out.Metadata = keys
	}
	if keys, err := m.objs.list(ctx, "markers/"); err != nil {
		errs["objectstore"] = err.Error()
	} else {
		out.Objectstore = keys
	}
	status := http.StatusOK
	if len(errs) > 0 {
		out.Errors = errs
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, out)
}
