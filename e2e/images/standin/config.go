package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// ini is a parsed config file: section -> key -> value. The operator renders `[section]` headers
// and `key = value` lines; `#` and `;` start comment lines.
type ini map[string]map[string]string

func parseINI(r io.Reader) (ini, error) {
	out := ini{}
	section := ""
	scanner := bufio.NewScanner(r)
	for n := 1; scanner.Scan(); n++ {
		line := strings.TrimSpace(scanner.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
			continue
		case strings.HasPrefix(line, "["):
			if !strings.HasSuffix(line, "]") || len(line) < 3 {
				return nil, fmt.Errorf("line %d: malformed section header %q", n, line)
			}
			section = strings.TrimSpace(line[1 : len(line)-1])
			if out[section] == nil {
				out[section] = map[string]string{}
			}
		default:
			key, value, ok := strings.Cut(line, "=")
			key = strings.TrimSpace(key)
			if !ok || key == "" {
				return nil, fmt.Errorf("line %d: expected `key = value`, got %q", n, line)
			}
			if section == "" {
				return nil, fmt.Errorf("line %d: %q is outside any [section]", n, key)
			}
			out[section][key] = strings.TrimSpace(value)
		}
	}
	return out, scanner.Err()
}

// reader collects every problem in a config file so the error names all of them at once.
type reader struct {
	ini  ini
	errs []string
}

func (r *reader) fail(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *reader) has(section string) bool { return r.ini[section] != nil }

func (r *reader) optional(section, key string) (string, bool) {
	v, ok := r.ini[section][key]
	return v, ok
}

func (r *reader) str(section, key string) string {
	v, ok := r.ini[section][key]
	if !ok || v == "" {
		r.fail("[%s] %s is missing", section, key)
	}
	return v
}

func (r *reader) port(section, key string) int {
	v := r.str(section, key)
	if v == "" {
		return 0
	}
	p, err := strconv.Atoi(v)
	if err != nil || p < 1 || p > 65535 {
		r.fail("[%s] %s = %q is not a port number", section, key, v)
	}
	return p
}

func (r *reader) boolean(section, key string, def bool) bool {
	v, ok := r.ini[section][key]
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.fail("[%s] %s = %q is not true or false", section, key, v)
	}
	return b
}

// endpoint is an http(s) URL without path, e.g. `http://fcloud-minio.fcloud.svc:9000`.
func (r *reader) endpoint(section, key string) *url.URL {
	v := r.str(section, key)
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		r.fail("[%s] %s = %q is not an http(s)://host[:port] URL", section, key, v)
		return nil
	}
	return u
}

// env reads a required environment variable.
func (r *reader) env(name string) string {
	v, ok := os.LookupEnv(name)
	if !ok {
		r.fail("environment variable %s is not set", name)
	}
	return v
}

// keyPair reads an access key id and secret from the environment: both or neither (then the
// pod's ambient AWS identity is used).
func (r *reader) keyPair(id, secret string) *staticKeys {
	a, aok := os.LookupEnv(id)
	b, bok := os.LookupEnv(secret)
	switch {
	case aok && bok:
		if a == "" || b == "" {
			r.fail("%s and %s must not be empty", id, secret)
		}
		return &staticKeys{ID: a, Secret: b}
	case aok || bok:
		r.fail("set both %s and %s, or neither to use the pod's AWS identity", id, secret)
	}
	return nil
}

func (r *reader) err(path string) error {
	if len(r.errs) == 0 {
		return nil
	}
	return fmt.Errorf("invalid config %s:\n  %s", path, strings.Join(r.errs, "\n  "))
}

type staticKeys struct{ ID, Secret string }

type cloudConfig struct {
	Name, Hostname string
}

type databaseConfig struct {
	Host     string
	Port     int
	Name     string
	User     string
	Password string
	// TLS is the optional `tls` key (the operator does not render it): false, true,
	// skip-verify or preferred (the default: TLS when the server offers it).
	TLS string
}

type metadataConfig struct {
	Endpoint    *url.URL
	Region      string
	TablePrefix string
	Keys        *staticKeys
}

type objectStoreConfig struct {
	Type string // "s3" or "filesystem"
	// s3
	Endpoint     *url.URL
	Region       string
	Bucket       string
	PathStyle    bool
	CreateBucket bool
	Keys         *staticKeys
	// filesystem
	Path string
}

type masterConfig struct {
	Cloud       cloudConfig
	ListenPort  int
	Database    databaseConfig
	Metadata    metadataConfig
	ObjectStore objectStoreConfig
}

