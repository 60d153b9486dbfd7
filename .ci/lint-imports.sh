#!/usr/bin/env bash
# Enforces the import rules of the style guide ("The layout shows the
# architecture"), on non-test code only:
#
#   domain/...       the standard library, github.com/google/uuid and, for the
#                    address and name rules (IDNA2008, PRECIS, NFC),
#                    golang.org/x/net/idna and golang.org/x/text/...
#   commands/...     the standard library, google/uuid and our domain (with
#                    what domain brings: x/net/idna, x/text)
#   projections/...  the standard library, google/uuid, our domain, projections
#                    and github.com/jackc/pgx/v5 (pgx's own dependencies come
#                    along: third-party packages are checked on direct imports),
#                    and what domain brings (x/net/idna, x/text)
#   adapters/X/...   anything but cmd/... and a sibling adapter: an adapter may
#                    import only the adapter packages on its own branch (its
#                    ancestors, such as the port package adapters/eventstore
#                    for adapters/eventstore/postgres, and its descendants)
#   migrations       embed only
#   internal/...     the standard library and google/uuid only: small leaf
#                    helpers (pause, positive, pii) that every package above
#                    may import; internal/test* (testing helpers) only tests
#                    and test-support packages (a name ending in "test") may
#   cmd/...          anything
#
# The check walks the import graph (go list -deps, non-test code) from each
# package through the packages it may import. For domain, commands and
# migrations every package reached must be allowed, as their allowed sets
# depend on nothing else. For projections and adapters third-party packages are
# checked on direct imports only (pgx brings its own dependencies), and no
# package of this module outside the rule may be reached, directly or not.
#
# Prints one line per violation, "pkg imports forbidden-pkg (rule)", and exits
# 1 if there is any. Folders without Go files are simply not checked.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v go >/dev/null 2>&1 || PATH=$PATH:/usr/local/go/bin

mod=$(go list -m)

# The import graph of everything we reach (go list -deps): each package's
# direct imports, and which packages belong to the standard library.
# (Each go list runs in an assignment, so that set -e stops us if it fails.)
graph=$(go list -e -deps -f '{{.ImportPath}}|{{.Standard}}|{{join .Imports " "}}' ./...)
declare -A std=() imports=()
while IFS='|' read -r path is_std imps; do
	[[ $is_std == true ]] && std[$path]=1
	imports[$path]=$imps
done <<<"$graph"

violations=0
report() { # pkg imported rule
	echo "$1 imports $2 ($3)"
	violations=$((violations + 1))
}

# Packages of the module that go list cannot load (syntax errors, imports
# that resolve to nothing): their imports may be incomplete, so fail.
load_errors=$(go list -e -f '{{if .Error}}{{.ImportPath}}: {{printf "%q" .Error}}{{end}}' ./...)
while IFS= read -r line; do
	[[ -n $line ]] || continue
	echo "cannot check $line"
	violations=$((violations + 1))
done <<<"$load_errors"

