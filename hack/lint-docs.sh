#!/usr/bin/env bash
# Checks that citations of the design stay within the repository:
#   1. the design is cited as docs/DESIGN.md (a bare DESIGN.md, shared/DESIGN.md
#      or "DESIGN §N" names a file a clone does not have); pages under docs/
#      may also link to it relatively, as ](DESIGN.md...);
#   2. every "docs/DESIGN.md §N" names a section docs/DESIGN.md has (its
#      "## N." and "### N.M" headings);
#   3. no file names a path of the machine it was written on (/work/...).
# It reads the repository's files (tracked, and new ones not ignored), or
# the files given as arguments; DESIGN names another design file (a broken
# copy, to see that each check fails).
set -euo pipefail
cd "$(dirname "$0")/.."

DESIGN=${DESIGN:-docs/DESIGN.md}
readonly SELF=hack/lint-docs.sh

failed=0
fail() {
	echo "lint-docs: FAIL: $*" >&2
	failed=1
}

[[ -r $DESIGN ]] || {
	echo "lint-docs: FAIL: $DESIGN is missing" >&2
	exit 1
}
mapfile -t sections < <(sed -nE 's/^###? ([0-9]+(\.[0-9]+)?)[. ].*/\1/p' "$DESIGN")
[[ ${#sections[@]} -gt 0 ]] || fail "$DESIGN has no numbered section (## N. Title, ### N.M Title)"

files=("$@")
if [[ ${#files[@]} -eq 0 ]]; then
	mapfile -t files < <(git ls-files --cached --others --exclude-standard | while read -r f; do
		[[ -f $f && $f != "$SELF" ]] && echo "$f"
	done)
fi

# hits PCRE: file:line:text of every line that matches, binary files left out.
hits() { grep -InP -- "$1" "${files[@]}" /dev/null || true; }

while IFS= read -r hit; do
	[[ -n $hit ]] || continue
	file=${hit%%:*}
	# A relative link from a page beside it is fine.
	if [[ $file == docs/* ]] && ! grep -qP '(?<!docs/)(?<!\]\()DESIGN\.md|DESIGN §' <<<"${hit#*:*:}"; then
		continue
	fi
	fail "$hit"$'\n'"    cite the design as docs/DESIGN.md §N (the file in this repository)"
done < <(hits '(?<!docs/)DESIGN\.md|DESIGN §')

while IFS= read -r hit; do
	[[ -n $hit ]] || continue
	for ref in $(grep -oP 'docs/DESIGN\.md §\K[0-9]+(\.[0-9]+)?' <<<"${hit#*:*:}"); do
		# Not `printf | grep -q`: grep leaves at the first match, printf's next
		# write then dies of SIGPIPE, and pipefail calls the section missing.
		[[ " ${sections[*]} " == *" $ref "* ]] ||
			fail "$hit"$'\n'"    $DESIGN has no section §$ref (it has: ${sections[*]})"
	done
done < <(hits 'docs/DESIGN\.md §[0-9]')

while IFS= read -r hit; do
	[[ -n $hit ]] || continue
	fail "$hit"$'\n'"    names a path outside the repository"
done < <(hits '(?<![\w.-])/work/')

[[ $failed -ne 0 ]] || echo "lint-docs: ${#files[@]} files cite only docs/DESIGN.md and its ${#sections[@]} sections"
exit "$failed"
