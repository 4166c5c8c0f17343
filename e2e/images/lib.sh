# shellcheck shell=bash
# Helpers and recipes of e2e/images/build (sourced). See docs/images.md.
#
# Every cached artefact is named by a key: the sha256 of the text of the functions that make it
# (`declare -f`), the files it copies, the pinned versions and the keys of what it is built on.
# Changing any of those rebuilds it; changing nothing rebuilds nothing.

# ---------------------------------------------------------------------------------------------
# Small utilities

# log, die: the e2e scripts' own
# shellcheck source=e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

sha256() { sha256sum | cut -c1-64; }

# hash_files FILE... : one digest over the names and contents of the files.
hash_files() {
  local f
  for f in "$@"; do
    printf '%s %s\n' "$(sha256sum <"$f" | cut -c1-64)" "${f#"$ROOT"/}"
  done | sha256
}

# tree_files DIR... : files under the dirs (tracked or not, .gitignore respected), sorted.
tree_files() {
  local f
  git -C "$ROOT" ls-files -co --exclude-standard -z -- "$@" | sort -z |
    while IFS= read -r -d '' f; do [[ -f "$ROOT/$f" ]] && printf '%s\n' "$ROOT/$f"; done
}

# fn_text FN... : the source of the named functions, for keys.
fn_text() { declare -f "$@"; }

# Mounts made while building, undone on exit whatever happens.
MOUNTS=()
cleanup_mounts() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}" 2>/dev/null || true
  done
  MOUNTS=()
}
bind_mount() { mount "$@"; MOUNTS+=("${!#}"); }

# ---------------------------------------------------------------------------------------------
# Debian base

# The Debian archive URI for $DEBIAN_SUITE, read from this machine's apt configuration.
debian_mirror() {
  local uri="" f=/etc/apt/sources.list.d/debian.sources
  if [[ -f $f ]]; then
    uri="$(awk -v suite="$DEBIAN_SUITE" '
      BEGIN { RS = ""; FS = "\n" }
      {
        types = ""; uris = ""; suites = ""
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^Types:/) types = " " substr($i, 7) " "
          if ($i ~ /^URIs:/) uris = substr($i, 6)
          if ($i ~ /^Suites:/) suites = " " substr($i, 8) " "
        }
        gsub(/[ \t]+/, " ", types); gsub(/[ \t]+/, " ", suites)
        if (index(types, " deb ") && index(suites, " " suite " ")) {
          n = split(uris, u, /[ \t]+/)
          for (j = 1; j <= n; j++) if (u[j] != "") { print u[j]; exit }
        }
      }' "$f")"
  fi
  if [[ -z $uri && -f /etc/apt/sources.list ]]; then
    uri="$(awk -v suite="$DEBIAN_SUITE" '
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite) { print $i; exit }
      }' /etc/apt/sources.list)"
  fi
  [[ -n $uri ]] || die "no Debian $DEBIAN_SUITE source in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
  printf '%s\n' "$uri"
}

# The host's Debian apt sources (all suites, security included) for the build chroot.
host_apt_sources() {
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    echo /etc/apt/sources.list.d/debian.sources
  elif [[ -f /etc/apt/sources.list ]]; then
    echo /etc/apt/sources.list
  else
    die "no apt sources on this machine"
  fi
}

