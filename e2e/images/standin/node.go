package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
)

const nodeConfigPath = "/etc/inSyncStorage/storage.conf"

type node struct {
	cfg    *nodeConfig
	health *health
	meta   *dynamo
	objs   objectStore
}

type nodeHealth struct {
	Role        string `json:"role"`
	Index       int    `json:"index"`
	Name        string `json:"name"`
	Hostname    string `json:"hostname"`
	Metadata    string `json:"metadata"`
	Objectstore string `json:"objectstore"`
	Datadir     string `json:"datadir"`
	// Master is informational: a node is ready without the CloudMaster.
	Master  string `json:"master"`
	Version string `json:"version"`
}

type nodeMarker struct {
	Datadir     *string           `json:"datadir"`
	Objectstore *string           `json:"objectstore"`
	Errors      map[string]string `json:"errors,omitempty"`
}

type nodeKeys struct {
	Datadir     []string          `json:"datadir"`
	Objectstore []string          `json:"objectstore"`
	Errors      map[string]string `json:"errors,omitempty"`
}

func runNode(ctx context.Context, configPath string, s settings) error {
	cfg, err := loadNode(configPath)
	if err != nil {
		return err
	}
	objs, err := newObjectStore(cfg.ObjectStore)
	if err != nil {
		return err
	}
	n := &node{cfg: cfg, meta: newDynamo(cfg.Metadata), objs: objs}
	n.health = newHealth([]check{
		{name: "metadata", gate: true, fn: n.meta.check},
		{name: "objectstore", gate: true, fn: objs.check},
		{name: "datadir", gate: true, fn: func(context.Context) error { return probeDir(cfg.DataDir) }},
		{name: "master", gate: false, fn: n.checkMaster},
	})
	logf("node %d (%s, %s) %s for cloud %q: data %s, master %s, metadata %s, objectstore %s",
		cfg.Index, cfg.Name, cfg.Address, version(), cfg.Cloud.Name, cfg.DataDir,
		cfg.MasterAddress, cfg.Metadata.Endpoint, describeObjectStore(cfg.ObjectStore))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", n.getHealth)
	mux.HandleFunc("GET /markers", n.listMarkers)
	mux.HandleFunc("GET /markers/{key}", n.getMarker)
	mux.HandleFunc("PUT /markers/{key}", n.putMarker)
	mux.HandleFunc("GET /sleep", sleepHandler)
	return serve(ctx, s, cfg.ListenPort, n.health, mux)
}

func (n *node) checkMaster(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", n.cfg.MasterAddress)
	if err != nil {
		return err
	}
	return conn.Close()
}

func (n *node) getHealth(w http.ResponseWriter, _ *http.Request) {
	status := http.StatusOK
	if !n.health.ok() {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, nodeHealth{
		Role:        "node",
		Index:       n.cfg.Index,
		Name:        n.cfg.Name,
		Hostname:    hostname(),
		Metadata:    n.health.get("metadata"),
		Objectstore: n.health.get("objectstore"),
		Datadir:     n.health.get("datadir"),
		Master:      n.health.get("master"),
		Version:     version(),
	})
}

func (n *node) markerDir() string { return filepath.Join(n.cfg.DataDir, "markers") }

func (n *node) objectPrefix() string { return fmt.Sprintf("nodes/%d/markers/", n.cfg.Index) }

func (n *node) putMarker(w http.ResponseWriter, req *http.Request) {
	key := markerKey(w, req)
	if key == "" {
		return
	}
	value, ok := markerValue(w, req)
	if !ok {
		return
	}
	out := map[string]string{
		"datadir":     result(writeFileAtomic(filepath.Join(n.markerDir(), key), value)),
		"objectstore": result(n.objs.put(req.Context(), n.objectPrefix()+key, value)),
	}
	status := http.StatusOK
	for _, r := range out {
		if r != "ok" {
			status = http.StatusServiceUnavailable
		}
	}
	writeJSON(w, status, out)
}

func (n *node) getMarker(w http.ResponseWriter, req *http.Request) {
	key := markerKey(w, req)
	if key == "" {
		return
	}
	var out nodeMarker
	errs := map[string]string{}
	data, err := os.ReadFile(filepath.Join(n.markerDir(), key))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		errs["datadir"] = err.Error()
	default:
		s := string(data)
		out.Datadir = &s
	}
	obj, err := n.objs.get(req.Context(), n.objectPrefix()+key)
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
	case out.Datadir == nil && out.Objectstore == nil:
		status = http.StatusNotFound
	}
	writeJSON(w, status, out)
}

func (n *node) listMarkers(w http.ResponseWriter, req *http.Request) {
	out := nodeKeys{Datadir: []string{}, Objectstore: []string{}}
	errs := map[string]string{}
	if keys, err := listFiles(n.markerDir()); err != nil {
		errs["datadir"] = err.Error()
	} else {
		out.Datadir = keys
	}
	if keys, err := n.objs.list(req.Context(), n.objectPrefix()); err != nil {
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
