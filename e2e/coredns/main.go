// A CoreDNS with only the plugins the e2e real node needs (see docs/e2e.md, "Real node"):
// the cluster DNS answers cluster.local and the reverse zones from the Kubernetes API and
// nothing else. No forward plugin is compiled in, so no query can ever go upstream.
// Built by e2e/cluster (build_coredns); the version is pinned in go.mod.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

// Execution order, as in CoreDNS's plugin.cfg.
var directives = []string{"bind", "ready", "errors", "log", "cache", "kubernetes"}

func main() {
	if err := dnsserver.SetDirectives(directives); err != nil {
		panic(err)
	}
	coremain.Run()
}