# make_base_tarball OUT : debootstrap minbase, trimmed, as a tarball.
make_base_tarball() {
  local out=$1 dir mirror
  dir="$WORK/base"
  rm -rf "$dir" && mkdir -p "$dir"
  mirror="$(debian_mirror)"
  log "debootstrap --variant=minbase $DEBIAN_SUITE (log: $LOGS/debootstrap.log)"
  nice -n 10 debootstrap --variant=minbase "$DEBIAN_SUITE" "$dir/rootfs" "$mirror" \
    >"$LOGS/debootstrap.log" 2>&1 || { tail -20 "$LOGS/debootstrap.log" >&2; die "debootstrap failed"; }
  local r="$dir/rootfs"
  # No docs, man pages or translations in anything installed later.
  cat >"$r/etc/dpkg/dpkg.cfg.d/01-insync-e2e-nodoc" <<'EOF'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-exclude=/usr/share/lintian/*
EOF
  cat >"$r/etc/apt/apt.conf.d/01-insync-e2e" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
EOF
  find "$r/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf "$r"/usr/share/{man,info,locale,lintian}/* "$r"/var/cache/apt/archives/*.deb \
    "$r"/var/cache/apt/*.bin "$r"/var/lib/apt/lists/* "$r"/var/log/* "$r"/etc/machine-id \
    "$r"/var/cache/debconf/*-old "$r"/var/lib/dpkg/*-old
  : >"$r/etc/resolv.conf"
  : >"$r/etc/hostname"
  tar --numeric-owner --xattrs -C "$r" -cf "$out.tmp" .
  mv "$out.tmp" "$out"
  rm -rf "$dir"
}

# base_layout : prints the OCI layout (tag "base": one layer, the trimmed minbase) for the Debian
# images, building the tarball and the layout if their keys changed.
base_layout() {
  local key tarball layout
  key="$(printf '%s\n' "base v1" "$DEBIAN_SUITE" "$(fn_text make_base_tarball)" | sha256)"
  tarball="$CACHE_DIR/base/debian-$DEBIAN_SUITE-minbase-${key:0:16}.tar"
  layout="$CACHE_DIR/base/oci-${key:0:16}"
  if [[ ! -f $tarball ]]; then
    mkdir -p "$CACHE_DIR/base"
    rm -f "$CACHE_DIR"/base/debian-*.tar
    make_base_tarball "$tarball"
  fi
  if [[ ! -f $layout/index.json ]]; then
    rm -rf "$CACHE_DIR"/base/oci-* "$WORK/base-bundle"
    umoci init --layout "$layout.tmp" >&2
    umoci new --image "$layout.tmp:base" >&2
    umoci unpack --image "$layout.tmp:base" "$WORK/base-bundle" >&2
    tar --numeric-owner --xattrs -C "$WORK/base-bundle/rootfs" -xpf "$tarball"
    umoci repack --history.created_by "debootstrap --variant=minbase $DEBIAN_SUITE (trimmed)" \
      --image "$layout.tmp:base" "$WORK/base-bundle" >&2
    rm -rf "$WORK/base-bundle"
    mv "$layout.tmp" "$layout"
  fi
  printf '%s\n' "$layout"
}

# chroot_apt ROOTFS PACKAGE... : apt-get install into the rootfs with the host's Debian sources,
# an apt cache shared between images, no services started; leaves no lists or caches behind.
chroot_apt() {
  local r=$1; shift
  local apt_cache="$CACHE_DIR/apt"
  mkdir -p "$apt_cache/lists/partial" "$apt_cache/archives/partial"
  local sources saved="$WORK/sources.list.saved"
  sources="$(host_apt_sources)"
  mv "$r/etc/apt/sources.list" "$saved" 2>/dev/null || : >"$saved"
  if [[ $sources == *.sources ]]; then
    cp "$sources" "$r/etc/apt/sources.list.d/insync-e2e-host.sources"
  else
    cp "$sources" "$r/etc/apt/sources.list.d/insync-e2e-host.list"
  fi
  cp /etc/resolv.conf "$r/etc/resolv.conf"
  printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
  chmod 0755 "$r/usr/sbin/policy-rc.d"
  bind_mount -t proc proc "$r/proc"
  bind_mount --bind "$apt_cache/lists" "$r/var/lib/apt/lists"
  bind_mount --bind "$apt_cache/archives" "$r/var/cache/apt/archives"

  local rc=0
  {
    chroot "$r" apt-get update -qq &&
      chroot "$r" env DEBIAN_FRONTEND=noninteractive nice -n 10 \
        apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 "$@"
  } >>"$LOGS/$COMPONENT.log" 2>&1 || rc=$?

  cleanup_mounts
  rm -f "$r/usr/sbin/policy-rc.d" "$r"/etc/apt/sources.list.d/insync-e2e-host.*
  if [[ -s $saved ]]; then mv "$saved" "$r/etc/apt/sources.list"; else rm -f "$saved"; fi
  : >"$r/etc/resolv.conf"
  rm -rf "$r"/var/log/apt/* "$r"/var/log/dpkg.log "$r"/var/log/alternatives.log \
    "$r"/var/cache/debconf/*-old "$r"/var/lib/dpkg/*-old "$r"/var/cache/apt/*.bin \
    "$r"/var/cache/ldconfig/aux-cache
  ((rc == 0)) || { tail -30 "$LOGS/$COMPONENT.log" >&2; die "apt-get install $* failed (log: $LOGS/$COMPONENT.log)"; }
}

# add_user ROOTFS NAME UID HOME : a passwd/group entry (no shell, no password).
add_user() {
  local r=$1 name=$2 uid=$3 home=$4
  grep -q "^$name:" "$r/etc/group" 2>/dev/null || echo "$name:x:$uid:" >>"$r/etc/group"
  grep -q "^$name:" "$r/etc/passwd" 2>/dev/null ||
    echo "$name:x:$uid:$uid:$name:$home:/usr/sbin/nologin" >>"$r/etc/passwd"
  if [[ -f $r/etc/shadow ]] && ! grep -q "^$name:" "$r/etc/shadow"; then
    echo "$name:!:19000::::::" >>"$r/etc/shadow"
  fi
}

# scratch_etc ROOTFS : the files a static binary's image needs (passwd, group, /tmp).
scratch_etc() {
  local r=$1
  mkdir -p "$r/etc" "$r/tmp"
  chmod 1777 "$r/tmp"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' 'insync:x:10001:10001:insync:/tmp:/sbin/nologin' \
    'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' >"$r/etc/passwd"
  printf '%s\n' 'root:x:0:' 'insync:x:10001:' 'nogroup:x:65534:' >"$r/etc/group"
  : >"$r/etc/hosts"
  : >"$r/etc/resolv.conf"
}

# ---------------------------------------------------------------------------------------------
# Binaries

go_env() {
  export GOMODCACHE="$E2E_CACHE/gomodcache" GOCACHE="$E2E_CACHE/gocache" GOFLAGS=-mod=mod \
    GOTOOLCHAIN=local CGO_ENABLED=0
}

# minio_build OUT : the MinIO server, static, from the Go module proxy.
minio_build() {
  local out=$1 mod="$WORK/minio-mod"
  go_env
  rm -rf "$mod" && mkdir -p "$mod"
  log "building MinIO $MINIO_MODULE_VERSION (several minutes cold; log: $LOGS/minio-build.log)"
  (
    cd "$mod"
    GOBIN="$mod/bin" nice -n 15 go install -trimpath -ldflags "-s -w" \
      "$MINIO_MODULE@$MINIO_MODULE_VERSION"
  ) >"$LOGS/minio-build.log" 2>&1 || { tail -20 "$LOGS/minio-build.log" >&2; die "MinIO build failed"; }
  mv "$mod/bin/minio" "$out"
  rm -rf "$mod"
}

minio_binary() {
  local key out
  key="$(printf '%s\n' "minio v1" "$MINIO_MODULE@$MINIO_MODULE_VERSION" "$(go env GOVERSION)" \
    "$(fn_text minio_build go_env)" | sha256)"
  out="$CACHE_DIR/bin/minio-${key:0:16}"
  if [[ ! -x $out ]]; then
    mkdir -p "$CACHE_DIR/bin"
    rm -f "$CACHE_DIR"/bin/minio-*
    minio_build "$out"
  fi
  printf '%s\n' "$out"
}

# The operator is built from the committed tree (HEAD) by default, so that work in progress in
# the working tree neither breaks nor silently enters the image; INSYNC_E2E_OPERATOR_SOURCE=worktree
# builds the working tree instead.
operator_source_hash() {
  if [[ ${INSYNC_E2E_OPERATOR_SOURCE:-head} == worktree ]]; then
    local files
    mapfile -t files < <(tree_files Cargo.toml Cargo.lock operator)
    echo "worktree $(hash_files "${files[@]}")"
  else
    echo "head $(git -C "$ROOT" rev-parse HEAD:Cargo.toml HEAD:Cargo.lock HEAD:operator | sha256)"
  fi
}

# keep_newest FILE... : deletes all but the KEEP_BUILDS (3) most recently written of FILE...
# Several checkouts (worktrees, a CI clone) share this cache and build from different sources:
# deleting every other build made them rebuild each other's operator in turn.
keep_newest() {
  local keep="${KEEP_BUILDS:-3}"
  # shellcheck disable=SC2012 # ls -t for the write times; the names are ours (prefix + hex key)
  ls -1t -- "$@" 2>/dev/null | tail -n +"$((keep + 1))" | while IFS= read -r old; do rm -f -- "$old"; done
}

# The cargo profile of the image's operator binary: `dev` unless INSYNC_E2E_OPERATOR_PROFILE says
# otherwise. A cold debug build takes half the time of a release build (measured:
# docs/benchmarks.md), and it is the build `make test` and `make e2e` make anyway, so in place
# nothing compiles twice. `release` for figures that time the operator or its Jobs.
operator_profile() { echo "${INSYNC_E2E_OPERATOR_PROFILE:-dev}"; }

# profile_dir PROFILE : where cargo puts that profile's binaries under the target dir.
profile_dir() {
  case $1 in
    dev | test) echo debug ;;
    bench) echo release ;;
    *) echo "$1" ;;
  esac
}

# operator_tree_is_head : whether the working tree's manifests, Cargo.lock and operator/ are
# HEAD's (nothing modified, staged or untracked), so that building in place builds HEAD.
operator_tree_is_head() {
  [[ -z "$(git -C "$ROOT" status --porcelain --untracked-files=all -- '*Cargo.toml' Cargo.lock operator)" ]]
}

# operator_binary : the operator for the host (glibc) target, built with operator_profile.
operator_binary() {
  local key out src dir="$ROOT" profile
  profile="$(operator_profile)"
  src="$(operator_source_hash)"
  key="$(printf '%s\n' "operator v2" "$src" "profile $profile" "$(rustc --version)" | sha256)"
  out="$CACHE_DIR/bin/insync-operator-${key:0:16}"
  if [[ ! -x $out ]]; then
    local target="${CARGO_TARGET_DIR:-$HOME/.cache/insync-operator/target}"
    # In place when the tree is HEAD's (a fresh clone, CI): then the build is the checkout's own
    # (with `dev`, the one `make test` and `make e2e` make for their tests).
    if [[ $src == head* ]] && ! operator_tree_is_head; then
      dir="$WORK/operator-src"
      rm -rf "$dir" && mkdir -p "$dir"
      # -m: the files get the time of extraction, not the commit's; with the commit's (older
      # than the last build in this fixed directory) cargo would take them as unchanged
      git -C "$ROOT" archive HEAD | tar -x -m -C "$dir"
      # A target dir of its own: HEAD's build must not replace the working tree's artefacts
      # (the e2e tests run target/debug/insync-operator, the benchmarks target/release/...).
      target="$target/e2e-head"
    fi
    log "cargo build --profile $profile -p insync-operator: ${src%% *} in $dir, target $target (minutes cold; log: $LOGS/operator-build.log)"
    (cd "$dir" && CARGO_TARGET_DIR="$target" nice -n 15 cargo build --locked --profile "$profile" \
      -p insync-operator --bin insync-operator) >"$LOGS/operator-build.log" 2>&1 ||
      { tail -30 "$LOGS/operator-build.log" >&2; die "operator build failed"; }
    [[ "$(operator_source_hash)" == "$src" ]] ||
      log "warning: operator sources changed during the build; the next run rebuilds"
    mkdir -p "$CACHE_DIR/bin"
    cp "$target/$(profile_dir "$profile")/insync-operator" "$out.tmp" && mv "$out.tmp" "$out"
    keep_newest "$CACHE_DIR"/bin/insync-operator-????????????????
    if [[ $dir != "$ROOT" ]]; then rm -rf "$dir"; fi
  fi
  printf '%s\n' "$out"
}

# standin_binary : e2e/images/standin/build.sh OUT, cached by the stand-in's source tree.
standin_binary() {
  local key out files script="$HERE/standin/build.sh"
  mapfile -t files < <(tree_files e2e/images/standin)
  key="$(printf '%s\n' "standin v1" "$(hash_files "${files[@]}")" "$(go env GOVERSION)" | sha256)"
  out="$CACHE_DIR/bin/standin-${key:0:16}"
  if [[ ! -x $out ]]; then
    mkdir -p "$CACHE_DIR/bin"
    rm -f "$CACHE_DIR"/bin/standin-*
    log "building the stand-in (log: $LOGS/standin-build.log)"
    nice -n 10 bash "$script" "$out.tmp" >"$LOGS/standin-build.log" 2>&1 ||
      { tail -20 "$LOGS/standin-build.log" >&2; die "stand-in build failed"; }
    if ldd "$out.tmp" >/dev/null 2>&1; then die "the stand-in binary is not static"; fi
    mv "$out.tmp" "$out"
  fi
  printf '%s\n' "$out"
}

# ---------------------------------------------------------------------------------------------
# Recipes: recipe_<component> ROOTFS modifies the unpacked rootfs; config_<component> prints
# umoci config flags, one per line.

recipe_mysql() {
  local r=$1
  add_user "$r" mysql 999 /nonexistent
  chroot_apt "$r" "mariadb-server=$MARIADB_VERSION" "mariadb-client=$MARIADB_VERSION"
  # The package initialised /var/lib/mysql; the entrypoint does that from the env instead.
  rm -rf "$r"/var/lib/mysql/* "$r"/var/log/mysql/*
  install -m 0755 "$HERE/mysql/entrypoint.sh" "$r/usr/local/bin/docker-entrypoint.sh"
  install -m 0644 "$HERE/mysql/99-container.cnf" "$r/etc/mysql/mariadb.conf.d/99-container.cnf"
  mkdir -p "$r/var/lib/mysql" "$r/run/mysqld" "$r/docker-entrypoint-initdb.d"
  chown 999:999 "$r/var/lib/mysql" "$r/run/mysqld"
  chmod 0750 "$r/var/lib/mysql"
  chroot "$r" mariadbd --version >/dev/null
  chroot "$r" mysql --version >/dev/null
}
config_mysql() {
  printf '%s\n' --config.user=999:999 --config.entrypoint=docker-entrypoint.sh \
    --config.cmd=mariadbd --config.exposedports=3306/tcp
}

recipe_haproxy() {
  local r=$1
  chroot_apt "$r" "haproxy=$HAPROXY_VERSION"
  add_user "$r" insync 10001 /tmp
  install -m 0755 "$HERE/haproxy/entrypoint.sh" "$r/usr/local/bin/docker-entrypoint.sh"
  mkdir -p "$r/usr/local/etc/haproxy"
  install -m 0644 "$HERE/haproxy/haproxy.cfg" "$r/usr/local/etc/haproxy/haproxy.cfg"
  chroot "$r" haproxy -c -f /usr/local/etc/haproxy/haproxy.cfg >/dev/null
}
config_haproxy() {
  printf '%s\n' --config.user=10001:10001 --config.entrypoint=docker-entrypoint.sh \
    --config.cmd=haproxy --config.cmd=-f --config.cmd=/usr/local/etc/haproxy/haproxy.cfg \
    --config.exposedports=8443/tcp --config.exposedports=6061/tcp --config.exposedports=8404/tcp
}

recipe_bynamo() {
  local r=$1 app="$1/opt/bynamo"
  # ca-certificates: Debian's node loads the system store and warns at start without it.
  chroot_apt "$r" "nodejs=$NODEJS_VERSION" "ca-certificates=$CA_CERTIFICATES_VERSION"
  add_user "$r" insync 10001 /tmp
  mkdir -p "$app"
  cp "$HERE/bynamo/package.json" "$HERE/bynamo/package-lock.json" "$app/"
  # Pure JS plus classic-level's N-API prebuilds (built for any Node >= 18), so no compiler.
  (cd "$app" && npm_config_cache="$E2E_CACHE/npm" npm ci --omit=dev --ignore-scripts --no-audit \
    --no-fund --loglevel=error) >>"$LOGS/$COMPONENT.log" 2>&1 || die "npm ci failed (log: $LOGS/$COMPONENT.log)"
  find "$app/node_modules/classic-level/prebuilds" -mindepth 1 -maxdepth 1 -not -name linux-x64 \
    -exec rm -rf {} +
  install -m 0644 "$HERE/bynamo/entrypoint.js" "$app/entrypoint.js"
  chown -R 0:0 "$app"
  mkdir -p "$r/data"
  chown 10001:10001 "$r/data"
  # Debian's node must load dynalite and the LevelDB binding.
  chroot "$r" node -e 'require("/opt/bynamo/node_modules/classic-level"); require("/opt/bynamo/node_modules/dynalite")'
}
config_bynamo() {
  printf '%s\n' --config.user=10001:10001 --config.entrypoint=node \
    --config.entrypoint=/opt/bynamo/entrypoint.js --config.workingdir=/opt/bynamo \
    --config.env=NODE_ENV=production --config.env=BYNAMO_PORT=8000 \
    --config.env=BYNAMO_DATA_DIR=/data --config.exposedports=8000/tcp
}

recipe_operator() {
  local r=$1
  chroot_apt "$r" "ca-certificates=$CA_CERTIFICATES_VERSION"
  add_user "$r" nonroot 65532 /home/nonroot
  mkdir -p "$r/home/nonroot"
  chown 65532:65532 "$r/home/nonroot"
  install -m 0755 "$OPERATOR_BIN" "$r/insync-operator"
  # Every shared library resolves in the image.
  if chroot "$r" ldd /insync-operator | grep -q 'not found'; then
    die "the operator binary needs libraries the image lacks"
  fi
}
config_operator() {
  printf '%s\n' --config.user=65532:65532 --config.entrypoint=/insync-operator --config.cmd=run \
    --config.workingdir=/home/nonroot
}

recipe_minio() {
  local r=$1
  scratch_etc "$r"
  mkdir -p "$r/usr/bin" "$r/data"
  chown 10001:10001 "$r/data"
  install -m 0755 "$MINIO_BIN" "$r/usr/bin/minio"
}
config_minio() {
  printf '%s\n' --config.user=10001:10001 --config.entrypoint=/usr/bin/minio \
    --config.cmd=server --config.cmd=/data --config.env=HOME=/tmp \
    --config.exposedports=9000/tcp
}

recipe_standin() {
  local r=$1
  scratch_etc "$r"
  mkdir -p "$r/usr/local/bin" "$r/etc/inSyncCloud"
  install -m 0755 "$STANDIN_BIN" "$r/usr/local/bin/standin"
}
recipe_cloudmaster() { recipe_standin "$@"; }
recipe_node() { recipe_standin "$@"; }
config_cloudmaster() {
  printf '%s\n' --config.user=10001:10001 --config.entrypoint=/usr/local/bin/standin \
    --config.entrypoint=cloudmaster --config.env=HOME=/tmp --config.exposedports=8443/tcp
}
config_node() {
  printf '%s\n' --config.user=10001:10001 --config.entrypoint=/usr/local/bin/standin \
    --config.entrypoint=node --config.env=HOME=/tmp --config.exposedports=6061/tcp
}

# ---------------------------------------------------------------------------------------------
# Assembly

# assemble COMPONENT REPOSITORY BASE(debian|scratch) KEY TAG... : the OCI archive
# $CACHE_DIR/COMPONENT-KEY.tar holding REPOSITORY:TAG for every tag (one shared layer set, a
# config per tag that differs in INSYNC_VERSION), and COMPONENT-KEY.refs ("ref digest" lines).
assemble() {
  local comp=$1 repo=$2 base=$3 key=$4; shift 4
  local w="$WORK/$comp" oci bundle out="$CACHE_DIR/$comp-${key:0:16}"
  oci="$w/oci"; bundle="$w/bundle"
  rm -rf "$w" && mkdir -p "$w"
  if [[ $base == debian ]]; then
    cp -al "$BASE_LAYOUT" "$oci"
  else
    umoci init --layout "$oci" >&2
    umoci new --image "$oci:base" >&2
  fi
  umoci unpack --image "$oci:base" "$bundle" >&2
  "recipe_$comp" "$bundle/rootfs"
  umoci repack --history.created_by "e2e/images/build $comp" --image "$oci:build" "$bundle" >&2
  rm -rf "$bundle"

  local -a flags
  mapfile -t flags < <("config_$comp")
  umoci config --image "$oci:build" --history.created_by "e2e/images/build $comp (config)" \
    --os linux --architecture amd64 \
    --config.env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.label=org.opencontainers.image.title="$comp" \
    --config.label=dev.insync.e2e.key="$key" \
    "${flags[@]}" >&2
  local tag
  for tag in "$@"; do
    umoci config --image "$oci:build" --tag "$tag" --history.created_by "tag $tag" \
      --config.env=INSYNC_VERSION="$tag" --config.env=IMAGE_TAG="$tag" \
      --config.label=org.opencontainers.image.version="$tag" >&2
  done
  umoci rm --image "$oci:build" >&2
  umoci rm --image "$oci:base" >&2 2>/dev/null || true
  umoci gc --layout "$oci" >&2

  jq --arg repo "$repo" '.manifests |= map(.annotations["io.containerd.image.name"] =
      ($repo + ":" + .annotations["org.opencontainers.image.ref.name"]))' \
    "$oci/index.json" >"$oci/index.json.tmp"
  mv "$oci/index.json.tmp" "$oci/index.json"
  jq -r '.manifests[] | .annotations["io.containerd.image.name"] + " " + .digest' \
    "$oci/index.json" >"$out.refs.tmp"
  tar --sort=name --numeric-owner -C "$oci" -cf "$out.tar.tmp" oci-layout index.json blobs
  rm -f "$CACHE_DIR/$comp"-????????????????.tar "$CACHE_DIR/$comp"-????????????????.refs
  mv "$out.tar.tmp" "$out.tar"
  mv "$out.refs.tmp" "$out.refs"
  ln -sfn "$(basename "$out.tar")" "$CACHE_DIR/$comp.tar"
  rm -rf "$w"
}
