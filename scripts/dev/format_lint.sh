#!/usr/bin/env bash
# The formatter's rules, enforced (make lint): `swift format lint` with .swift-format over
# Sources and Tests must report nothing but layout. The rules switched on there (import order,
# no block comments, doc comments with ///, shorthand types, early `where` clauses, ...) are
# errors. Layout (indentation, line breaks, spacing) is the pretty printer's opinion: the
# tree keeps its hand-aligned binding tables, and check_style.lua budgets line and function
# length instead. Exits 1 on a rule violation, and 1 where the toolchain has no swift-format
# (Swift 5.10: install it with `swift build -c release` in apple/swift-format, or use Swift 6+),
# since a check that cannot run checks nothing. Arguments: the folders to check (default:
# Sources Tests), for its own test; SWIFT_FORMAT names another formatter command.
set -u
cd "$(dirname "$0")/../.."
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(Sources Tests)
format=(${SWIFT_FORMAT:-swift format})
if ! "${format[@]}" --version > /dev/null 2>&1; then
  echo "format_lint: '${format[*]}' does not run here (Swift 5.10 has no 'swift format': install swift-format, or use Swift 6+);"
  echo "format_lint: the formatter's rules were not checked, so this check fails"
  exit 1
fi
layout='\[(Indentation|AddLines|LineLength|Spacing|TrailingComma|RemoveLine|TrailingWhitespace)\]'
found=$("${format[@]}" lint --configuration .swift-format -r "${targets[@]}" 2>&1 | grep -E 'warning|error' | grep -Ev "$layout")
if [ -n "$found" ]; then
  echo "$found"
  echo "format_lint: $(echo "$found" | wc -l) violation(s) of the rules in .swift-format"
  exit 1
fi
echo "format_lint: ${targets[*]} follow the rules in .swift-format"
