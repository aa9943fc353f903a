#!/usr/bin/env bash
# govulncheck over the whole module (`make vulncheck`): fails on any
# vulnerability the code can reach, in a dependency or in the standard
# library of the Go that builds it.
#
# The database is the online one (vuln.go.dev) when it answers. Where it is
# unreachable (a machine that only reaches a Go module proxy), the database
# is built locally from the golang.org/x/vulndb module, fetched through the
# module proxy like any other module: its data/osv directory holds every
# report as OSV JSON, and its cmd/indexdb (installed by the Makefile) writes
# the index files govulncheck reads with -db file://. The local database is
# kept under $VULNDB_CACHE, one directory per vulndb version.
#
# Environment: GO, GOVULNCHECK, INDEXDB (tool paths), VULNDB_CACHE (cache
# directory), VULNDB=auto|online|local (default auto), VULNDB_VERSION
# (default latest: the newest reports).
set -euo pipefail
cd "$(dirname "$0")/.."
me=vulncheck
. .ci/lib.sh

: "${GO:=go}" "${VULNDB:=auto}" "${VULNDB_VERSION:=latest}"
: "${GOVULNCHECK:?set GOVULNCHECK to the govulncheck binary}"
: "${INDEXDB:?set INDEXDB to the indexdb binary of golang.org/x/vulndb}"
: "${VULNDB_CACHE:?set VULNDB_CACHE to a cache directory}"

out=$(mktemp)
trap 'rm -f "$out"' EXIT

# scan DB-ARGS...: runs govulncheck, shows its output, returns its status
# (0 none found, 3 vulnerabilities found, other: it could not run).
scan() {
	local rc=0
	"$GOVULNCHECK" "$@" ./... >"$out" 2>&1 || rc=$?
	cat "$out"
	return $rc
}

verdict() {
	case $1 in
	0) log "no reachable vulnerability ($2)" ;;
	3) die "reachable vulnerabilities above ($2): update the module or the Go toolchain (GOTOOLCHAIN in the Makefile)" ;;
	*) die "govulncheck failed with status $1 ($2)" ;;
	esac
}

if [ "$VULNDB" != local ]; then
	rc=0
	scan || rc=$?
	if [ $rc = 0 ] || [ $rc = 3 ] || [ "$VULNDB" = online ] || ! grep -q 'fetching vulnerabilities' "$out"; then
		verdict $rc "online database"
		exit 0
	fi
	log "the online vulnerability database is unreachable; building one from the golang.org/x/vulndb module"
fi

version=$("$GO" list -m -f '{{.Version}}' "golang.org/x/vulndb@$VULNDB_VERSION")
db="$VULNDB_CACHE/$version"
if [ ! -s "$db/index/db.json" ]; then
	"$GO" mod download "golang.org/x/vulndb@$version"
	src=$("$GO" list -m -f '{{.Dir}}' "golang.org/x/vulndb@$version")
	[ -d "$src/data/osv" ] || die "golang.org/x/vulndb@$version has no data/osv directory (looked in $src)"
	rm -rf "$db.tmp"
	mkdir -p "$db.tmp"
	"$INDEXDB" -vulns "$src/data/osv" -out "$db.tmp"
	rm -rf "$db"
	mv "$db.tmp" "$db"
fi
rc=0
scan -db "file://$db" || rc=$?
verdict $rc "local database from golang.org/x/vulndb@$version"