type nodeConfig struct {
	Cloud         cloudConfig
	ListenPort    int
	DataDir       string
	MasterAddress string
	Metadata      metadataConfig
	ObjectStore   objectStoreConfig
	Index         int
	Name          string
	Address       string
}

func load(path string) (*reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read config: %w", err)
	}
	defer f.Close()
	parsed, err := parseINI(f)
	if err != nil {
		return nil, fmt.Errorf("invalid config %s: %w", path, err)
	}
	return &reader{ini: parsed}, nil
}

func (r *reader) cloud() cloudConfig {
	name, _ := r.optional("cloud", "name")
	host, _ := r.optional("cloud", "hostname")
	return cloudConfig{Name: name, Hostname: host}
}

func (r *reader) database() databaseConfig {
	tls, ok := r.optional("database", "tls")
	if !ok {
		tls = "preferred"
	}
	switch tls {
	case "false", "true", "skip-verify", "preferred":
	default:
		r.fail("[database] tls = %q is not one of false, true, skip-verify, preferred", tls)
	}
	return databaseConfig{
		Host:     r.str("database", "host"),
		Port:     r.port("database", "port"),
		Name:     r.str("database", "name"),
		User:     r.env("INSYNC_DB_USER"),
		Password: r.env("INSYNC_DB_PASSWORD"),
		TLS:      tls,
	}
}

func (r *reader) metadata() metadataConfig {
	prefix, _ := r.optional("metadata", "table_prefix")
	return metadataConfig{
		Endpoint:    r.endpoint("metadata", "endpoint"),
		Region:      r.str("metadata", "region"),
		TablePrefix: prefix,
		Keys:        r.keyPair("INSYNC_METADATA_ACCESS_KEY_ID", "INSYNC_METADATA_SECRET_ACCESS_KEY"),
	}
}

func (r *reader) objectStore() objectStoreConfig {
	kind := r.str("objectstore", "type")
	switch kind {
	case "s3":
		return objectStoreConfig{
			Type:         kind,
			Endpoint:     r.endpoint("objectstore", "endpoint"),
			Region:       r.str("objectstore", "region"),
			Bucket:       r.str("objectstore", "bucket"),
			PathStyle:    r.boolean("objectstore", "path_style", false),
			CreateBucket: r.boolean("objectstore", "create_bucket", false),
			Keys: r.keyPair("INSYNC_OBJECTSTORE_ACCESS_KEY_ID",
				"INSYNC_OBJECTSTORE_SECRET_ACCESS_KEY"),
		}
	case "filesystem":
		return objectStoreConfig{Type: kind, Path: r.str("objectstore", "path")}
	case "":
		return objectStoreConfig{}
	default:
		r.fail("[objectstore] type = %q is not s3 or filesystem", kind)
		return objectStoreConfig{}
	}
}

func loadMaster(path string) (*masterConfig, error) {
	r, err := load(path)
	if err != nil {
		return nil, err
	}
	c := &masterConfig{
		Cloud:       r.cloud(),
		ListenPort:  r.port("master", "listen_port"),
		Database:    r.database(),
		Metadata:    r.metadata(),
		ObjectStore: r.objectStore(),
	}
	return c, r.err(path)
}

func loadNode(path string) (*nodeConfig, error) {
	r, err := load(path)
	if err != nil {
		return nil, err
	}
	c := &nodeConfig{
		Cloud:         r.cloud(),
		ListenPort:    r.port("node", "listen_port"),
		DataDir:       r.str("node", "data_dir"),
		MasterAddress: r.str("master", "address"),
		Metadata:      r.metadata(),
		ObjectStore:   r.objectStore(),
		Name:          os.Getenv("INSYNC_NODE_NAME"),
		Address:       os.Getenv("INSYNC_NODE_ADDRESS"),
	}
	if c.MasterAddress != "" {
		if _, _, err := net.SplitHostPort(c.MasterAddress); err != nil {
			r.fail("[master] address = %q is not host:port", c.MasterAddress)
		}
	}
	if idx, ok := os.LookupEnv("INSYNC_NODE_INDEX"); !ok {
		r.fail("environment variable INSYNC_NODE_INDEX is not set")
	} else if n, err := strconv.Atoi(idx); err != nil || n < 0 {
		r.fail("INSYNC_NODE_INDEX = %q is not a non-negative integer", idx)
	} else {
		c.Index = n
	}
	return c, r.err(path)
}