# rel PATH: sets REL to PATH relative to the module ("domain/x"), "." for the
# module root, or "" when PATH is not ours. (Globals, not $(...): this runs
# for every dependency of every package.)
rel() {
	if [[ $1 == "$mod" ]]; then
		REL=.
	elif [[ $1 == "$mod/"* ]]; then
		REL=${1#"$mod/"}
	else
		REL=
	fi
}

# under A B: A is B or below it (module-relative paths or import paths).
under() { [[ $1 == "$2" || $1 == "$2/"* ]]; }

# text_rules IMP: IMP is one of the libraries that hold the Unicode rules of
# addresses and names (IDNA2008 and UTS #46, PRECIS, normalisation forms).
# They are domain rules, so domain may use them: well-kept libraries of the
# Go project rather than tables of our own (docs/decisions.md, Addresses).
text_rules() { [[ $1 == golang.org/x/net/idna ]] || under "$1" golang.org/x/text; }

# check P IMP: sets RULE to the rule that reaching IMP breaks for the package
# P (module-relative), or "" if none.
check() {
	local p=$1 imp=$2 i
	rel "$imp"
	i=$REL
	RULE=
	# internal/test* link in package testing: only tests and the packages
	# made for them (pgtest, projectionstest, ...: a name ending in "test")
	if [[ $i == internal/test* && ${p##*/} != *test && $p != internal/test* ]]; then
		RULE="only tests and test-support packages (named *test) may import internal/test*"
		return 0
	fi
	case $p in
	domain | domain/*)
		[[ -n ${std[$imp]:-} ]] && return
		under "$imp" github.com/google/uuid && return
		text_rules "$imp" && return
		[[ -n $i ]] && { under "$i" domain || under "$i" internal; } && return
		RULE="domain may import only the standard library, github.com/google/uuid, golang.org/x/net/idna , golang.org/x/text and internal"
		;;
	commands | commands/*)
		[[ -n ${std[$imp]:-} ]] && return
		under "$imp" github.com/google/uuid && return
		text_rules "$imp" && return # through domain
		[[ -n $i ]] && { under "$i" domain || under "$i" commands || under "$i" internal; } && return
		RULE="commands may import only the standard library, github.com/google/uuid , domain and internal"
		;;
	projections | projections/*)
		if [[ -n $i ]]; then
			{ under "$i" domain || under "$i" projections || under "$i" internal; } && return
		else
			[[ -n ${std[$imp]:-} ]] && return
			under "$imp" github.com/google/uuid && return
			under "$imp" github.com/jackc/pgx/v5 && return
			text_rules "$imp" && return # through domain
		fi
		RULE="projections may import only the standard library, github.com/google/uuid, github.com/jackc/pgx/v5, domain, projections and internal"
		;;
	internal | internal/*)
		[[ -n ${std[$imp]:-} || $imp == github.com/google/uuid ]] && return
		RULE="internal may import only the standard library and github.com/google/uuid"
		;;
	migrations | migrations/*)
		[[ $imp == embed ]] && return
		RULE="migrations may import only embed"
		;;
	adapters/*)
		[[ -n $i ]] || return 0 # third-party: each adapter brings its own driver
		if under "$i" cmd; then
			RULE="adapters never import cmd"
		elif under "$i" adapters && ! under "$p" "$i" && ! under "$i" "$p"; then
			RULE="adapters never import a sibling adapter, only their own ancestors and descendants"
		fi
		;;
	esac
	return 0
}

# has_rule P: the module-relative package P has an import rule.
has_rule() {
	case $1 in
	domain | domain/* | commands | commands/* | migrations | migrations/* | internal | internal/* | projections | projections/* | adapters/*) return 0 ;;
	esac
	return 1
}

# For each package of the module with a rule: walk what it reaches, through
# the packages it may import, and report the first forbidden package on each
# path. A forbidden import of an allowed package that breaks that package's
# own rule too is reported there, not again here.
ours=$(go list -e -f '{{.ImportPath}}' ./...)
for pkg in $ours; do
	rel "$pkg"
	p=$REL
	has_rule "$p" || continue # cmd/... may import anything
	case $p in
	domain | domain/* | commands | commands/* | migrations | migrations/* | internal | internal/*) third_party_deps=1 ;;
	*) third_party_deps=0 ;; # projections, adapters: a third party's own dependencies are its business
	esac
	declare -A seen=([$pkg]=1)
	queue=("$pkg")
	while ((${#queue[@]} > 0)); do
		from=${queue[0]}
		queue=("${queue[@]:1}")
		for imp in ${imports[$from]:-}; do
			[[ -z ${seen[$imp]:-} ]] || continue
			seen[$imp]=1
			check "$p" "$imp"
			if [[ -n $RULE ]]; then
				if [[ $from == "$pkg" ]]; then
					report "$pkg" "$imp" "$RULE"
				else
					rule=$RULE
					rel "$from"
					if has_rule "$REL"; then
						check "$REL" "$imp"
						[[ -z $RULE ]] || continue # reported for $from
					fi
					report "$pkg" "$imp" "$rule; through $from"
				fi
				continue
			fi
			[[ -z ${std[$imp]:-} ]] || continue # the standard library imports nothing of interest
			rel "$imp"
			if [[ -n $REL ]] || ((third_party_deps)); then
				queue+=("$imp")
			fi
		done
	done
	unset seen
done

if ((violations > 0)); then
	echo "import rules: $violations violation(s); see the layout table in the style guide" >&2
	exit 1
fi
echo "import rules: ok"
